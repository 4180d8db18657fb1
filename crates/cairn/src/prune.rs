//! Applying retention to a target.

use std::sync::Arc;

use cairn_catalog::BackupRecord;
use cairn_job::JobKind;
use cairn_job::idempotency::IdempotencyKey;
use cairn_retention::{Action, Backup, Plan};
use serde::Serialize;

use crate::config::TargetConfig;
use crate::error::Error;
use crate::jobs::{JobHandle, Spec};
use crate::vault::{Inner, Vault};

/// What retention decided and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Every backup with its decision and reasons.
    pub plan: Plan,
    /// Backups soft-deleted now.
    pub deleted: Vec<String>,
    /// Backups removed from the store and the catalog.
    pub purged: Vec<String>,
    /// Whether nothing was changed (dry run).
    pub dry_run: bool,
}

impl PruneReport {
    /// The ids deleted or purged.
    pub fn changed(&self) -> Vec<String> {
        self.deleted.iter().chain(&self.purged).cloned().collect()
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
    /// [`Error::NotFound`], [`Error::Busy`].
    pub async fn prune(&self, target: &str, dry_run: bool) -> Result<JobHandle, Error> {
        self.prune_with_key(target, dry_run, None).await
    }

    /// [`Vault::prune`] with an idempotency key (see [`Vault::verify_with_key`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Busy`], [`Error::Idempotency`].
    pub async fn prune_with_key(
        &self,
        target: &str,
        dry_run: bool,
        key: Option<IdempotencyKey>,
    ) -> Result<JobHandle, Error> {
        let config = self.inner.target(target)?;
        let inner = Arc::clone(&self.inner);
        let spec = Spec::new(JobKind::Prune, target, None, key.as_ref(), &dry_run)?;
        self.inner
            .start(spec, move |_ctx| async move {
                let report = apply(&inner, &config, dry_run).await?;
                Ok(serde_json::to_value(&report).unwrap_or_default())
            })
            .await
    }
}

/// Plans retention for a target and, unless `dry_run`, applies the plan.
/// Backups in use by a job are never touched.
pub(crate) async fn apply(
    inner: &Arc<Inner>,
    config: &TargetConfig,
    dry_run: bool,
) -> Result<PruneReport, Error> {
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
        })
        .collect();
    let now = inner.now();
    let plan = config
        .retention
        .plan(&backups, now)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut report = PruneReport {
        plan,
        deleted: Vec::new(),
        purged: Vec::new(),
        dry_run,
    };
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
        match d.action {
            Action::Delete => {
                inner
                    .blocking(move |c| c.set_deleted(&id, Some(now)))
                    .await?;
                report.deleted.push(d.id.clone());
            }
            Action::Purge => {
                inner.store.delete_backup(&record.target, &id).await?;
                inner.blocking(move |c| c.remove_backup(&id)).await?;
                report.purged.push(d.id.clone());
            }
            _ => {}
        }
    }
    if !report.deleted.is_empty() || !report.purged.is_empty() {
        tracing::info!(target = %config.name, deleted = report.deleted.len(), purged = report.purged.len(), "retention applied");
    }
    Ok(report)
}
