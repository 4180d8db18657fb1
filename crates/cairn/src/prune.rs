//! Applying retention to a target.

use std::sync::Arc;

use cairn_catalog::BackupRecord;
use cairn_job::idempotency::IdempotencyKey;
use cairn_job::{JobKind, JobResult, PruneReport};
use cairn_retention::{Action, Backup};
use serde::Serialize;

use crate::error::Error;
use crate::jobs::{JobHandle, Spec};
use crate::shared::Change;
use crate::target::TargetConfig;
use crate::vault::{Inner, Vault};

/// How to apply retention now.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PruneRequest {
    /// Only plan: change nothing.
    pub dry_run: bool,
    /// Makes retries safe (see [`crate::VerifyRequest::idempotency_key`]).
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl PruneRequest {
    /// Applying the policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes it a dry run.
    #[must_use]
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

impl Vault {
    /// Applies the target's retention policy now: evicted backups are
    /// soft-deleted, failed ones and those deleted longer ago than the grace
    /// period are purged. With `dry_run`, only the plan is computed. The
    /// job's result is the [`PruneReport`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Busy`], [`Error::Idempotency`].
    pub async fn prune(&self, target: &str, req: PruneRequest) -> Result<JobHandle, Error> {
        let config = self.inner.target(target)?;
        let inner = Arc::clone(&self.inner);
        let dry_run = req.dry_run;
        let spec = Spec::new(
            JobKind::Prune,
            target,
            None,
            req.idempotency_key.as_ref(),
            &dry_run,
        )?;
        self.inner
            .start(spec, move |_ctx| async move {
                Ok(JobResult::Prune(apply(&inner, &config, dry_run).await?))
            })
            .await
    }
}

impl Vault {
    /// What retention would decide for `target` under `policy` now, with
    /// every host's pins and deletes followed first: a preview of a policy
    /// before it is set ([`Vault::set_retention`]). Nothing is changed and
    /// no job runs.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown target; store and catalog errors.
    pub async fn preview_retention(
        &self,
        target: &str,
        policy: cairn_retention::Policy,
    ) -> Result<PruneReport, Error> {
        let mut config = self.inner.target(target)?;
        config.retention = policy;
        apply(&self.inner, &config, true).await
    }
}

/// Plans retention for a target and, unless `dry_run`, applies the plan.
/// Backups in use by a job are never touched.
pub(crate) async fn apply(
    inner: &Arc<Inner>,
    config: &TargetConfig,
    dry_run: bool,
) -> Result<PruneReport, Error> {
    // Decided on every host's pins and deletes, and each decision checked
    // again as it is recorded (`shared.rs`): a pin made anywhere a moment
    // ago is respected.
    inner.sync_target(&config.name).await?;
    let name = config.name.clone();
    let records = inner.blocking(move |c| c.target_backups(&name)).await?;
    let leases = inner
        .backup_leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let backups: Vec<Backup> = records
        .iter()
        .map(|r| Backup {
            id: r.id.to_string(),
            created_at: r.created_at,
            status: r.status,
            pinned: r.pinned,
            leases: leases.get(&r.id.to_string()).cloned().unwrap_or_default(),
            deleted_at: r.deleted_at,
            parents: r.parents.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let now = inner.now();
    let plan = config
        .retention
        .plan(&backups, now)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut report = PruneReport::new(plan, dry_run);
    if dry_run {
        return Ok(report);
    }
    // Only the deletions and purges need their records: looked up by id,
    // since a target may hold a hundred thousand backups.
    let by_id: std::collections::HashMap<String, &BackupRecord> =
        records.iter().map(|r| (r.id.to_string(), r)).collect();
    for d in report.plan.decisions.clone() {
        if !matches!(d.action, Action::Delete | Action::Purge) {
            continue;
        }
        let Some(record) = by_id.get(&d.id).copied() else {
            continue;
        };
        if inner.backup_user(record).await?.is_some() {
            continue;
        }
        let id = record.id;
        let outcome = match d.action {
            Action::Delete => {
                inner
                    .change_shared(&d.id, Change::Delete, |r| {
                        Ok(!r.pinned && r.deleted_at.is_none())
                    })
                    .await
            }
            Action::Purge => {
                let written = inner
                    .change_shared(&d.id, Change::Purge, |r| {
                        Ok(!r.pinned
                            && r.deleted_at.map_or(!r.status.is_ready(), |at| {
                                config.retention.check_undelete(at, now).is_err()
                            }))
                    })
                    .await;
                // Recorded as purged first, so that no host undeletes or
                // pins it while its objects go; a crash between leaves
                // objects no catalog records again (`docs/storage.md`).
                if matches!(written, Ok(true)) {
                    inner.checkpoint("prune:purge-recorded");
                    inner.store.delete_backup(&record.target, &id).await?;
                }
                written
            }
            _ => Ok(false),
        };
        match outcome {
            Ok(true) if d.action == Action::Delete => report.deleted.push(d.id.clone()),
            Ok(true) => report.purged.push(d.id.clone()),
            Ok(false) => {}
            // Purged by another host since the plan.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if !report.deleted.is_empty() || !report.purged.is_empty() {
        tracing::info!(target = %config.name, deleted = report.deleted.len(), purged = report.purged.len(), "retention applied");
    }
    Ok(report)
}
