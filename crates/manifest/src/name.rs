//! Target and component names.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Checks the shared name rule: `[a-z0-9][a-z0-9_-]{0,62}`.
fn check_name(what: &'static str, s: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidName {
        what,
        value: s.chars().take(80).collect(),
        reason,
    };
    let bytes = s.as_bytes();
    match bytes.first() {
        None => return Err(invalid("must not be empty")),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return Err(invalid("must start with a-z or 0-9"));
        }
        Some(_) => {}
    }
    if bytes.len() > 63 {
        return Err(invalid("must be at most 63 characters"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
    {
        return Err(invalid("may only contain a-z, 0-9, '_' and '-'"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates a name.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidName`] if it breaks the rule.
            pub fn parse(s: &str) -> Result<Self> {
                check_name($what, s)?;
                Ok($name(s.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The name of a target: `[a-z0-9][a-z0-9_-]{0,62}`.
    ///
    /// ```
    /// use cairn_manifest::TargetName;
    ///
    /// assert!(TargetName::parse("web-01").is_ok());
    /// assert!(TargetName::parse("db_main").is_ok());
    /// assert!(TargetName::parse("").is_err());
    /// assert!(TargetName::parse("Web").is_err());     // upper case
    /// assert!(TargetName::parse("-web").is_err());    // leading dash
    /// assert!(TargetName::parse("a/b").is_err());     // slash
    /// assert!(TargetName::parse(&"a".repeat(64)).is_err());
    /// ```
    TargetName,
    "target name"
);

name_type!(
    /// The name of a component: `[a-z0-9][a-z0-9_-]{0,62}`, the same rule as
    /// target names. It is also the top-level folder of the component's entries in
    /// the archive, so it can never collide with `.cairn/`.
    ///
    /// ```
    /// use cairn_manifest::ComponentName;
    ///
    /// assert!(ComponentName::parse("data").is_ok());
    /// assert!(ComponentName::parse(".cairn").is_err());
    /// assert!(ComponentName::parse("..").is_err());
    /// ```
    ComponentName,
    "component name"
);
