//! Calendar periods of the grandfather-father-son rules.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A calendar period used by one of the `keep_hourly` … `keep_yearly` rules.
///
/// Periods are civil spans in the policy's time zone: an hour is a civil hour
/// (during a daylight-saving fold, the two instants that share a wall-clock hour
/// fall in the same period), a day runs from local midnight to midnight, a week
/// is an ISO 8601 week (Monday to Sunday, numbered by its ISO year), a month and
/// a year are calendar months and years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A civil hour.
    Hourly,
    /// A civil day.
    Daily,
    /// An ISO 8601 week.
    Weekly,
    /// A calendar month.
    Monthly,
    /// A calendar year.
    Yearly,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Self; 5] = [
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Yearly,
    ];

    /// The rule's name in a policy file: `keep_daily` for [`Period::Daily`].
    pub fn rule_name(self) -> &'static str {
        match self {
            Self::Hourly => "keep_hourly",
            Self::Daily => "keep_daily",
            Self::Weekly => "keep_weekly",
            Self::Monthly => "keep_monthly",
            Self::Yearly => "keep_yearly",
        }
    }

    /// The period that contains `at`, seen in `tz`.
    pub fn bucket(self, at: Timestamp, tz: &TimeZone) -> Bucket {
        let local: DateTime = tz.to_datetime(at);
        let date = local.date();
        let key = match self {
            Self::Hourly => {
                BucketKey::Hour(date.year(), date.month(), date.day(), local.time().hour())
            }
            Self::Daily => BucketKey::Day(date.year(), date.month(), date.day()),
            Self::Weekly => {
                let week = date.iso_week_date();
                BucketKey::Week(week.year(), week.week())
            }
            Self::Monthly => BucketKey::Month(date.year(), date.month()),
            Self::Yearly => BucketKey::Year(date.year()),
        };
        Bucket(key)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        })
    }
}

/// One concrete period: the hour 2026-11-20T14, the day 2026-11-20, the ISO
/// week 2026-W47, the month 2026-11 or the year 2026.
///
/// Its [`Display`](fmt::Display) form is the label used in decision reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(BucketKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum BucketKey {
    Hour(i16, i8, i8, i8),
    Day(i16, i8, i8),
    Week(i16, i8),
    Month(i16, i8),
    Year(i16),
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            BucketKey::Hour(y, m, d, h) => write!(f, "{y:04}-{m:02}-{d:02}T{h:02}"),
            BucketKey::Day(y, m, d) => write!(f, "{y:04}-{m:02}-{d:02}"),
            BucketKey::Week(y, w) => write!(f, "{y:04}-W{w:02}"),
            BucketKey::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            BucketKey::Year(y) => write!(f, "{y:04}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn labels_in_utc() {
        let at = ts("2026-11-20T14:35:00Z");
        let utc = TimeZone::UTC;
        let labels: Vec<String> = Period::ALL
            .iter()
            .map(|p| p.bucket(at, &utc).to_string())
            .collect();
        assert_eq!(
            labels,
            ["2026-11-20T14", "2026-11-20", "2026-W47", "2026-11", "2026"]
        );
    }

    #[test]
    fn iso_week_crosses_the_year() {
        // 2027-01-01 is a Friday: it belongs to ISO week 53 of 2026.
        let b = Period::Weekly.bucket(ts("2027-01-01T12:00:00Z"), &TimeZone::UTC);
        assert_eq!(b.to_string(), "2026-W53");
        let c = Period::Weekly.bucket(ts("2026-12-28T00:00:00Z"), &TimeZone::UTC);
        assert_eq!(b, c);
    }

    #[test]
    fn days_follow_the_time_zone() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 03:00 UTC on the 21st is still the evening of the 20th in New York.
        let b = Period::Daily.bucket(ts("2026-11-21T03:00:00Z"), &tz);
        assert_eq!(b.to_string(), "2026-11-20");
    }

    #[test]
    fn a_dst_fold_is_one_hour_bucket() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2026-11-01 01:30 happens twice in New York (EDT, then EST).
        let first = Period::Hourly.bucket(ts("2026-11-01T05:30:00Z"), &tz);
        let second = Period::Hourly.bucket(ts("2026-11-01T06:30:00Z"), &tz);
        assert_eq!(first, second);
        assert_eq!(first.to_string(), "2026-11-01T01");
    }
}
