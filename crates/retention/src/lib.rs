//! Retention policy and cooldown windows for Cairn backups.
//!
//! This crate is pure: no I/O, no clock. Every function that depends on time
//! takes `now` as an argument, so the same inputs always give the same answer
//! and a test can replay any calendar.
//!
//! - [`Policy`] holds the rules of one target (`keep_last`, `keep_hourly` …
//!   `keep_yearly`, `keep_within`, `min_keep`, grace periods, time zone) and
//!   [`Policy::plan`] turns the target's backups into a [`Plan`]: a
//!   [`Decision`] for every backup, [`Action::Keep`], [`Action::Delete`]
//!   (soft), [`Action::Wait`] or [`Action::Purge`], with every [`Reason`] that
//!   applies. Pinned and leased backups and the newest ready backup are never
//!   deleted or purged.
//! - [`ScheduleRules`] and [`ScheduleState`] are the cooldown windows of
//!   automatic backups: re-enabling is refused until the cooldown after
//!   disabling ends ([`CooldownActive`] carries the instant), and scheduled
//!   backups keep a minimum interval ([`RunRefused`]).
//! - [`Policy::check_undelete`] is the soft-delete window.
//!
//! ```
//! use cairn_retention::{Action, Backup, Policy};
//! use jiff::Timestamp;
//!
//! let policy = Policy::from_toml_str("keep_last = 2\nkeep_daily = 3")?;
//! let backups: Vec<Backup> = (1..=5)
//!     .map(|day| {
//!         let at: Timestamp = format!("2026-11-{day:02}T03:00:00Z").parse().unwrap();
//!         Backup::ready(format!("b{day}"), at)
//!     })
//!     .collect();
//! let plan = policy.plan(&backups, "2026-11-05T04:00:00Z".parse().unwrap())?;
//! // Days 5 and 4 by keep_last (and daily), day 3 by keep_daily; 1 and 2 go.
//! let kept: Vec<&str> = plan.with_action(Action::Keep).map(|d| d.id.as_str()).collect();
//! assert_eq!(kept, ["b5", "b4", "b3"]);
//! assert_eq!(plan.get("b3").unwrap().reasons[0].to_string(), "daily 2026-11-03 (3 of 3)");
//! # Ok::<(), cairn_retention::Error>(())
//! ```
//!
//! `docs/retention.md` in the repository works through a month of daily
//! backups under three policies.

mod calendar;
mod cooldown;
mod duration;
mod plan;
mod policy;

pub use calendar::{Bucket, Period};
pub use cooldown::{
    CooldownActive, DEFAULT_COOLDOWN, GraceOver, RunRefused, ScheduleRules, ScheduleState,
};
pub use duration::{DurationError, MAX_DURATION, parse_duration};
pub use plan::{Action, Backup, BackupStatus, Decision, Plan, Reason};
pub use policy::{DEFAULT_DELETED_GRACE, DEFAULT_FAILED_GRACE, DEFAULT_KEEP_LAST, Policy};

/// Errors from parsing a policy or planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key has a value the policy cannot use.
    #[error("invalid `{field}` {value:?}: {reason}")]
    InvalidValue {
        /// The key.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TOML text is malformed, has an unknown key or a value of the wrong type.
    #[error("policy (TOML): {0}")]
    Toml(Box<toml::de::Error>),
    /// The JSON text is malformed, has an unknown key or a value of the wrong type.
    #[error("policy (JSON): {0}")]
    Json(serde_json::Error),
    /// The JSON text is not an object.
    #[error("policy (JSON): expected an object with the policy's keys")]
    NotAnObject,
    /// Two backups given to [`Policy::plan`] share an id.
    #[error("backup id {0:?} appears twice in the input")]
    DuplicateId(String),
}

/// Parses a JSON object (and only an object: serde would also take an array
/// of values in field order, which no one writes on purpose).
fn from_json_object<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(Error::Json)?;
    if !value.is_object() {
        return Err(Error::NotAnObject);
    }
    serde_json::from_value(value).map_err(Error::Json)
}
