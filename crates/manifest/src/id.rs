//! Backup ids and origin ids.

use std::fmt;
use std::str::FromStr;

use ulid::Ulid;

use crate::error::{Error, Result};

/// A backup id: `bkp_` followed by a ULID in canonical upper-case Crockford base32.
///
/// Ids sort by creation time (to the millisecond), then randomly, so listing keys
/// in lexical order lists backups oldest first.
///
/// ```
/// use cairn_manifest::BackupId;
///
/// let id = BackupId::generate();
/// assert!(id.as_str().starts_with("bkp_"));
/// assert_eq!(id.as_str().parse::<BackupId>()?, id);
///
/// assert!("bkp_01JD8Z5X7Q0000000000000000".parse::<BackupId>().is_ok());
/// assert!("01JD8Z5X7Q0000000000000000".parse::<BackupId>().is_err()); // no prefix
/// assert!("bkp_01jd8z5x7q0000000000000000".parse::<BackupId>().is_err()); // not canonical
/// assert!("bkp_../../etc/passwd".parse::<BackupId>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupId(Ulid);

const BACKUP_PREFIX: &str = "bkp_";

impl BackupId {
    /// A new id for the current time.
    pub fn generate() -> Self {
        BackupId(Ulid::generate())
    }

    /// The id made of a millisecond timestamp and 80 random bits (tests, replays).
    pub fn from_parts(unix_ms: u64, random: u128) -> Self {
        BackupId(Ulid::from_parts(unix_ms, random))
    }

    /// Parses an id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] if the text is not `bkp_` and a canonical ULID.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidId {
            what: "backup id",
            value: s.chars().take(80).collect(),
            reason,
        };
        let rest = s
            .strip_prefix(BACKUP_PREFIX)
            .ok_or_else(|| invalid("must start with \"bkp_\""))?;
        if rest.len() != 26 {
            return Err(invalid("must be \"bkp_\" and 26 characters"));
        }
        let ulid = Ulid::from_string(rest).map_err(|_| invalid("not a ULID"))?;
        if ulid.to_string() != rest {
            return Err(invalid("not in canonical upper-case form"));
        }
        Ok(BackupId(ulid))
    }

    /// The id as text.
    pub fn as_str(&self) -> String {
        self.to_string()
    }

    /// Milliseconds since the Unix epoch when the id was made.
    pub fn unix_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BACKUP_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupId({self})")
    }
}

impl FromStr for BackupId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for BackupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BackupId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The id of the installation that made a backup: 1 to 128 characters of
/// `[A-Za-z0-9._:-]`. A backup restores onto its origin only, unless forced.
///
/// ```
/// use cairn_manifest::OriginId;
///
/// assert!(OriginId::parse("org_01JD8Z5X7Q0000000000000000").is_ok());
/// assert!(OriginId::parse("host-a:/srv/app").is_err()); // '/' is not allowed
/// assert!(OriginId::parse("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginId(String);

impl OriginId {
    /// A new random origin id (`org_` and a ULID).
    pub fn generate() -> Self {
        OriginId(format!("org_{}", Ulid::generate()))
    }

    /// Parses an origin id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] if it is empty, too long or has other characters.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidId {
            what: "origin id",
            value: s.chars().take(80).collect(),
            reason,
        };
        if s.is_empty() || s.len() > 128 {
            return Err(invalid("must be 1 to 128 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(invalid(
                "may only contain A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            ));
        }
        Ok(OriginId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginId({:?})", self.0)
    }
}

impl FromStr for OriginId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for OriginId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OriginId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = BackupId::from_parts(1_000, u128::MAX >> 48);
        let b = BackupId::from_parts(1_001, 0);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.unix_ms(), 1_001);
    }

    #[test]
    fn json_round_trip() {
        let id = BackupId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<BackupId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BackupId>("\"bkp_x\"").is_err());
    }

    #[test]
    fn overflowing_ulid_is_refused() {
        // The first character of a ULID encodes only 3 bits: '8' and above overflow.
        assert!(BackupId::parse("bkp_80000000000000000000000000").is_err());
    }
}
