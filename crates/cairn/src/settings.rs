//! A target's settings at run time: schedule, cooldown, retention, and the
//! lock a running backup or restore holds on them.

use std::time::Duration;

use cairn_retention::{Policy, ScheduleState};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::error::Error;
use crate::shared::{Change, Decision};
use crate::vault::{Inner, Vault};

impl Vault {
    /// A target's automatic backups as they stand now: enabled or not, their
    /// interval, the last run, and the end of a cooldown still running.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], catalog errors.
    pub async fn schedule_status(&self, target: &str) -> Result<Schedule, Error> {
        let config = self.inner.target(target)?;
        let state = self.inner.schedule_state(target).await?;
        Ok(Schedule::of(&state, &config, self.inner.now()))
    }

    /// Enables or disables a target's automatic backups. Re-enabling is
    /// refused during the cooldown that follows a disable; neither is
    /// allowed while a backup or restore of the target runs.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Cooldown`], [`Error::Locked`].
    pub async fn schedule(&self, target: &str, enabled: bool) -> Result<Schedule, Error> {
        let config = self.inner.target(target)?;
        let rules = config.schedule_rules;
        self.inner.check_unlocked(target)?;
        let inner = &self.inner;
        // Recorded in the store's shared state, after every host's earlier
        // decisions: a cooldown started on any host holds on all.
        inner
            .write_shared(&config.name, move || async move {
                let state = inner.schedule_state(target).await?;
                if state.enabled == enabled {
                    return Ok(None);
                }
                if enabled {
                    state
                        .enable(&rules, inner.now())
                        .map_err(|c| Error::Cooldown {
                            target: target.to_owned(),
                            disabled_at: c.disabled_at,
                            until: c.until,
                        })?;
                }
                Ok(Some(Decision {
                    enabled: Some(enabled),
                    ..Decision::of_target(Change::Schedule)
                }))
            })
            .await?;
        let state = inner.schedule_state(target).await?;
        Ok(Schedule::of(&state, &config, inner.now()))
    }

    /// Replaces a target's retention policy, persistently (the catalog
    /// keeps it over the configuration's until it is set again). Refused
    /// while a backup or restore of the target runs. The policy applies
    /// from the next prune on.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Locked`], catalog errors.
    pub async fn set_retention(&self, target: &str, policy: Policy) -> Result<(), Error> {
        self.change_settings(
            target,
            Decision {
                policy: Some(policy),
                ..Decision::of_target(Change::Retention)
            },
        )
        .await
    }

    /// Sets the interval of a target's automatic backups (`None`: manual
    /// only), persistently, like [`Vault::set_retention`]. An interval
    /// shorter than the target's minimum interval, or longer than
    /// [`cairn_retention::MAX_DURATION`] (100 years), is refused.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Invalid`], [`Error::Locked`].
    pub async fn set_schedule_every(
        &self,
        target: &str,
        every: Option<Duration>,
    ) -> Result<(), Error> {
        let rules = self.inner.target(target)?.schedule_rules;
        if let Some(e) = every {
            let min = rules.min_interval();
            if e.is_zero() || SignedDuration::try_from(e).is_ok_and(|e| e < min) {
                return Err(Error::Invalid(format!(
                    "an interval of {} s is below the minimum of {} s between automatic backups of {target}",
                    e.as_secs(),
                    min.as_secs().max(1)
                )));
            }
            let max = cairn_retention::MAX_DURATION;
            if !SignedDuration::try_from(e).is_ok_and(|e| e <= max) {
                return Err(Error::Invalid(format!(
                    "an interval of {} s is longer than {} s (100 years)",
                    e.as_secs(),
                    max.as_secs()
                )));
            }
        }
        self.change_settings(
            target,
            Decision {
                every_seconds: Some(every.map_or(0, |d| d.as_secs())),
                ..Decision::of_target(Change::Interval)
            },
        )
        .await
    }

    /// Records a change of `target`'s settings in the store's shared
    /// state, which every host sharing it applies (`shared.rs`); this
    /// vault's catalog and memory hold it once written.
    async fn change_settings(&self, target: &str, decision: Decision) -> Result<(), Error> {
        let config = self.inner.target(target)?;
        self.inner.check_unlocked(target)?;
        let decision = &decision;
        self.inner
            .write_shared(
                &config.name,
                move || async move { Ok(Some(decision.clone())) },
            )
            .await?;
        Ok(())
    }
}

/// A target's automatic backups as they stand ([`Vault::schedule_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Schedule {
    /// Whether automatic backups run.
    pub enabled: bool,
    /// When they were last disabled (kept after re-enabling, for the record).
    pub disabled_at: Option<Timestamp>,
    /// When the last scheduled backup started.
    pub last_run: Option<Timestamp>,
    /// Their interval in seconds, as the settings in force say (`None`:
    /// manual only).
    pub every_seconds: Option<u64>,
    /// While a cooldown runs, when it ends: re-enabling is refused before.
    pub cooldown_until: Option<Timestamp>,
}

impl Schedule {
    fn of(state: &ScheduleState, config: &crate::TargetConfig, now: Timestamp) -> Self {
        Self {
            enabled: state.enabled,
            disabled_at: state.disabled_at,
            last_run: state.last_run,
            every_seconds: config.schedule.map(|d| d.as_secs()),
            cooldown_until: state
                .cooldown_until(&config.schedule_rules)
                .filter(|until| *until > now),
        }
    }
}

impl Inner {
    /// A target's stored schedule state.
    pub(crate) async fn schedule_state(&self, target: &str) -> Result<ScheduleState, Error> {
        let t = target.to_owned();
        self.blocking(move |c| c.schedule(&t)).await
    }

    /// Refuses configuration changes while a backup or restore runs.
    pub(crate) fn check_unlocked(&self, target: &str) -> Result<(), Error> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(job) = running.get(target) else {
            return Ok(());
        };
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let locks = jobs
            .get(job)
            .is_none_or(|(tx, _)| tx.borrow().kind.locks_config());
        if locks {
            Err(Error::Locked {
                target: target.to_owned(),
                job: job.clone(),
            })
        } else {
            Ok(())
        }
    }
}
