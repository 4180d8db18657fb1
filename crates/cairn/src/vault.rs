//! The vault: configuration, opening with crash recovery, and the quick operations.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_catalog::{BackupFilter, BackupRecord, Catalog, Cursor, Page, TargetSettings};
use cairn_integrity::{PublicKey, SigningKey};
use cairn_job::{Job, JobKind, JobState, RestoreStatus};
use cairn_manifest::{BackupId, OriginId, TargetName};
use cairn_retention::{Policy, ScheduleState};
use cairn_storage::{Store, StoreOptions};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::config::{TargetConfig, apply_settings};
use crate::error::{Error, task};
use crate::jobs::{JobHandle, holder_backup, holder_job};

/// Where the vault gets the time: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Default time a job may run: 2 hours.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Default time to live of a target's lease (renewed every third of it).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// Builds a [`Vault`].
pub struct VaultBuilder {
    store_url: Option<String>,
    store_options: StoreOptions,
    catalog: Option<PathBuf>,
    key: Option<SigningKey>,
    trusted: Vec<PublicKey>,
    origin: Option<OriginId>,
    targets: Vec<TargetConfig>,
    job_timeout: Duration,
    lease_ttl: Duration,
    threads: usize,
    clock: Clock,
    hostname: String,
}

impl std::fmt::Debug for VaultBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultBuilder")
            .field("store_url", &self.store_url)
            .field("catalog", &self.catalog)
            .field("origin", &self.origin)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl VaultBuilder {
    /// The store: a path, `file:///…`, `s3://bucket/prefix`, `az://container/prefix`, `memory://`.
    #[must_use]
    pub fn store(mut self, url: impl Into<String>) -> Self {
        self.store_url = Some(url.into());
        self
    }

    /// Endpoint, credentials, retries and upload sizes of the store.
    #[must_use]
    pub fn store_options(mut self, options: StoreOptions) -> Self {
        self.store_options = options;
        self
    }

    /// The catalog's file. Its folder also holds restore journals and
    /// snapshot scratch space.
    #[must_use]
    pub fn catalog(mut self, path: impl Into<PathBuf>) -> Self {
        self.catalog = Some(path.into());
        self
    }

    /// The key that signs new backups (and whose public half verifies them).
    #[must_use]
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Another key whose backups this vault accepts (e.g. the previous key
    /// after a rotation).
    #[must_use]
    pub fn trust(mut self, key: PublicKey) -> Self {
        self.trusted.push(key);
        self
    }

    /// This installation's origin id, written into every backup; restores
    /// of backups from another origin need `force`.
    #[must_use]
    pub fn origin(mut self, origin: OriginId) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Adds a target.
    #[must_use]
    pub fn target(mut self, target: TargetConfig) -> Self {
        self.targets.push(target);
        self
    }

    /// How long a job may run before it is stopped (default 2 hours).
    #[must_use]
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// Time to live of the store lease a mutating job holds (default 60 s).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Compression threads per backup (default: every CPU).
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// The clock (default: the system's).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The host name recorded in backups and leases (default: `$HOSTNAME`
    /// or `localhost`).
    #[must_use]
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Opens the store and the catalog, then recovers from a crash: jobs
    /// left running are marked failed ("interrupted"), their leases freed,
    /// partial backups removed, interrupted restores rolled back.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a missing or invalid setting, store and catalog errors.
    pub async fn open(self) -> Result<Vault, Error> {
        let url = self
            .store_url
            .ok_or_else(|| Error::Config("no store URL".to_owned()))?;
        let catalog_path = self
            .catalog
            .ok_or_else(|| Error::Config("no catalog path".to_owned()))?;
        let key = self
            .key
            .ok_or_else(|| Error::Config("no signing key".to_owned()))?;
        let origin = self
            .origin
            .ok_or_else(|| Error::Config("no origin id".to_owned()))?;
        let mut targets = BTreeMap::new();
        for t in self.targets {
            t.validate()?;
            if targets.insert(t.name.to_string(), t).is_some() {
                return Err(Error::Config("a target is configured twice".to_owned()));
            }
        }
        let state_dir = catalog_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        for dir in [
            &state_dir,
            &state_dir.join("journals"),
            &state_dir.join("scratch"),
        ] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("creating {}: {e}", dir.display())))?;
        }
        let store = Store::open(&url, &self.store_options)?;
        let catalog = {
            let p = catalog_path.clone();
            Arc::new(
                tokio::task::spawn_blocking(move || Catalog::open(p))
                    .await
                    .map_err(task)??,
            )
        };
        {
            let c = Arc::clone(&catalog);
            let settings = tokio::task::spawn_blocking(move || c.target_settings())
                .await
                .map_err(task)??;
            for (name, s) in settings {
                if let Some(t) = targets.get_mut(&name) {
                    apply_settings(&s, t);
                }
            }
        }
        let mut trusted = vec![key.public_key()];
        trusted.extend(self.trusted);
        let inner = Arc::new(Inner {
            store,
            catalog,
            key: Arc::new(key),
            trusted,
            origin,
            targets: std::sync::RwLock::new(targets),
            journals: state_dir.join("journals"),
            scratch: state_dir.join("scratch"),
            job_timeout: SignedDuration::try_from(self.job_timeout)
                .map_err(|e| Error::Config(format!("job timeout: {e}")))?,
            lease_ttl: self.lease_ttl,
            threads: self.threads,
            clock: self.clock,
            hostname: self.hostname,
            running: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            backup_leases: Mutex::new(HashMap::new()),
        });
        let recovery = inner.recover().await?;
        Ok(Vault { inner, recovery })
    }
}

/// What [`VaultBuilder::open`] found and repaired.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// Jobs left running by a crash, now failed as interrupted.
    pub interrupted: Vec<Job>,
    /// Partial backups (archives without a seal) removed from the store.
    pub removed: Vec<(TargetName, BackupId)>,
    /// Files of interrupted uploads removed from a local store.
    pub leftovers: Vec<String>,
    /// Restores rolled back from their journals.
    pub rolled_back: Vec<cairn_source::Recovered>,
}

type LiveJob = (Arc<watch::Sender<Job>>, Arc<AtomicBool>);

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) key: Arc<SigningKey>,
    pub(crate) trusted: Vec<PublicKey>,
    pub(crate) origin: OriginId,
    /// The targets, with the settings changed at run time applied.
    pub(crate) targets: std::sync::RwLock<BTreeMap<String, TargetConfig>>,
    pub(crate) journals: PathBuf,
    pub(crate) scratch: PathBuf,
    pub(crate) job_timeout: SignedDuration,
    pub(crate) lease_ttl: Duration,
    pub(crate) threads: usize,
    clock: Clock,
    pub(crate) hostname: String,
    /// Target → the mutating job running on it.
    pub(crate) running: Mutex<HashMap<String, String>>,
    /// Job id → its live state and cancel flag.
    pub(crate) jobs: Mutex<HashMap<String, LiveJob>>,
    /// Backup id → the jobs reading it.
    pub(crate) backup_leases: Mutex<HashMap<String, Vec<String>>>,
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

    async fn recover(&self) -> Result<Recovery, Error> {
        let now = self.now();
        let host = self.hostname.clone();
        let interrupted = self
            .blocking(move |c| {
                c.interrupt_dead(now, |job, owner, beat| {
                    owner_is_gone(job, owner, beat, &host, now)
                })
            })
            .await?;
        let mut removed = Vec::new();
        let mut leftovers = Vec::new();
        let mut seen = Vec::new();
        for job in &interrupted {
            tracing::warn!(job = %job.id, kind = %job.kind, target = %job.target, "job interrupted by a crash");
            if !job.kind.is_mutating() {
                continue;
            }
            let Ok(target) = TargetName::parse(&job.target) else {
                continue;
            };
            // Free the dead job's lease; backups mention their id in the holder.
            if let Some(lease) = self.store.current_lease(&target).await?
                && holder_job(&lease.holder) == Some(job.id.as_str())
            {
                self.store.break_lease(&target, &lease.holder, now).await?;
            }
            if job.kind == JobKind::Backup && !seen.contains(&target) {
                seen.push(target.clone());
                // Only when nobody else holds the target: then no upload runs.
                let busy = self
                    .store
                    .current_lease(&target)
                    .await?
                    .is_some_and(|l| l.is_active(now));
                if !busy {
                    for id in self.store.remove_incomplete(&target, now).await? {
                        removed.push((target.clone(), id));
                    }
                    leftovers.extend(self.store.remove_upload_leftovers(&target).await?);
                }
            }
        }
        let journals = self.journals.clone();
        let rolled_back = tokio::task::spawn_blocking(move || cairn_source::recover(&journals))
            .await
            .map_err(task)??;
        Ok(Recovery {
            interrupted,
            removed,
            leftovers,
            rolled_back,
        })
    }
}

/// How long a job's owner may go without a heartbeat (every 2 s) before
/// its job counts as abandoned.
const STALE: SignedDuration = SignedDuration::from_secs(60);

/// This process, as a job's owner: `<host> <pid>`.
pub(crate) fn owner_name(host: &str) -> String {
    format!("{host} {}", std::process::id())
}

/// Whether the process that ran `job` is gone: on this host, its pid no
/// longer exists; anywhere, its heartbeat is older than [`STALE`]. A job
/// without an owner (written before owners were recorded, or in the instant
/// between creating a job and recording its owner) is judged by its last update.
fn owner_is_gone(
    job: &Job,
    owner: Option<&str>,
    beat: Option<Timestamp>,
    host: &str,
    now: Timestamp,
) -> bool {
    let stale = |t: Timestamp| t.saturating_add(STALE).is_ok_and(|t| t < now);
    let Some(owner) = owner else {
        return stale(job.updated_at);
    };
    if beat.is_none_or(stale) {
        return true;
    }
    match owner.rsplit_once(' ') {
        Some((h, pid)) if h == host => pid
            .parse::<i32>()
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_none_or(|pid| {
                matches!(
                    rustix::process::test_kill_process(pid),
                    Err(e) if e == rustix::io::Errno::SRCH
                )
            }),
        _ => false,
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
    recovery: Recovery,
}

impl Vault {
    /// Starts building a vault.
    pub fn builder() -> VaultBuilder {
        VaultBuilder {
            store_url: None,
            store_options: StoreOptions::default(),
            catalog: None,
            key: None,
            trusted: Vec::new(),
            origin: None,
            targets: Vec::new(),
            job_timeout: DEFAULT_JOB_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            clock: Arc::new(Timestamp::now),
            hostname: std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned()),
        }
    }

    /// What opening the vault recovered from a crash.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The targets, in name order, with their settings as they are now
    /// (the configuration, overridden by [`Vault::set_retention`] and
    /// [`Vault::set_schedule_every`]).
    pub fn targets(&self) -> Vec<TargetConfig> {
        self.inner.target_list()
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
    /// catalog was lost or damaged): every sealed backup whose seal a
    /// trusted key verifies is recorded again; pins and soft deletes of
    /// backups still in the catalog are kept.
    ///
    /// # Errors
    ///
    /// Store and catalog errors.
    pub async fn rebuild_catalog(&self) -> Result<crate::RebuildReport, Error> {
        crate::rebuild_catalog(
            &self.inner.store,
            Arc::clone(&self.inner.catalog),
            &self.inner.trusted[0],
        )
        .await
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
    /// purged by retention. Refused while a job uses it, and for a pinned backup.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Leased`], [`Error::Invalid`] (pinned).
    pub async fn delete(&self, id: &str) -> Result<BackupRecord, Error> {
        let record = self.inner.backup_record(id).await?;
        if record.pinned {
            return Err(Error::Invalid(format!(
                "backup {id} is pinned: unpin it first"
            )));
        }
        if let Some(job) = self.inner.backup_user(&record).await? {
            return Err(Error::Leased {
                backup: id.to_owned(),
                job,
            });
        }
        if record.deleted_at.is_some() {
            return Ok(record);
        }
        let now = self.inner.now();
        let bid = record.id;
        self.inner
            .blocking(move |c| c.set_deleted(&bid, Some(now)))
            .await?;
        self.inner.backup_record(id).await
    }

    /// Brings a soft-deleted backup back.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also when it was purged), [`Error::Gone`] past the window.
    pub async fn undelete(&self, id: &str) -> Result<BackupRecord, Error> {
        let record = self.inner.backup_record(id).await?;
        let Some(deleted_at) = record.deleted_at else {
            return Ok(record);
        };
        let policy = self
            .inner
            .find_target(record.target.as_str())
            .map(|t| t.retention)
            .unwrap_or_default();
        policy
            .check_undelete(deleted_at, self.inner.now())
            .map_err(|g| Error::Gone {
                backup: id.to_owned(),
                deleted_at: g.deleted_at,
                until: g.until,
            })?;
        let bid = record.id;
        self.inner
            .blocking(move |c| c.set_deleted(&bid, None))
            .await?;
        self.inner.backup_record(id).await
    }

    /// Pins (never evicted, never deleted) or unpins a backup.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub async fn pin(&self, id: &str, pinned: bool) -> Result<BackupRecord, Error> {
        let record = self.inner.backup_record(id).await?;
        let bid = record.id;
        self.inner
            .blocking(move |c| c.set_pinned(&bid, pinned))
            .await?;
        self.inner.backup_record(id).await
    }

    /// A short-lived URL to download a backup's archive: presigned for S3
    /// and Azure.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for stores that cannot sign (local, memory):
    /// a server serves those itself.
    pub async fn download_url(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<cairn_storage::SignedUrl, Error> {
        let record = self.inner.backup_record(id).await?;
        let key = record
            .archive_key
            .ok_or_else(|| Error::Invalid(format!("backup {id} has no archive")))?;
        let signer = self.inner.store.url_signer().ok_or_else(|| {
            Error::Unsupported(format!(
                "the store {} cannot sign URLs",
                self.inner.store.url()
            ))
        })?;
        Ok(signer.get_url(&key, ttl, self.inner.now()).await?)
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
    /// [`Error::NotFound`] for an unknown job, [`Error::Invalid`] if it has ended.
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
                Some(job) => Err(Error::Invalid(format!(
                    "job {id} has already ended ({})",
                    job.state
                ))),
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

    /// The schedule state of a target.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub async fn schedule_status(&self, target: &str) -> Result<ScheduleState, Error> {
        self.inner.target(target)?;
        let t = target.to_owned();
        self.inner.blocking(move |c| c.schedule(&t)).await
    }

    /// Enables or disables a target's automatic backups. Re-enabling is
    /// refused during the cooldown that follows a disable; neither is
    /// allowed while a backup or restore of the target runs.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Cooldown`], [`Error::Locked`].
    pub async fn schedule(&self, target: &str, enabled: bool) -> Result<ScheduleState, Error> {
        let rules = self.inner.target(target)?.schedule_rules;
        self.inner.check_unlocked(target)?;
        let state = self.schedule_status(target).await?;
        let now = self.inner.now();
        let next = if enabled {
            state.enable(&rules, now).map_err(|c| Error::Cooldown {
                target: target.to_owned(),
                disabled_at: c.disabled_at,
                until: c.until,
            })?
        } else {
            state.disable(now)
        };
        let t = target.to_owned();
        let saved = next;
        self.inner
            .blocking(move |c| c.put_schedule(&t, &saved, now))
            .await?;
        Ok(next)
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
        self.change_settings(target, move |s| s.retention = Some(policy))
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
        self.change_settings(target, move |s| s.every = Some(every))
            .await
    }

    async fn change_settings(
        &self,
        target: &str,
        change: impl FnOnce(&mut TargetSettings) + Send + 'static,
    ) -> Result<(), Error> {
        self.inner.target(target)?;
        self.inner.check_unlocked(target)?;
        let t = target.to_owned();
        let now = self.inner.now();
        let settings = self
            .inner
            .blocking(move |c| {
                let mut s = c
                    .target_settings()?
                    .into_iter()
                    .find(|(n, _)| *n == t)
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                change(&mut s);
                c.put_target_settings(&t, &s, now)?;
                Ok(s)
            })
            .await?;
        let mut targets = self
            .inner
            .targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = targets.get_mut(target) {
            apply_settings(&settings, t);
        }
        Ok(())
    }
}

impl Inner {
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
