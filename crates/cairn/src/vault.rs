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

/// Called at the named points of a job where a crash matters most (see
/// [`VaultBuilder::crash_points`]).
pub type CrashHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Who makes this vault's backups, as their manifests record it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub(crate) hostname: String,
    pub(crate) model: Option<String>,
    pub(crate) serial: Option<String>,
    pub(crate) software_version: Option<String>,
}

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
    identity: Identity,
    crash: Option<CrashHook>,
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

    /// The host name recorded in backups and leases (default: the
    /// system's host name, as `uname -n` prints it).
    #[must_use]
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.identity.hostname = name.into();
        self
    }

    /// The device model recorded in every backup's manifest and record
    /// (default: none).
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.identity.model = Some(model.into());
        self
    }

    /// The device serial number recorded in every backup (default: none).
    #[must_use]
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.identity.serial = Some(serial.into());
        self
    }

    /// The software version recorded in every backup (default
    /// `cairn/<version>`; an embedder may give its own name and version).
    #[must_use]
    pub fn software_version(mut self, version: impl Into<String>) -> Self {
        self.identity.software_version = Some(version.into());
        self
    }

    /// For crash tests: `hook` is called with the name of each point where a
    /// crash matters most: `backup:sealed` (a backup's seal is published, the
    /// backup not yet recorded), `restore:rename` (before each rename of an
    /// in-place restore), `restore:applied` (every rename done and the
    /// journal committed, the job's end not yet recorded). A test kills its
    /// own process there.
    #[doc(hidden)]
    #[must_use]
    pub fn crash_points(mut self, hook: CrashHook) -> Self {
        self.crash = Some(hook);
        self
    }

    /// Opens the store and the catalog, checks that the signing key is this
    /// installation's, then recovers from a crash: jobs whose process is
    /// gone are ended as interrupted and their leases freed; a backup they
    /// had sealed is recorded as ready, anything else they stored removed;
    /// interrupted restores are rolled back, or found committed; their
    /// staging and scratch folders removed.
    ///
    /// The first open records the signing key's id in the catalog. A later
    /// open with another key is refused ([`Error::WrongKey`]) unless the
    /// recorded key is among the trusted ones ([`VaultBuilder::trust`]): that
    /// is a rotation made on purpose, and the new key is recorded.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a missing or invalid setting, [`Error::WrongKey`],
    /// store and catalog errors.
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
        let mut trusted = vec![key.public_key()];
        trusted.extend(self.trusted);
        check_signer(&catalog, &trusted, (self.clock)()).await?;
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
        let inner = Arc::new(Inner {
            store,
            catalog,
            key: Arc::new(key),
            trusted,
            origin,
            targets: std::sync::RwLock::new(targets),
            journals: state_dir.join("journals"),
            scratch: state_dir.join("scratch"),
            state_dir,
            job_timeout: SignedDuration::try_from(self.job_timeout)
                .map_err(|e| Error::Config(format!("job timeout: {e}")))?,
            lease_ttl: self.lease_ttl,
            threads: self.threads,
            clock: self.clock,
            identity: self.identity,
            crash: self.crash,
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
    /// Jobs whose process had died, now ended: `interrupted`, or, past
    /// their commit point, failed with what they left in place named.
    pub interrupted: Vec<Job>,
    /// Backups a dead job had sealed: complete, now recorded as ready.
    pub sealed: Vec<(TargetName, BackupId)>,
    /// Partial backups (archives without a seal) removed from the store.
    pub removed: Vec<(TargetName, BackupId)>,
    /// Files of interrupted uploads removed from a local store.
    pub leftovers: Vec<String>,
    /// Restores cleaned up after: rolled back from their journals, or found
    /// committed; with the staging folders removed.
    pub restores: Vec<cairn_source::Recovered>,
    /// Scratch folders (database snapshots) of dead jobs removed.
    pub scratch: Vec<PathBuf>,
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
    state_dir: PathBuf,
    pub(crate) job_timeout: SignedDuration,
    pub(crate) lease_ttl: Duration,
    pub(crate) threads: usize,
    clock: Clock,
    pub(crate) identity: Identity,
    crash: Option<CrashHook>,
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

    /// Crash recovery (see [`VaultBuilder::open`]). Processes sharing the
    /// state folder recover one at a time (an exclusive lock on
    /// `recovery.lock`), so that two never undo the same journal.
    async fn recover(&self) -> Result<Recovery, Error> {
        let lock = {
            let dir = self.state_dir.clone();
            tokio::task::spawn_blocking(move || lock_recovery(&dir))
                .await
                .map_err(task)??
        };
        let now = self.now();
        let host = self.identity.hostname.clone();
        let unfinished = self.blocking(Catalog::unfinished_jobs).await?;
        let (dead, live): (Vec<_>, Vec<_>) = unfinished
            .into_iter()
            .partition(|u| owner_is_gone(&u.job, u.owner.as_deref(), u.heartbeat, &host, now));
        let live: std::collections::HashSet<String> = live.into_iter().map(|u| u.job.id).collect();
        let mut report = Recovery::default();
        {
            let (journals, live) = (self.journals.clone(), live.clone());
            report.restores = tokio::task::spawn_blocking(move || {
                cairn_source::recover(&journals, |id| !live.contains(id))
            })
            .await
            .map_err(task)??;
        }
        let mut swept = Vec::new();
        for u in dead {
            let job = u.job;
            tracing::warn!(job = %job.id, kind = %job.kind, target = %job.target, "job interrupted by a crash");
            let event = self.settle(&job, &mut report).await?;
            let (id, ev) = (job.id.clone(), event);
            if let Some(ended) = self
                .blocking(move |c| c.end_unfinished(&id, &ev, now))
                .await?
            {
                report.interrupted.push(ended);
            }
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
            if matches!(job.kind, JobKind::Backup | JobKind::Upload) && !swept.contains(&target) {
                swept.push(target.clone());
                // Only when nobody else holds the target: then no upload runs.
                let busy = self
                    .store
                    .current_lease(&target)
                    .await?
                    .is_some_and(|l| l.is_active(now));
                if !busy {
                    for id in self.store.remove_incomplete(&target, now).await? {
                        report.removed.push((target.clone(), id));
                    }
                    report
                        .leftovers
                        .extend(self.store.remove_upload_leftovers(&target).await?);
                }
            }
        }
        {
            let (scratch, live) = (self.scratch.clone(), live);
            report.scratch = tokio::task::spawn_blocking(move || sweep_scratch(&scratch, &live))
                .await
                .map_err(task)??;
        }
        drop(lock);
        Ok(report)
    }

    /// Settles what a dead job left and says how it ended: a backup it had
    /// sealed is recorded as ready, anything else it stored removed; a
    /// restore found committed is reported done.
    async fn settle(&self, job: &Job, report: &mut Recovery) -> Result<cairn_job::Event, Error> {
        use cairn_job::{Committed, Event};
        let backup = job
            .resource
            .as_ref()
            .and_then(|r| BackupId::parse(&r.id).ok());
        let target = TargetName::parse(&job.target).ok();
        match (job.kind, backup, target) {
            (JobKind::Backup | JobKind::Upload, Some(id), Some(target)) => {
                match crate::rebuild::sealed_record(&self.store, &target, &id, &self.trusted)
                    .await?
                {
                    Ok(record) => {
                        self.blocking(move |c| match c.get_backup(&record.id)? {
                            Some(_) => c.complete_backup(&record),
                            None => c.insert_backup(&record),
                        })
                        .await?;
                        tracing::info!(backup = %id, "a dead job's backup was sealed: recorded as ready");
                        report.sealed.push((target, id));
                        let verify = self
                            .find_target(&job.target)
                            .is_some_and(|t| t.verify_after_write.is_some());
                        Ok(Event::InterruptedAfterCommit(Committed {
                            done: format!("backup {id} is sealed and ready"),
                            missed: Some(if verify {
                                "the verification after writing and retention".to_owned()
                            } else {
                                "retention".to_owned()
                            }),
                        }))
                    }
                    Err(why) => {
                        tracing::info!(backup = %id, %why, "a dead job's backup was not sealed: removed");
                        self.store.delete_backup(&target, &id).await?;
                        let message = "the process making it stopped before it was sealed; what it had stored was removed";
                        self.blocking(move |c| match c.get_backup(&id)? {
                            Some(r) if !r.status.is_ready() => c.set_status(
                                &id,
                                cairn_catalog::BackupStatus::Failed,
                                Some(message),
                            ),
                            _ => Ok(()),
                        })
                        .await?;
                        report.removed.push((target, id));
                        Ok(Event::Interrupted)
                    }
                }
            }
            (JobKind::Restore | JobKind::Reset, _, _) => {
                let committed = report
                    .restores
                    .iter()
                    .find(|r| r.id == job.id && r.committed);
                Ok(match committed {
                    Some(r) => Event::InterruptedAfterCommit(Committed {
                        done: match backup {
                            Some(b) => format!("the restore of backup {b} is in place"),
                            None => "the factory reset is in place".to_owned(),
                        },
                        missed: (!r.post_hook_ran).then(|| "the post-restore hook".to_owned()),
                    }),
                    None => Event::Interrupted,
                })
            }
            _ => Ok(Event::Interrupted),
        }
    }
}

/// Refuses a signing key that is not this installation's (see
/// [`VaultBuilder::open`]); records it on first use and after a rotation.
async fn check_signer(
    catalog: &Arc<Catalog>,
    trusted: &[PublicKey],
    now: Timestamp,
) -> Result<(), Error> {
    let current = trusted[0].key_id().to_string();
    let earlier: Vec<String> = trusted[1..]
        .iter()
        .map(|k| k.key_id().to_string())
        .collect();
    let c = Arc::clone(catalog);
    tokio::task::spawn_blocking(move || match c.recorded_signer()? {
        Some(r) if r == current => Ok(()),
        Some(r) if !earlier.contains(&r) => Err(Error::WrongKey {
            key: current,
            expected: r,
        }),
        _ => Ok(c.record_signer(&current, now)?),
    })
    .await
    .map_err(task)?
}

/// Takes the state folder's recovery lock (released when the file is dropped).
fn lock_recovery(state_dir: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("recovery.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::Config(format!("opening {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::Config(format!("locking {}: {e}", path.display())))?;
    Ok(file)
}

/// Removes what the scratch folder holds for jobs that no longer run:
/// `scratch/<job id>/` folders of jobs not in `live`, and snapshot folders
/// of earlier versions (`.cairn-snapshot-*`) when no job runs at all.
fn sweep_scratch(
    scratch: &Path,
    live: &std::collections::HashSet<String>,
) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(scratch) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::Config(format!("reading {}: {e}", scratch.display()))),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with("job_") && !live.contains(&name))
            || (name.starts_with(".cairn-snapshot-") && live.is_empty());
        if !stale {
            continue;
        }
        let path = entry.path();
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| Error::Config(format!("removing {}: {e}", path.display())))?;
        removed.push(path);
    }
    Ok(removed)
}

/// The system's host name (`uname -n`), or `localhost` if it has none.
fn system_hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
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
            identity: Identity {
                hostname: system_hostname(),
                ..Identity::default()
            },
            crash: None,
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
    /// [`Error::NotFound`], [`Error::Leased`], [`Error::Pinned`].
    pub async fn delete(&self, id: &str) -> Result<BackupRecord, Error> {
        let record = self.inner.backup_record(id).await?;
        if record.pinned {
            return Err(Error::Pinned {
                backup: id.to_owned(),
            });
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
