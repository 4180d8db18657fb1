//! The vault and its quick operations: listing, reading, deleting and
//! pinning backups, jobs and their cancellation, restore status.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_catalog::{BackupFilter, BackupRecord, Catalog, Cursor, Page, TargetSummary};
use cairn_integrity::{PublicKey, SigningKey};
use cairn_job::{Job, JobState, RestoreStatus};
use cairn_manifest::{BackupId, OriginId, TargetName};
use cairn_storage::Store;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::builder::{Clock, CrashHook, Identity, VaultBuilder};
use crate::error::{Error, task};
use crate::jobs::{JobHandle, holder_backup};
use crate::recovery::Recovery;
use crate::shared::{Change, SyncReport};
use crate::target::TargetConfig;

type LiveJob = (Arc<watch::Sender<Job>>, Arc<AtomicBool>);

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) key: Arc<SigningKey>,
    pub(crate) trusted: Vec<PublicKey>,
    /// The age identities that open encrypted backups.
    pub(crate) identities: Arc<cairn_crypt::Identities>,
    /// Plain backups are neither written nor restored in place.
    pub(crate) require_encryption: bool,
    pub(crate) origin: OriginId,
    /// The targets, with the settings changed at run time applied.
    pub(crate) targets: std::sync::RwLock<BTreeMap<String, TargetConfig>>,
    pub(crate) journals: PathBuf,
    pub(crate) scratch: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) job_timeout: SignedDuration,
    pub(crate) lease_ttl: Duration,
    pub(crate) threads: usize,
    pub(crate) clock: Clock,
    pub(crate) identity: Identity,
    pub(crate) crash: Option<CrashHook>,
    /// Told of every job's start and end.
    pub(crate) observers: Vec<Arc<dyn crate::jobs::JobObserver>>,
    /// Set by [`Vault::shutdown`]: no new job starts.
    pub(crate) closing: AtomicBool,
    /// Target → the mutating job running on it.
    pub(crate) running: Mutex<HashMap<String, String>>,
    /// Job id → its live state and cancel flag.
    pub(crate) jobs: Mutex<HashMap<String, LiveJob>>,
    /// Backup id → the jobs reading it.
    pub(crate) backup_leases: Mutex<HashMap<String, Vec<String>>>,
    /// Held while the catalog follows the store (`shared.rs`).
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("store", &self.store)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Tells a crash test's hook where a job is.
    pub(crate) fn checkpoint(&self, point: &str) {
        if let Some(hook) = &self.crash {
            hook(point);
        }
    }

    /// The crash test's hook, for code that runs away from the vault.
    pub(crate) fn crash_hook(&self) -> Option<CrashHook> {
        self.crash.clone()
    }

    /// The record of a backup of `target` starting now: `creating`, made
    /// by this vault.
    pub(crate) fn creating(
        &self,
        target: &TargetName,
        kind: cairn_manifest::BackupKind,
        label: Option<&str>,
        description: Option<&str>,
    ) -> BackupRecord {
        let mut r = BackupRecord::creating(BackupId::generate(), target.clone(), kind, self.now());
        r.label = label.map(str::to_owned);
        r.description = description.map(str::to_owned);
        r.origin = Some(self.origin.to_string());
        r.signer = Some(self.key.key_id().to_string());
        r.hostname = Some(self.identity.hostname.clone());
        r.model.clone_from(&self.identity.model);
        r.serial.clone_from(&self.identity.serial);
        r.software_version = Some(
            self.identity
                .software_version
                .clone()
                .unwrap_or_else(|| concat!("cairn/", env!("CARGO_PKG_VERSION")).to_owned()),
        );
        r
    }

    /// A target's configuration as it is now.
    pub(crate) fn target(&self, name: &str) -> Result<TargetConfig, Error> {
        self.find_target(name).ok_or_else(|| Error::NotFound {
            what: "target",
            id: name.to_owned(),
        })
    }

    pub(crate) fn find_target(&self, name: &str) -> Option<TargetConfig> {
        self.targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(crate) fn target_list(&self) -> Vec<TargetConfig> {
        self.targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Catalog) -> Result<T, cairn_catalog::Error> + Send + 'static,
        T: Send + 'static,
    {
        let c = Arc::clone(&self.catalog);
        Ok(tokio::task::spawn_blocking(move || f(&c))
            .await
            .map_err(task)??)
    }

    pub(crate) async fn backup_record(&self, id: &str) -> Result<BackupRecord, Error> {
        let bid = BackupId::parse(id).map_err(|_| Error::NotFound {
            what: "backup",
            id: id.to_owned(),
        })?;
        self.blocking(move |c| c.get_backup(&bid))
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "backup",
                id: id.to_owned(),
            })
    }

    /// The job using a backup, in this process or (through a target's lease) another.
    pub(crate) async fn backup_user(&self, record: &BackupRecord) -> Result<Option<String>, Error> {
        let id = record.id.to_string();
        if let Some(jobs) = self
            .backup_leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .filter(|v| !v.is_empty())
        {
            return Ok(Some(jobs[0].clone()));
        }
        if let Some(lease) = self.store.current_lease(&record.target).await?
            && lease.is_active(self.now())
            && holder_backup(&lease.holder) == Some(id.as_str())
        {
            return Ok(Some(lease.holder));
        }
        Ok(None)
    }
}

/// Backups and restores of a service's targets: the engine that embedders use.
///
/// Cheap to clone; every clone is the same vault. Long operations return a
/// [`JobHandle`]; they run on the Tokio runtime the vault is used from
/// (Cairn never starts its own), with blocking work on its blocking pool.
#[derive(Debug, Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
    pub(crate) recovery: Recovery,
}

impl Vault {
    /// Starts building a vault.
    pub fn builder() -> VaultBuilder {
        VaultBuilder::new()
    }

    /// What opening the vault recovered from a crash.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The targets, in name order, with their settings as they are now
    /// (the configuration, overridden by [`Vault::set_retention`] and
    /// [`Vault::set_schedule_every`]).
    pub fn targets(&self) -> Vec<TargetConfig> {
        self.inner.target_list()
    }

    /// The names of the targets this vault runs, in name order (without
    /// copying their settings).
    pub fn target_names(&self) -> Vec<TargetName> {
        self.inner
            .targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|t| t.name.clone())
            .collect()
    }

    /// One target, as [`Vault::targets`] gives it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub fn target(&self, name: &str) -> Result<TargetConfig, Error> {
        self.inner.target(name)
    }

    /// Rebuilds the catalog's backup records from the store (after the
    /// catalog was lost or damaged): every sealed backup whose seal one of
    /// the trusted keys verifies (the signing key, and the earlier ones
    /// after a rotation) is recorded again; then every target's shared
    /// state is applied from its first record (the pins, soft deletes and
    /// purges of every host). Pins and soft deletes only this catalog knew
    /// (made before the shared state existed) are kept.
    ///
    /// # Errors
    ///
    /// Store and catalog errors.
    pub async fn rebuild_catalog(&self) -> Result<crate::RebuildReport, Error> {
        let one = self.inner.sync_lock.lock().await;
        let mut report = crate::rebuild::rebuild_catalog(
            &self.inner.store,
            Arc::clone(&self.inner.catalog),
            &self.inner.trusted,
            &self.inner.identities,
        )
        .await?;
        drop(one);
        // The shared state, from its first record: pins, deletes and
        // purges as every host decided them.
        for target in self.inner.store.list_targets().await? {
            let t = target.clone();
            self.inner.blocking(move |c| c.reset_state(&t)).await?;
            report.state_records += self.inner.sync_target(&target).await?.changes;
        }
        Ok(report)
    }

    /// The public key that verifies this vault's backups.
    pub fn public_key(&self) -> PublicKey {
        self.inner.trusted[0]
    }

    /// Backups matching `filter`, newest first, a page at a time.
    ///
    /// # Errors
    ///
    /// Catalog errors (a bad cursor is of kind `BadCursor`).
    pub async fn list(
        &self,
        filter: BackupFilter,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page, Error> {
        self.inner
            .blocking(move |c| c.list_backups(&filter, limit, cursor.as_ref()))
            .await
    }

    /// What the catalog holds of each target with live backups (also
    /// those this vault follows without running them): counts, stored
    /// bytes, the newest ready backup, the newest backup's status, the
    /// last verification's outcome. One catalog query.
    ///
    /// # Errors
    ///
    /// Catalog errors.
    pub async fn summaries(&self) -> Result<Vec<TargetSummary>, Error> {
        self.inner.blocking(Catalog::target_summaries).await
    }

    /// One backup's record.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub async fn get(&self, id: &str) -> Result<BackupRecord, Error> {
        self.inner.backup_record(id).await
    }

    /// Soft-deletes a backup: hidden from lists, recoverable with
    /// [`Vault::undelete`] until the target's `deleted_grace` ends, then
    /// purged by retention. Refused while a job uses it, and for a pinned
    /// backup (pinned by any host sharing the store: the decision is
    /// recorded in the store's shared state after following it,
    /// `docs/storage.md` "Shared state").
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Leased`], [`Error::Pinned`]; store
    /// errors, and a failed verification for a state record that does not
    /// check out.
    pub async fn delete(&self, id: &str) -> Result<BackupRecord, Error> {
        let inner = &self.inner;
        let record = inner.backup_record(id).await?;
        if let Some(job) = inner.backup_user(&record).await? {
            return Err(Error::Leased {
                backup: id.to_owned(),
                job,
            });
        }
        inner
            .change_shared(id, Change::Delete, |r| {
                if r.pinned {
                    return Err(Error::Pinned {
                        backup: id.to_owned(),
                    });
                }
                Ok(r.deleted_at.is_none())
            })
            .await?;
        inner.backup_record(id).await
    }

    /// Brings a soft-deleted backup back (deleted by any host sharing the
    /// store).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also when it was purged), [`Error::Gone`] past the window.
    pub async fn undelete(&self, id: &str) -> Result<BackupRecord, Error> {
        let inner = &self.inner;
        let now = inner.now();
        inner
            .change_shared(id, Change::Undelete, |r| {
                let Some(deleted_at) = r.deleted_at else {
                    return Ok(false);
                };
                let policy = inner
                    .find_target(r.target.as_str())
                    .map(|t| t.retention)
                    .unwrap_or_default();
                policy
                    .check_undelete(deleted_at, now)
                    .map_err(|g| Error::Gone {
                        backup: id.to_owned(),
                        deleted_at: g.deleted_at,
                        until: g.until,
                    })?;
                Ok(true)
            })
            .await?;
        inner.backup_record(id).await
    }

    /// Pins a backup: never evicted by retention, never deleted, by any
    /// host sharing the store.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], store and catalog errors.
    pub async fn pin(&self, id: &str) -> Result<BackupRecord, Error> {
        self.inner
            .change_shared(id, Change::Pin, |r| Ok(!r.pinned))
            .await?;
        self.inner.backup_record(id).await
    }

    /// Unpins a backup: retention treats it like any other again.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], store and catalog errors.
    pub async fn unpin(&self, id: &str) -> Result<BackupRecord, Error> {
        self.inner
            .change_shared(id, Change::Unpin, |r| Ok(r.pinned))
            .await?;
        self.inner.backup_record(id).await
    }

    /// Brings the catalog up to the store for every target of this vault:
    /// the backups other hosts published and the decisions they recorded
    /// (pins, deletes, undeletes, purges). Every decision that depends on
    /// them does this for its target first; a server does it on a timer, a
    /// CLI before listing.
    ///
    /// # Errors
    ///
    /// Store and catalog errors; a failed verification for a state record
    /// that does not check out (not signed by a trusted key, or not the
    /// record its key says).
    pub async fn sync(&self) -> Result<SyncReport, Error> {
        self.sync_targets(self.target_names()).await
    }

    /// [`Vault::sync`] for every target the store holds, including those
    /// this vault does not run (a fleet view: their backups are listed and
    /// inspected like any other; restoring one in place is refused as
    /// foreign, as for any backup of another target). One listing of the
    /// store's targets more.
    ///
    /// # Errors
    ///
    /// As [`Vault::sync`].
    pub async fn sync_all_targets(&self) -> Result<SyncReport, Error> {
        let mut names = self.inner.store.list_targets().await?;
        for t in self.target_names() {
            if !names.contains(&t) {
                names.push(t);
            }
        }
        self.sync_targets(names).await
    }

    async fn sync_targets(&self, names: Vec<TargetName>) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        for name in names {
            let synced = self.inner.sync_target(&name).await?;
            report.targets += 1;
            report.new_backups += synced.new_backups;
            report.changes += synced.changes;
        }
        Ok(report)
    }

    /// The restore status of a target: its last restore or reset.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown target.
    pub async fn restore_status(&self, target: &str) -> Result<RestoreStatus, Error> {
        self.inner.target(target)?;
        let t = target.to_owned();
        let jobs = self
            .inner
            .blocking(move |c| c.list_jobs(Some(&t), &[], 1000))
            .await?;
        Ok(RestoreStatus::of(jobs.iter().find(|j| j.kind.is_restore())))
    }

    /// A job by id.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub async fn job(&self, id: &str) -> Result<JobHandle, Error> {
        let live = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|(tx, _)| tx.borrow().clone());
        if let Some(job) = live {
            return Ok(self.inner.handle_of(job));
        }
        let i = id.to_owned();
        let job = self
            .inner
            .blocking(move |c| c.get_job(&i))
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "job",
                id: id.to_owned(),
            })?;
        Ok(JobHandle::finished(job))
    }

    /// Jobs, newest first, optionally of one target and in some states.
    ///
    /// # Errors
    ///
    /// Catalog errors.
    pub async fn jobs(
        &self,
        target: Option<&str>,
        states: &[JobState],
        limit: usize,
    ) -> Result<Vec<Job>, Error> {
        let t = target.map(str::to_owned);
        let s = states.to_vec();
        self.inner
            .blocking(move |c| c.list_jobs(t.as_deref(), &s, limit))
            .await
    }

    /// Asks a running job to stop: at once if it runs in this process, else
    /// through the catalog, which the process running it polls twice a second.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown job, [`Error::Ended`] if it has ended.
    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        let live = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        let Some((tx, flag)) = live else {
            // Running in another process (or not running): ask through the catalog.
            let (i, now) = (id.to_owned(), self.inner.now());
            if self
                .inner
                .blocking(move |c| c.request_cancel(&i, now))
                .await?
            {
                return Ok(());
            }
            let i = id.to_owned();
            return match self.inner.blocking(move |c| c.get_job(&i)).await? {
                Some(job) => Err(Error::Ended {
                    job: id.to_owned(),
                    state: job.state,
                }),
                None => Err(Error::NotFound {
                    what: "job",
                    id: id.to_owned(),
                }),
            };
        };
        flag.store(true, Ordering::SeqCst);
        let now = self.inner.now();
        let mut saved = None;
        tx.send_modify(|job| {
            if let Ok(next) = job.apply(&cairn_job::Event::CancelRequest, now) {
                *job = next.clone();
                saved = Some(next);
            }
        });
        if let Some(job) = saved {
            self.inner.save(&job).await?;
        }
        Ok(())
    }
}
