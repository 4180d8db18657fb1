//! Cooldown windows: re-enabling automatic backups, the interval between
//! scheduled backups, and the recovery window of a soft delete.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Error, Policy, duration};

/// How long automatic backups stay off after being disabled, by default.
pub const DEFAULT_COOLDOWN: SignedDuration = SignedDuration::from_hours(72);

/// The cooldown rules of one target's schedule.
///
/// In a file (TOML or JSON), both keys are optional durations:
///
/// ```
/// let rules = cairn_retention::ScheduleRules::from_toml_str(r#"
///     cooldown = "72h"
///     min_interval = "6h"
/// "#)?;
/// assert_eq!(rules.min_interval().as_hours(), 6);
/// # Ok::<(), cairn_retention::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RulesFile", into = "RulesFile")]
pub struct ScheduleRules {
    cooldown: SignedDuration,
    min_interval: SignedDuration,
}

impl Default for ScheduleRules {
    fn default() -> Self {
        Self {
            cooldown: DEFAULT_COOLDOWN,
            min_interval: SignedDuration::ZERO,
        }
    }
}

impl ScheduleRules {
    /// Parses the rules from TOML; unknown keys and bad durations are errors.
    ///
    /// # Errors
    ///
    /// [`Error::Toml`] for malformed text, an unknown key or a bad duration.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Toml(Box::new(e)))
    }

    /// Parses the rules from a JSON object with the same keys as the TOML form.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] for malformed text, an unknown key or a bad duration;
    /// [`Error::NotAnObject`] for JSON that is not an object.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        crate::from_json_object(text)
    }

    /// After automatic backups are disabled, how long before they may be re-enabled.
    pub fn cooldown(&self) -> SignedDuration {
        self.cooldown
    }

    /// The least time between two scheduled backups.
    pub fn min_interval(&self) -> SignedDuration {
        self.min_interval
    }

    /// Sets the cooldown; fails if it is negative or over 100 years.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a negative duration or one over 100 years.
    pub fn with_cooldown(mut self, d: SignedDuration) -> Result<Self, Error> {
        self.cooldown = duration::check("cooldown", &duration::format(d), d)?;
        Ok(self)
    }

    /// Sets the minimum interval; fails if it is negative or over 100 years.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a negative duration or one over 100 years.
    pub fn with_min_interval(mut self, d: SignedDuration) -> Result<Self, Error> {
        self.min_interval = duration::check("min_interval", &duration::format(d), d)?;
        Ok(self)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cooldown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_interval: Option<String>,
}

impl TryFrom<RulesFile> for ScheduleRules {
    type Error = Error;

    fn try_from(file: RulesFile) -> Result<Self, Error> {
        let defaults = Self::default();
        Ok(Self {
            cooldown: match file.cooldown.as_deref() {
                Some(t) => duration::parse("cooldown", t)?,
                None => defaults.cooldown,
            },
            min_interval: match file.min_interval.as_deref() {
                Some(t) => duration::parse("min_interval", t)?,
                None => defaults.min_interval,
            },
        })
    }
}

impl From<ScheduleRules> for RulesFile {
    fn from(r: ScheduleRules) -> Self {
        Self {
            cooldown: Some(duration::format(r.cooldown)),
            min_interval: Some(duration::format(r.min_interval)),
        }
    }
}

/// The persisted state of a target's automatic backups.
///
/// Transitions are pure: each takes `now` and returns the next state or a
/// refusal that says until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Whether automatic backups run.
    pub enabled: bool,
    /// When they were last disabled (kept after re-enabling, for the record).
    #[serde(default)]
    pub disabled_at: Option<Timestamp>,
    /// When the last scheduled backup started.
    #[serde(default)]
    pub last_run: Option<Timestamp>,
}

impl Default for ScheduleState {
    /// Enabled, never disabled, never run.
    fn default() -> Self {
        Self {
            enabled: true,
            disabled_at: None,
            last_run: None,
        }
    }
}

/// Re-enabling automatic backups was refused: the cooldown has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("automatic backups were disabled at {disabled_at} and cannot be re-enabled before {until}")]
pub struct CooldownActive {
    /// When automatic backups were disabled.
    pub disabled_at: Timestamp,
    /// When the cooldown ends: re-enabling succeeds from this instant on.
    pub until: Timestamp,
}

/// A scheduled backup may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunRefused {
    /// Automatic backups are disabled.
    #[error("automatic backups are disabled")]
    Disabled,
    /// The minimum interval since the last scheduled backup has not passed.
    #[error("the last scheduled backup started at {last_run}; the next may start at {not_before}")]
    TooSoon {
        /// When the last scheduled backup started.
        last_run: Timestamp,
        /// The first instant the next one may start.
        not_before: Timestamp,
    },
}

impl ScheduleState {
    /// Disables automatic backups. Disabling twice keeps the first instant, so
    /// repeating the request does not extend the cooldown.
    #[must_use]
    pub fn disable(self, now: Timestamp) -> Self {
        if !self.enabled {
            return self;
        }
        Self {
            enabled: false,
            disabled_at: Some(now),
            ..self
        }
    }

    /// Re-enables automatic backups, unless the cooldown since they were
    /// disabled has not ended. Enabling an enabled schedule changes nothing.
    ///
    /// # Errors
    ///
    /// [`CooldownActive`], with when the cooldown ends, while it runs.
    pub fn enable(self, rules: &ScheduleRules, now: Timestamp) -> Result<Self, CooldownActive> {
        if self.enabled {
            return Ok(self);
        }
        if let Some(until) = self.cooldown_until(rules)
            && now < until
        {
            return Err(CooldownActive {
                disabled_at: self.disabled_at.unwrap_or(now),
                until,
            });
        }
        Ok(Self {
            enabled: true,
            ..self
        })
    }

    /// When the current cooldown ends, if automatic backups are disabled.
    pub fn cooldown_until(&self, rules: &ScheduleRules) -> Option<Timestamp> {
        if self.enabled {
            return None;
        }
        self.disabled_at
            .map(|at| duration::after(at, rules.cooldown))
    }

    /// The first instant a scheduled backup may start, or `None` while disabled.
    pub fn next_allowed_run(&self, rules: &ScheduleRules) -> Option<Timestamp> {
        if !self.enabled {
            return None;
        }
        Some(match self.last_run {
            Some(last) => duration::after(last, rules.min_interval),
            None => Timestamp::MIN,
        })
    }

    /// Checks that a scheduled backup may start at `now`.
    ///
    /// # Errors
    ///
    /// [`RunRefused`]: automatic backups are disabled, or the minimum interval since the last
    /// one has not passed.
    pub fn check_run(&self, rules: &ScheduleRules, now: Timestamp) -> Result<(), RunRefused> {
        if !self.enabled {
            return Err(RunRefused::Disabled);
        }
        if let Some(last_run) = self.last_run {
            let not_before = duration::after(last_run, rules.min_interval);
            if now < not_before {
                return Err(RunRefused::TooSoon {
                    last_run,
                    not_before,
                });
            }
        }
        Ok(())
    }

    /// Checks and records the start of a scheduled backup at `now`.
    ///
    /// # Errors
    ///
    /// [`RunRefused`], as [`ScheduleState::check_run`].
    pub fn start_run(self, rules: &ScheduleRules, now: Timestamp) -> Result<Self, RunRefused> {
        self.check_run(rules, now)?;
        Ok(Self {
            last_run: Some(now),
            ..self
        })
    }
}

/// Undeleting was refused: the soft-delete grace period is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("the backup was deleted at {deleted_at}; it was recoverable until {until}")]
pub struct GraceOver {
    /// When the backup was soft-deleted.
    pub deleted_at: Timestamp,
    /// When it stopped being recoverable.
    pub until: Timestamp,
}

impl Policy {
    /// When a backup soft-deleted at `deleted_at` stops being recoverable.
    pub fn recoverable_until(&self, deleted_at: Timestamp) -> Timestamp {
        duration::after(deleted_at, self.deleted_grace)
    }

    /// Checks that a backup soft-deleted at `deleted_at` may be undeleted at
    /// `now`; returns the end of its recovery window.
    ///
    /// # Errors
    ///
    /// [`GraceOver`] once the recovery window has ended.
    pub fn check_undelete(
        &self,
        deleted_at: Timestamp,
        now: Timestamp,
    ) -> Result<Timestamp, GraceOver> {
        let until = self.recoverable_until(deleted_at);
        if now < until {
            Ok(until)
        } else {
            Err(GraceOver { deleted_at, until })
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
    fn cooldown_refusal_carries_its_end() {
        let rules = ScheduleRules::default();
        let off = ScheduleState::default().disable(ts("2026-11-20T10:00:00Z"));
        assert!(!off.enabled);
        let err = off.enable(&rules, ts("2026-11-22T09:59:59Z")).unwrap_err();
        assert_eq!(err.until, ts("2026-11-23T10:00:00Z"));
        assert_eq!(err.disabled_at, ts("2026-11-20T10:00:00Z"));
        assert!(err.to_string().contains("2026-11-23T10:00:00Z"), "{err}");
        // One nanosecond before the end: still refused; at the end: allowed.
        assert!(
            off.enable(&rules, ts("2026-11-23T09:59:59.999999999Z"))
                .is_err()
        );
        let on = off.enable(&rules, ts("2026-11-23T10:00:00Z")).unwrap();
        assert!(on.enabled);
        assert_eq!(on.cooldown_until(&rules), None);
    }

    #[test]
    fn disabling_twice_does_not_extend_the_cooldown() {
        let rules = ScheduleRules::default();
        let off = ScheduleState::default()
            .disable(ts("2026-11-20T10:00:00Z"))
            .disable(ts("2026-11-22T10:00:00Z"));
        assert_eq!(off.cooldown_until(&rules), Some(ts("2026-11-23T10:00:00Z")));
    }

    #[test]
    fn a_zero_cooldown_allows_immediate_reenabling() {
        let rules = ScheduleRules::default()
            .with_cooldown(SignedDuration::ZERO)
            .unwrap();
        let now = ts("2026-11-20T10:00:00Z");
        let off = ScheduleState::default().disable(now);
        assert!(off.enable(&rules, now).unwrap().enabled);
    }

    #[test]
    fn minimum_interval_between_scheduled_runs() {
        let rules = ScheduleRules::from_toml_str("min_interval = \"6h\"").unwrap();
        let s = ScheduleState::default();
        assert_eq!(s.next_allowed_run(&rules), Some(Timestamp::MIN));
        let s = s.start_run(&rules, ts("2026-11-20T00:00:00Z")).unwrap();
        let refused = s.start_run(&rules, ts("2026-11-20T05:59:00Z")).unwrap_err();
        assert_eq!(
            refused,
            RunRefused::TooSoon {
                last_run: ts("2026-11-20T00:00:00Z"),
                not_before: ts("2026-11-20T06:00:00Z"),
            }
        );
        let s = s.start_run(&rules, ts("2026-11-20T06:00:00Z")).unwrap();
        assert_eq!(s.last_run, Some(ts("2026-11-20T06:00:00Z")));
        let off = s.disable(ts("2026-11-20T07:00:00Z"));
        assert_eq!(
            off.check_run(&rules, ts("2026-11-21T00:00:00Z")),
            Err(RunRefused::Disabled)
        );
        assert_eq!(off.next_allowed_run(&rules), None);
    }

    #[test]
    fn undelete_window() {
        let policy = Policy::default();
        let deleted = ts("2026-11-20T10:00:00Z");
        assert_eq!(
            policy.check_undelete(deleted, ts("2026-11-21T09:00:00Z")),
            Ok(ts("2026-11-21T10:00:00Z"))
        );
        let err = policy
            .check_undelete(deleted, ts("2026-11-21T10:00:00Z"))
            .unwrap_err();
        assert_eq!(err.until, ts("2026-11-21T10:00:00Z"));
    }

    #[test]
    fn rules_file_errors_and_round_trip() {
        let e = ScheduleRules::from_toml_str("cooldown = \"-1h\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cooldown") && e.contains("negative"), "{e}");
        let e = ScheduleRules::from_toml_str("cooldwn = \"1h\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `cooldwn`"), "{e}");
        let rules =
            ScheduleRules::from_json_str(r#"{"cooldown":"1 week","min_interval":"90m"}"#).unwrap();
        assert_eq!(rules.cooldown(), SignedDuration::from_hours(168));
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(ScheduleRules::from_json_str(&json).unwrap(), rules);
        let state = ScheduleState::default().disable(ts("2026-11-20T10:00:00Z"));
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<ScheduleState>(&json).unwrap(), state);
    }
}
