//! Building a vault: its settings, and opening it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_catalog::Catalog;
use cairn_integrity::{PublicKey, SigningKey};
use cairn_manifest::OriginId;
use cairn_storage::{Store, StoreOptions};
use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, task};
use crate::jobs::JobObserver;
use crate::recovery::check_signer;
use crate::target::{TargetConfig, apply_settings};
use crate::vault::{Inner, Vault};

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
    identities: cairn_crypt::Identities,
    require_encryption: bool,
    origin: Option<OriginId>,
    targets: Vec<TargetConfig>,
    job_timeout: Duration,
    lease_ttl: Duration,
    threads: usize,
    clock: Clock,
    identity: Identity,
    crash: Option<CrashHook>,
    observers: Vec<Arc<dyn JobObserver>>,
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
    /// The defaults: nothing set but the job timeout, the lease's time to
    /// live, every CPU and the system's clock and host name.
    pub(crate) fn new() -> Self {
        VaultBuilder {
            store_url: None,
            store_options: StoreOptions::default(),
            catalog: None,
            key: None,
            trusted: Vec::new(),
            identities: cairn_crypt::Identities::new(),
            require_encryption: false,
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
            observers: Vec::new(),
        }
    }

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

    /// age identities that open encrypted backups (restores, full
    /// verification, downloads, and the parent of an incremental backup);
    /// each call adds to the list, so that old identities keep opening old
    /// backups. A host that only writes full backups needs none.
    #[must_use]
    pub fn age_identities(mut self, identities: cairn_crypt::Identities) -> Self {
        self.identities.extend(identities);
        self
    }

    /// Refuses to write a backup that is not encrypted (a target without
    /// recipients, an upload) and to restore one in place: a store whose
    /// owner swapped in plain backups, or a target left unencrypted by
    /// mistake, is refused rather than trusted (`docs/encryption.md`).
    #[must_use]
    pub fn require_encryption(mut self, on: bool) -> Self {
        self.require_encryption = on;
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

    /// Tells `observer` when each job of this vault starts and ends (the
    /// server's metrics count them so, scheduled jobs included).
    #[must_use]
    pub fn observe(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// For crash tests: `hook` is called with the name of each point where a
    /// crash matters most: `backup:sealed` (a backup's seal is published, the
    /// backup not yet recorded), `restore:rename` (before each rename of an
    /// in-place restore), `restore:applied` (every rename done and the
    /// journal committed, the job's end not yet recorded),
    /// `prune:purge-recorded` (a purge is in the store's state log, the
    /// backup's objects not yet removed). A test kills its
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
            identities: Arc::new(self.identities),
            require_encryption: self.require_encryption,
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
            observers: self.observers,
            closing: std::sync::atomic::AtomicBool::new(false),
            running: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            backup_leases: Mutex::new(HashMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
        });
        let recovery = inner.recover().await?;
        Ok(Vault { inner, recovery })
    }
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
