//! The retention policy of one target and its file form.

use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::calendar::Period;
use crate::{Error, duration};

/// `keep_last` when a policy does not set it.
pub const DEFAULT_KEEP_LAST: u32 = 30;
/// How long a soft-deleted backup stays recoverable when a policy does not say.
pub const DEFAULT_DELETED_GRACE: SignedDuration = SignedDuration::from_hours(24);
/// How long a failed backup's leftovers are kept for inspection when a policy does not say.
pub const DEFAULT_FAILED_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// The retention policy of one target.
///
/// Every rule adds reasons to keep a backup; a ready backup that no rule keeps
/// is soft-deleted. The rules, and what each one counts:
///
/// | rule | counts | default |
/// |---|---|---|
/// | `keep_last` | backups: the N newest ready ones | 30 |
/// | `keep_hourly` … `keep_yearly` | calendar periods *that contain a ready backup*: the newest backup of each of the N most recent such periods, in `timezone` | 0 (off) |
/// | `keep_within` | time: every ready backup created within this duration **before the newest ready backup** (not before `now`) | off |
/// | `min_keep` | backups: if the rules above keep fewer ready backups than this, the newest others are kept too | 1 |
/// | pinned, leased | always kept (never soft-deleted, never purged) | |
/// | newest ready backup | always kept | |
/// | `failed_grace` | time after a failed backup's creation before its leftovers are purged | 24 h |
/// | `deleted_grace` | time after a soft delete during which `undelete` works; then purged | 24 h |
///
/// Counting periods that contain backups, and measuring `keep_within` from the
/// newest backup, both mean that a machine switched off for two weeks does not
/// lose its history when it comes back: the days it missed are not counted.
///
/// Parse it with [`Policy::from_toml_str`] or [`Policy::from_json_str`], or
/// build it in code from [`Policy::default`] and the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFile", into = "PolicyFile")]
pub struct Policy {
    pub(crate) keep_last: u32,
    pub(crate) keep_periods: [u32; 5],
    pub(crate) keep_within: Option<SignedDuration>,
    pub(crate) min_keep: u32,
    pub(crate) failed_grace: SignedDuration,
    pub(crate) deleted_grace: SignedDuration,
    pub(crate) timezone: Zone,
}

/// A named time zone (`"UTC"`, `"Europe/Paris"`) together with its rules.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    pub(crate) name: String,
    pub(crate) tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Zone {
    fn get(name: &str) -> Result<Self, Error> {
        let tz = TimeZone::get(name).map_err(|e| Error::InvalidValue {
            field: "timezone",
            value: name.to_owned(),
            reason: format!("not a known IANA time zone ({e})"),
        })?;
        Ok(Self {
            name: name.to_owned(),
            tz,
        })
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            keep_last: DEFAULT_KEEP_LAST,
            keep_periods: [0; 5],
            keep_within: None,
            min_keep: 1,
            failed_grace: DEFAULT_FAILED_GRACE,
            deleted_grace: DEFAULT_DELETED_GRACE,
            timezone: Zone {
                name: "UTC".to_owned(),
                tz: TimeZone::UTC,
            },
        }
    }
}

fn period_index(period: Period) -> usize {
    match period {
        Period::Hourly => 0,
        Period::Daily => 1,
        Period::Weekly => 2,
        Period::Monthly => 3,
        Period::Yearly => 4,
    }
}

impl Policy {
    /// Parses a policy from TOML, for example:
    ///
    /// ```
    /// let policy = cairn_retention::Policy::from_toml_str(r#"
    ///     keep_last = 7
    ///     keep_daily = 14
    ///     keep_monthly = 12
    ///     keep_within = "2 days"
    ///     timezone = "Europe/Paris"
    /// "#)?;
    /// assert_eq!(policy.keep_last(), 7);
    /// # Ok::<(), cairn_retention::Error>(())
    /// ```
    ///
    /// Unknown keys, negative or non-integer counts, malformed durations and
    /// unknown time zones are errors that name the key.
    ///
    /// # Errors
    ///
    /// [`Error::Toml`] naming the key, for the cases above.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Toml(Box::new(e)))
    }

    /// Parses a policy from a JSON object with the same keys as the TOML form.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] naming the key; [`Error::NotAnObject`] for JSON that is not an object.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        crate::from_json_object(text)
    }

    /// The policy in TOML, every key written out.
    pub fn to_toml_string(&self) -> String {
        toml::to_string(&PolicyFile::from(self.clone()))
            .expect("a policy file has only integers and strings")
    }

    /// How many of the newest ready backups are kept.
    pub fn keep_last(&self) -> u32 {
        self.keep_last
    }

    /// How many periods of this length keep their newest backup.
    pub fn keep_period(&self, period: Period) -> u32 {
        self.keep_periods[period_index(period)]
    }

    /// Ready backups created this close to the newest ready backup are kept.
    pub fn keep_within(&self) -> Option<SignedDuration> {
        self.keep_within
    }

    /// The fewest ready backups the policy leaves.
    pub fn min_keep(&self) -> u32 {
        self.min_keep
    }

    /// How long after its creation a failed backup is purged.
    pub fn failed_grace(&self) -> SignedDuration {
        self.failed_grace
    }

    /// How long a soft-deleted backup stays recoverable.
    pub fn deleted_grace(&self) -> SignedDuration {
        self.deleted_grace
    }

    /// The IANA name of the zone the calendar periods are counted in.
    pub fn timezone(&self) -> &str {
        &self.timezone.name
    }

    /// The zone the calendar periods are counted in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.timezone.tz
    }

    /// Sets `keep_last`.
    #[must_use]
    pub fn with_keep_last(mut self, n: u32) -> Self {
        self.keep_last = n;
        self
    }

    /// Sets the count of one calendar rule (`keep_daily` for [`Period::Daily`]).
    #[must_use]
    pub fn with_keep_period(mut self, period: Period, n: u32) -> Self {
        self.keep_periods[period_index(period)] = n;
        self
    }

    /// Sets `min_keep`.
    #[must_use]
    pub fn with_min_keep(mut self, n: u32) -> Self {
        self.min_keep = n;
        self
    }

    /// Sets `keep_within`; fails if the duration is negative or over 100 years.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a negative duration or one over 100 years.
    pub fn with_keep_within(mut self, d: Option<SignedDuration>) -> Result<Self, Error> {
        self.keep_within = d
            .map(|d| duration::check("keep_within", &duration::format(d), d))
            .transpose()?;
        Ok(self)
    }

    /// Sets `failed_grace`; fails if the duration is negative or over 100 years.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a negative duration or one over 100 years.
    pub fn with_failed_grace(mut self, d: SignedDuration) -> Result<Self, Error> {
        self.failed_grace = duration::check("failed_grace", &duration::format(d), d)?;
        Ok(self)
    }

    /// Sets `deleted_grace`; fails if the duration is negative or over 100 years.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a negative duration or one over 100 years.
    pub fn with_deleted_grace(mut self, d: SignedDuration) -> Result<Self, Error> {
        self.deleted_grace = duration::check("deleted_grace", &duration::format(d), d)?;
        Ok(self)
    }

    /// Sets the time zone by IANA name; fails if the name is unknown.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a name the bundled time zone database does not have.
    pub fn with_timezone(mut self, name: &str) -> Result<Self, Error> {
        self.timezone = Zone::get(name)?;
        Ok(self)
    }
}

/// The policy as written in a file: every key optional, unknown keys refused.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_yearly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_within: Option<duration::Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_keep: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_grace: Option<duration::Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_grace: Option<duration::Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
}

impl TryFrom<PolicyFile> for Policy {
    type Error = Error;

    fn try_from(file: PolicyFile) -> Result<Self, Error> {
        let defaults = Self::default();
        let periods = [
            file.keep_hourly,
            file.keep_daily,
            file.keep_weekly,
            file.keep_monthly,
            file.keep_yearly,
        ];
        let keep_within = file.keep_within.map(|t| t.0);
        let failed_grace = file.failed_grace.map_or(defaults.failed_grace, |t| t.0);
        let deleted_grace = file.deleted_grace.map_or(defaults.deleted_grace, |t| t.0);
        let timezone = match file.timezone.as_deref() {
            Some(name) => Zone::get(name)?,
            None => defaults.timezone,
        };
        Ok(Self {
            keep_last: file.keep_last.unwrap_or(defaults.keep_last),
            keep_periods: periods.map(|n| n.unwrap_or(0)),
            keep_within,
            min_keep: file.min_keep.unwrap_or(defaults.min_keep),
            failed_grace,
            deleted_grace,
            timezone,
        })
    }
}

impl From<Policy> for PolicyFile {
    fn from(p: Policy) -> Self {
        let [hourly, daily, weekly, monthly, yearly] = p.keep_periods;
        Self {
            keep_last: Some(p.keep_last),
            keep_hourly: Some(hourly),
            keep_daily: Some(daily),
            keep_weekly: Some(weekly),
            keep_monthly: Some(monthly),
            keep_yearly: Some(yearly),
            keep_within: p.keep_within.map(duration::Text),
            min_keep: Some(p.min_keep),
            failed_grace: Some(duration::Text(p.failed_grace)),
            deleted_grace: Some(duration::Text(p.deleted_grace)),
            timezone: Some(p.timezone.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Policy::from_toml_str("").unwrap(), Policy::default());
        assert_eq!(Policy::from_json_str("{}").unwrap(), Policy::default());
    }

    #[test]
    fn every_key() {
        let p = Policy::from_toml_str(
            r#"
            keep_last = 5
            keep_hourly = 24
            keep_daily = 7
            keep_weekly = 4
            keep_monthly = 12
            keep_yearly = 3
            keep_within = "36h"
            min_keep = 2
            failed_grace = "3 days"
            deleted_grace = "PT48H"
            timezone = "Europe/Paris"
            "#,
        )
        .unwrap();
        assert_eq!(p.keep_last(), 5);
        assert_eq!(Period::ALL.map(|x| p.keep_period(x)), [24, 7, 4, 12, 3]);
        assert_eq!(p.keep_within(), Some(SignedDuration::from_hours(36)));
        assert_eq!(p.min_keep(), 2);
        assert_eq!(p.failed_grace(), SignedDuration::from_hours(72));
        assert_eq!(p.deleted_grace(), SignedDuration::from_hours(48));
        assert_eq!(p.timezone(), "Europe/Paris");
        // Written out and read back, in both forms.
        assert_eq!(Policy::from_toml_str(&p.to_toml_string()).unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(Policy::from_json_str(&json).unwrap(), p);
    }

    fn toml_error(text: &str) -> String {
        Policy::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn clear_errors() {
        let e = toml_error("keep_dayly = 7");
        assert!(e.contains("unknown field `keep_dayly`"), "{e}");
        assert!(e.contains("keep_daily"), "the valid keys are listed: {e}");
        let e = toml_error("keep_last = -1");
        assert!(e.contains("keep_last"), "{e}");
        let e = toml_error("keep_last = 2.5");
        assert!(e.contains("keep_last"), "{e}");
        let e = toml_error("keep_daily = \"7\"");
        assert!(e.contains("keep_daily"), "{e}");
        let e = toml_error("keep_within = \"1 month\"");
        assert!(
            e.contains("keep_within") && e.contains("days or weeks"),
            "{e}"
        );
        let e = toml_error("deleted_grace = \"-5h\"");
        assert!(e.contains("deleted_grace") && e.contains("negative"), "{e}");
        let e = toml_error("timezone = \"Mars/Olympus\"");
        assert!(e.contains("timezone") && e.contains("Mars/Olympus"), "{e}");
        let e = toml_error("keep_last = 99999999999");
        assert!(e.contains("keep_last"), "{e}");
        let e = Policy::from_json_str(r#"{"keep_last": 3, "extra": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = Policy::from_json_str("[1,2]").unwrap_err().to_string();
        assert!(e.contains("expected an object"), "{e}");
    }

    #[test]
    fn setters_check_durations() {
        let p = Policy::default();
        assert!(
            p.clone()
                .with_keep_within(Some(SignedDuration::from_hours(-1)))
                .is_err()
        );
        assert!(p.clone().with_deleted_grace(SignedDuration::MAX).is_err());
        assert!(p.clone().with_timezone("Nowhere/Else").is_err());
        let p = p.with_timezone("Asia/Tokyo").unwrap();
        assert_eq!(p.timezone(), "Asia/Tokyo");
    }
}
