//! Dashboard sessions: a bearer token exchanged once, at the login form,
//! for a random session id in an `HttpOnly`, `SameSite=Strict` cookie.
//! Sessions live in this process only: they expire after their time to
//! live, end at logout, and all end when the server restarts (so a token
//! removed from the configuration stops working at the restart). Every
//! state-changing form carries the session's CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::auth::Scope;

/// The session cookie's name.
pub const COOKIE: &str = "cairn_session";

/// Who is looking at the dashboard, and what they may do.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The token's name (`open` without authentication).
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

impl Viewer {
    /// Whether it may do what `scope` allows.
    pub fn can(&self, scope: Scope) -> bool {
        self.scope >= scope
    }

    /// Whether `presented` is its CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

#[derive(Debug, Clone)]
struct Session {
    viewer: Viewer,
    expires: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
    /// The CSRF token of the open dashboard (no tokens configured).
    open_csrf: String,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // Without randomness no session can be made safely: fail loudly.
    getrandom::fill(&mut bytes).expect("the system gives randomness");
    hex::encode(bytes)
}

impl Sessions {
    /// Sessions that last `ttl` from the login.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
            open_csrf: random_hex(),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for the token `name` with `scope`; returns its id.
    pub fn create(&self, name: &str, scope: Scope) -> String {
        let id = random_hex();
        let session = Session {
            viewer: Viewer {
                name: name.to_owned(),
                scope,
                csrf: random_hex(),
            },
            expires: Instant::now() + self.ttl,
        };
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.expires > Instant::now());
        map.insert(id.clone(), session);
        id
    }

    /// The viewer of a live session.
    pub fn get(&self, id: &str) -> Option<Viewer> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.viewer.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// The viewer of an open dashboard (no tokens: loopback only).
    pub fn open_viewer(&self) -> Viewer {
        Viewer {
            name: "open".to_owned(),
            scope: Scope::Admin,
            csrf: self.open_csrf.clone(),
        }
    }

    /// The viewer of the session whose cookie `headers` carry, if live.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<Viewer> {
        session_id(headers).and_then(|id| self.get(&id))
    }
}

impl Default for Sessions {
    /// Sessions of 12 hours.
    fn default() -> Self {
        Self::new(Duration::from_secs(12 * 3600))
    }
}

/// The session id of a request's cookie.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_come_from_their_cookie() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.create("ops", Scope::Read);
        let v = s.get(&id).unwrap();
        assert_eq!((v.name.as_str(), v.scope), ("ops", Scope::Read));
        assert!(v.csrf_ok(&v.csrf) && !v.csrf_ok("nope") && !v.csrf_ok(""));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={id}").parse().unwrap(),
        );
        assert_eq!(s.from_headers(&h).unwrap().name, "ops");
        h.insert(header::COOKIE, format!("{COOKIE}=../x").parse().unwrap());
        assert!(s.from_headers(&h).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id).is_none(), "expired");
        let id = s.create("ops", Scope::Admin);
        s.remove(&id);
        assert!(s.get(&id).is_none(), "logged out");
        assert_ne!(s.create("a", Scope::Read), s.create("a", Scope::Read));
    }
}
