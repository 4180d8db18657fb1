//! Bearer tokens with scopes, and the server's own signed download URLs.
//!
//! Tokens are configured by their SHA-256 only. A presented token is hashed
//! and compared with every configured hash in constant time. Scopes nest:
//! `backups:admin` can do what `backups:write` can, which can do what
//! `backups:read` can.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::dashboard::Sessions;
use crate::error::ApiError;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read backups, jobs, targets.
    Read,
    /// Create and verify backups, upload, download.
    Write,
    /// Restore, delete, reset, schedules, retention.
    Admin,
}

impl Scope {
    /// Its name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "backups:read",
            Scope::Write => "backups:write",
            Scope::Admin => "backups:admin",
        }
    }

    /// Parses `backups:read|write|admin`.
    ///
    /// # Errors
    ///
    /// The name, when it is none of them.
    pub fn parse(name: &str) -> Result<Self, String> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                format!("unknown scope {name:?} (backups:read, backups:write, backups:admin)")
            })
    }
}

/// A configured token.
#[derive(Debug, Clone)]
pub struct Token {
    /// Who holds it.
    pub name: String,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Its highest scope.
    pub scope: Scope,
}

/// The configured tokens; none = no authentication (loopback only).
#[derive(Debug, Clone, Default)]
pub struct Tokens(pub Vec<Token>);

impl Tokens {
    /// From the `[[server.token]]` entries.
    ///
    /// # Errors
    ///
    /// A bad hash or scope, naming the token.
    pub fn from_config(list: &[cairn_config::TokenFile]) -> Result<Self, String> {
        let mut out = Vec::new();
        for t in list {
            let bytes = hex::decode(&t.sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("token {}: sha256 must be 64 hex digits", t.name))?;
            let scope = t
                .scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| format!("token {}: {e}", t.name)))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .max()
                .ok_or_else(|| format!("token {}: no scopes", t.name))?;
            out.push(Token {
                name: t.name.clone(),
                hash: bytes,
                scope,
            });
        }
        Ok(Self(out))
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The token a bearer value is, if any (constant time over all tokens).
    pub fn find(&self, presented: &str) -> Option<&Token> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.hash.ct_eq(&hash)) {
                found = Some(t);
            }
        }
        found
    }
}

/// A new random token (`cairn_<64 hex>`) and its SHA-256, hex.
///
/// # Errors
///
/// No randomness from the system.
pub fn new_token() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let token = format!("cairn_{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

/// Checks the bearer token of a request against the scope its route needs
/// (`axum::middleware::from_fn_with_state`). A `GET` or `HEAD` without a
/// bearer token may come from the dashboard instead: its session cookie
/// (`SameSite=Strict`, so never sent by another site) stands for the
/// token it was exchanged for. Nothing that changes state is accepted on a
/// cookie: the dashboard's own forms carry a CSRF token for that.
pub async fn require(
    State((tokens, scope, sessions)): State<(Arc<Tokens>, Scope, Arc<Sessions>)>,
    req: Request,
    next: Next,
) -> Response {
    if !tokens.enabled() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let who = match presented {
        Some(p) => tokens.find(p).map(|t| (t.name.clone(), t.scope)),
        None if safe => sessions
            .from_headers(req.headers())
            .map(|v| (v.name, v.scope)),
        None => None,
    };
    let Some((name, held)) = who else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer ...)",
        )
        .into_response();
    };
    if held < scope {
        return ApiError::forbidden(format!("token {name} lacks the scope {}", scope.as_str()))
            .into_response();
    }
    tracing::debug!(token = %name, "authenticated");
    next.run(req).await
}

/// The server's signed, expiring download URLs (for stores that cannot
/// presign: local folders). The signature is an HMAC-SHA256 of the backup
/// id and the expiry, keyed with the server's secret.
#[derive(Clone)]
pub struct UrlKey(Arc<[u8]>);

impl std::fmt::Debug for UrlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlKey(..)")
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl UrlKey {
    /// A key from secret bytes (at least 32).
    ///
    /// # Errors
    ///
    /// A secret shorter than 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the URL secret must have at least 32 bytes".to_owned());
        }
        Ok(Self(Arc::from(secret)))
    }

    fn mac(&self, id: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of a download of `id` valid until `expires` (Unix seconds).
    pub fn sign(&self, id: &str, expires: i64) -> String {
        hex::encode(self.mac(id, expires).finalize().into_bytes())
    }

    /// Whether `sig` signs `id` until `expires`, and `now` is before it.
    pub fn check(&self, id: &str, expires: i64, sig: &str, now: i64) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        now < expires && self.mac(id, expires).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::{Scope, Tokens, UrlKey, new_token};

    fn entry(sha256: &str, scopes: &[&str]) -> cairn_config::TokenFile {
        cairn_config::TokenFile {
            name: "t".to_owned(),
            sha256: sha256.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn tokens_from_the_configuration() {
        let (token, hash) = new_token().unwrap();
        let tokens =
            Tokens::from_config(&[entry(&hash, &["backups:read", "backups:write"])]).unwrap();
        let found = tokens.find(&token).unwrap();
        assert_eq!(found.scope, Scope::Write, "the highest scope wins");
        assert!(found.scope >= Scope::Read && found.scope < Scope::Admin);
        assert!(tokens.find("cairn_other").is_none());
        assert!(tokens.find(&hash).is_none(), "the hash is not the token");

        let err = Tokens::from_config(&[entry("abc", &["backups:read"])]).unwrap_err();
        assert!(err.contains("64 hex digits"), "{err}");
        let err = Tokens::from_config(&[entry(&hash, &["backups:root"])]).unwrap_err();
        assert!(err.contains("unknown scope"), "{err}");
        let err = Tokens::from_config(&[entry(&hash, &[])]).unwrap_err();
        assert!(err.contains("no scopes"), "{err}");
        assert!(!Tokens::from_config(&[]).unwrap().enabled());
    }

    #[test]
    fn signed_urls() {
        assert!(UrlKey::new(&[1u8; 31]).is_err());
        let key = UrlKey::new(&[1u8; 32]).unwrap();
        let sig = key.sign("bkp_1", 1000);
        assert!(key.check("bkp_1", 1000, &sig, 999));
        assert!(!key.check("bkp_1", 1000, &sig, 1000), "expired");
        assert!(!key.check("bkp_2", 1000, &sig, 999), "another backup");
        assert!(!key.check("bkp_1", 1001, &sig, 999), "another expiry");
        assert!(!key.check("bkp_1", 1000, "zz", 999), "not hex");
        let other = UrlKey::new(&[2u8; 32]).unwrap();
        assert!(!other.check("bkp_1", 1000, &sig, 999), "another secret");
    }
}
