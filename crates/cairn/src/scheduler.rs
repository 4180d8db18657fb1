//! Automatic backups.

use std::time::Duration;

use cairn_manifest::BackupKind;

use crate::backup::BackupRequest;
use crate::error::Error;
use crate::vault::Vault;

impl Vault {
    /// Runs the scheduler until the returned future is dropped: every
    /// `tick`, each target with an interval whose last scheduled backup is
    /// at least that old (and whose automatic backups are enabled, and whose
    /// minimum interval has passed) gets a `scheduled` backup. A target busy
    /// with another job is tried again at the next tick. Each tick first
    /// follows the store ([`Vault::sync`]: what other hosts sharing it
    /// published and decided). Spawn it on your
    /// runtime: `tokio::spawn(vault.clone().run_scheduler(Duration::from_secs(30)))`.
    pub async fn run_scheduler(self, tick: Duration) {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // What other hosts sharing the store did, before deciding.
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "following the store failed");
            }
            if let Err(e) = self.schedule_due().await {
                tracing::warn!(error = %e, "scheduler pass failed");
            }
        }
    }

    /// One pass of the scheduler: starts the backups that are due now, and
    /// the re-verifications of targets that ask for them (the backup whose
    /// verification is oldest, one per target per pass), and returns their
    /// job ids.
    ///
    /// # Errors
    ///
    /// Catalog errors; a busy target is skipped, not an error.
    pub async fn schedule_due(&self) -> Result<Vec<String>, Error> {
        let mut started = Vec::new();
        let due: Vec<_> = self
            .inner
            .target_list()
            .iter()
            .filter_map(|t| {
                t.schedule
                    .map(|every| (t.name.to_string(), every, t.schedule_rules))
            })
            .collect();
        for (target, every, rules) in due {
            let state = self.inner.schedule_state(&target).await?;
            let now = self.inner.now();
            if state.check_run(&rules, now).is_err() {
                continue;
            }
            let interval =
                jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX);
            if state
                .last_run
                .is_some_and(|last| now < last.saturating_add(interval).unwrap_or(last))
            {
                continue;
            }
            match self
                .backup(&target, BackupRequest::new().kind(BackupKind::Scheduled))
                .await
            {
                Ok(job) => {
                    let next = state
                        .start_run(&rules, now)
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                    let t = target.clone();
                    // Only the run is this pass's to record: whether the
                    // schedule is enabled comes from the shared state,
                    // which a sync may have changed since it was read.
                    self.inner
                        .blocking(move |c| {
                            let mut current = c.schedule(&t)?;
                            current.last_run = next.last_run;
                            c.put_schedule(&t, &current, now)
                        })
                        .await?;
                    started.push(job.id().to_owned());
                }
                Err(Error::Busy { .. }) => {
                    tracing::info!(target = %target, "scheduled backup postponed: target busy");
                }
                Err(e) => return Err(e),
            }
        }
        started.extend(self.reverify_due().await?);
        Ok(started)
    }

    async fn reverify_due(&self) -> Result<Vec<String>, Error> {
        let mut started = Vec::new();
        let due: Vec<_> = self
            .inner
            .target_list()
            .iter()
            .filter_map(|t| t.reverify.map(|r| (t.name.clone(), r)))
            .collect();
        for (target, (every, tier)) in due {
            let now = self.inner.now();
            let every = jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX);
            let running: Vec<String> = self
                .inner
                .backup_leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .keys()
                .cloned()
                .collect();
            let name = target.clone();
            let oldest = self
                .inner
                .blocking(move |c| c.target_backups(&name))
                .await?
                .into_iter()
                .filter(|b| {
                    b.status == cairn_catalog::BackupStatus::Ready
                        && b.deleted_at.is_none()
                        && !running.contains(&b.id.to_string())
                })
                .filter(|b| {
                    b.verification
                        .as_ref()
                        .is_none_or(|v| v.at.saturating_add(every).is_ok_and(|next| next <= now))
                })
                .min_by_key(|b| b.verification.as_ref().map(|v| v.at));
            if let Some(b) = oldest {
                let job = self.verify(&b.id.to_string(), tier).await?;
                started.push(job.id().to_owned());
            }
        }
        Ok(started)
    }
}
