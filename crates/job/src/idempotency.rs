//! Idempotency keys: the same key and request give the same job.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::JobKind;

/// How long a key is remembered, unless told otherwise.
pub const DEFAULT_KEY_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A client-chosen idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

/// A string that cannot be an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid idempotency key: {0}")]
pub struct InvalidKey(&'static str);

impl IdempotencyKey {
    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IdempotencyKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, InvalidKey> {
        if s.is_empty() {
            return Err(InvalidKey("empty"));
        }
        if s.len() > MAX_KEY_LEN {
            return Err(InvalidKey("longer than 255 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidKey(
                "only visible ASCII characters are allowed (no spaces or control characters)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidKey;

    fn try_from(s: String) -> Result<Self, InvalidKey> {
        s.parse()
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> Self {
        k.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request asked for, in a canonical form: its kind, its target and
/// its parameters as JSON with object keys sorted, so two requests with the
/// same meaning have the same fingerprint whatever order their fields came in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a request of `kind` on `target` with these parameters.
    ///
    /// # Errors
    ///
    /// `params` that do not serialise to JSON (a map with non-string keys).
    pub fn of<T: Serialize + ?Sized>(
        kind: JobKind,
        target: &str,
        params: &T,
    ) -> Result<Self, serde_json::Error> {
        let value = serde_json::json!({
            "kind": kind,
            "target": target,
            "params": serde_json::to_value(params)?,
        });
        let mut out = String::new();
        canonical(&value, &mut out);
        Ok(Self(out))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A remembered key: which request it came with and which job it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: IdempotencyKey,
    /// The request it came with.
    pub fingerprint: Fingerprint,
    /// The job that request started.
    pub job_id: String,
    /// When the key was first used.
    pub created_at: Timestamp,
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// The key is new (or its record expired): start a job and remember the key.
    New,
    /// The same request was made before: answer with its job.
    Replay {
        /// The job the first request started.
        job_id: String,
    },
}

/// The key was already used with a different request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency key {key} was already used for a different request (job {job_id})")]
pub struct IdempotencyConflict {
    /// The key.
    pub key: IdempotencyKey,
    /// The job the earlier request started.
    pub job_id: String,
}

impl IdempotencyRecord {
    /// Whether the record is past its time to live at `now`.
    pub fn is_expired(&self, ttl: SignedDuration, now: Timestamp) -> bool {
        self.created_at
            .checked_add(ttl)
            .is_ok_and(|until| now >= until)
    }
}

/// Decides what a request with an idempotency key gets, given the key's
/// record if one exists.
///
/// # Errors
///
/// [`IdempotencyConflict`], naming the earlier job, when the key was used within `ttl` for
/// another request.
pub fn check(
    record: Option<&IdempotencyRecord>,
    fingerprint: &Fingerprint,
    ttl: SignedDuration,
    now: Timestamp,
) -> Result<Idempotency, IdempotencyConflict> {
    match record {
        None => Ok(Idempotency::New),
        Some(r) if r.is_expired(ttl, now) => Ok(Idempotency::New),
        Some(r) if r.fingerprint == *fingerprint => Ok(Idempotency::Replay {
            job_id: r.job_id.clone(),
        }),
        Some(r) => Err(IdempotencyConflict {
            key: r.key.clone(),
            job_id: r.job_id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn keys() {
        assert!("abc-123_X.~".parse::<IdempotencyKey>().is_ok());
        for bad in ["", "a b", "tab\t", "é", &"k".repeat(256)] {
            assert!(bad.parse::<IdempotencyKey>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<IdempotencyKey>("\"a b\"").is_err());
    }

    #[test]
    fn fingerprints_ignore_field_order_only() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"label":"x","includes":["db","files"],"n":{"b":1,"a":2}}"#)
                .unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"n":{"a":2,"b":1},"includes":["db","files"],"label":"x"}"#)
                .unwrap();
        let fa = Fingerprint::of(JobKind::Backup, "app", &a).unwrap();
        assert_eq!(fa, Fingerprint::of(JobKind::Backup, "app", &b).unwrap());
        // Array order, the kind and the target all matter.
        let c: serde_json::Value =
            serde_json::from_str(r#"{"label":"x","includes":["files","db"],"n":{"b":1,"a":2}}"#)
                .unwrap();
        assert_ne!(fa, Fingerprint::of(JobKind::Backup, "app", &c).unwrap());
        assert_ne!(fa, Fingerprint::of(JobKind::Restore, "app", &a).unwrap());
        assert_ne!(fa, Fingerprint::of(JobKind::Backup, "other", &a).unwrap());
        assert!(
            fa.as_str()
                .starts_with(r#"{"kind":"backup","params":{"includes""#),
            "{fa:?}"
        );
    }

    #[test]
    fn same_key_same_request_same_job_else_conflict() {
        let now = ts("2026-11-20T10:00:00Z");
        let fp =
            Fingerprint::of(JobKind::Backup, "app", &serde_json::json!({"label": "a"})).unwrap();
        let other =
            Fingerprint::of(JobKind::Backup, "app", &serde_json::json!({"label": "b"})).unwrap();
        let record = IdempotencyRecord {
            key: "k1".parse().unwrap(),
            fingerprint: fp.clone(),
            job_id: "job_1".to_owned(),
            created_at: now,
        };
        assert_eq!(check(None, &fp, DEFAULT_KEY_TTL, now), Ok(Idempotency::New));
        assert_eq!(
            check(Some(&record), &fp, DEFAULT_KEY_TTL, now),
            Ok(Idempotency::Replay {
                job_id: "job_1".to_owned()
            })
        );
        let conflict = check(Some(&record), &other, DEFAULT_KEY_TTL, now).unwrap_err();
        assert_eq!(conflict.job_id, "job_1");
        assert!(conflict.to_string().contains("k1"));
        // After the time to live, the key is free again.
        let later = ts("2026-11-21T10:00:00Z");
        assert_eq!(
            check(Some(&record), &other, DEFAULT_KEY_TTL, later),
            Ok(Idempotency::New)
        );
    }
}
