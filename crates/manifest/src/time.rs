//! Modification times with nanosecond precision.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A modification time: seconds since the Unix epoch (may be negative) and
/// nanoseconds (always `0..1_000_000_000`, added to the seconds).
///
/// Its text form is the one PAX `mtime` records use: a decimal number of seconds,
/// negative for times before 1970, with up to nine fractional digits and no
/// trailing zeros. Manifests use the same text in JSON.
///
/// ```
/// use cairn_manifest::Mtime;
///
/// assert_eq!(Mtime::new(1_700_000_000, 500_000_000).to_string(), "1700000000.5");
/// assert_eq!(Mtime::new(-2, 500_000_000).to_string(), "-1.5"); // -2 s + 0.5 s
/// assert_eq!("-1.5".parse::<Mtime>()?, Mtime::new(-2, 500_000_000));
/// assert_eq!("12".parse::<Mtime>()?, Mtime::new(12, 0));
/// assert!("1.0000000001".parse::<Mtime>().is_err()); // more than 9 digits
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mtime {
    secs: i64,
    nanos: u32,
}

impl Mtime {
    /// A time `secs` + `nanos`/10⁹ seconds after the epoch.
    ///
    /// # Panics
    ///
    /// If `nanos` ≥ 10⁹.
    pub const fn new(secs: i64, nanos: u32) -> Self {
        assert!(nanos < 1_000_000_000, "nanos out of range");
        Mtime { secs, nanos }
    }

    /// Whole seconds (floor).
    pub const fn secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds added to [`Mtime::secs`].
    pub const fn nanos(&self) -> u32 {
        self.nanos
    }

    /// Converts from a `SystemTime`.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Mtime {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    Mtime {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    Mtime {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl fmt::Display for Mtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (neg, whole, frac) = if self.secs < 0 && self.nanos > 0 {
            // -2 s + 0.25 s is -1.75 s.
            (
                true,
                (self.secs + 1).unsigned_abs(),
                1_000_000_000 - self.nanos,
            )
        } else {
            (self.secs < 0, self.secs.unsigned_abs(), self.nanos)
        };
        if neg {
            f.write_str("-")?;
        }
        write!(f, "{whole}")?;
        if frac > 0 {
            let digits = format!("{frac:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mtime({self})")
    }
}

impl FromStr for Mtime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidTime {
            value: s.chars().take(40).collect(),
            reason,
        };
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match body.split_once('.') {
            Some((w, f)) => (w, f),
            None => (body, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("expected decimal seconds"));
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("at most nine fractional digits"));
        }
        if body.contains('.') && frac.is_empty() {
            return Err(invalid("empty fraction"));
        }
        let whole: i64 = whole.parse().map_err(|_| invalid("seconds out of range"))?;
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}")
                .parse()
                .map_err(|_| invalid("bad fraction"))?
        };
        Ok(if !neg {
            Mtime { secs: whole, nanos }
        } else if nanos == 0 {
            Mtime {
                secs: -whole,
                nanos: 0,
            }
        } else {
            Mtime {
                secs: -whole - 1,
                nanos: 1_000_000_000 - nanos,
            }
        })
    }
}

impl serde::Serialize for Mtime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mtime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edge_cases() {
        for bad in [
            "",
            "-",
            ".5",
            "1.",
            "1.a",
            "a",
            "1e5",
            "--1",
            "1.1234567890",
        ] {
            assert!(bad.parse::<Mtime>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "-0.5".parse::<Mtime>().unwrap(),
            Mtime::new(-1, 500_000_000)
        );
        assert_eq!(Mtime::new(-1, 500_000_000).to_string(), "-0.5");
        assert_eq!(Mtime::new(0, 0).to_string(), "0");
        assert_eq!(Mtime::new(0, 1).to_string(), "0.000000001");
    }

    #[test]
    fn system_time_before_epoch() {
        let t = std::time::UNIX_EPOCH - std::time::Duration::from_millis(1500);
        assert_eq!(Mtime::from_system_time(t), Mtime::new(-2, 500_000_000));
    }

    proptest! {
        #[test]
        fn text_round_trip(secs in any::<i64>().prop_filter("no min", |s| *s > i64::MIN + 1), nanos in 0u32..1_000_000_000) {
            let m = Mtime::new(secs, nanos);
            prop_assert_eq!(m.to_string().parse::<Mtime>().unwrap(), m);
        }
    }
}
