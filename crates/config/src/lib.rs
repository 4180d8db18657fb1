//! The configuration file `cairn.toml`, shared by the `cairn` CLI, the
//! `cairn-server` REST server and services that embed Cairn, and the
//! zero-configuration state folder.
//!
//! [`load`] reads the file (or, without one, the defaults) and returns the
//! [`Settings`] a `cairn::Vault` is opened with. Paths in the file are
//! relative to it; the state folder (`$CAIRN_HOME`, else
//! `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`) keeps the store, the
//! catalog, the signing key (mode 0600, made on first use) and the origin id
//! when the file does not name them.
//!
//! Every value is checked while the file is read, so that an error is one
//! line naming the file, the line and the key path
//! (`cairn.toml:14:1: target[0].retention: unknown field `keep_lats`, …`).
//!
//! ```
//! let file: cairn_config::File = toml::from_str(r#"
//!     store = "s3://backups/web"
//!     [[target]]
//!     name = "web"
//!     every = "6h"
//!     [[target.component]]
//!     name = "db"
//!     kind = "sqlite"
//!     path = "/var/lib/web/db.sqlite"
//! "#).unwrap();
//! assert_eq!(file.targets[0].name.as_str(), "web");
//! ```

mod error;
mod file;
mod paths;
mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::{ChainRule, TargetConfig};
use cairn_integrity::{PublicKey, SigningKey};
use cairn_manifest::OriginId;
use cairn_retention::ScheduleRules;
use cairn_source::{ComponentSpec, Hook};
use cairn_storage::StoreOptions;

pub use crate::error::{Error, ErrorKind, Remedy};
pub use crate::file::{
    ComponentFile, File, Interval, Paths, ServerFile, StoreSettings, TargetFile, TokenFile,
};
pub use crate::paths::target_for_path;
pub use crate::state::{Rotated, create_once, home, key, rotate_key, trusted_keys, write_new};

/// Everything needed to open a vault.
#[derive(Debug)]
pub struct Settings {
    /// The state folder.
    pub home: PathBuf,
    /// The store URL or path.
    pub store: String,
    /// The store's settings.
    pub store_options: StoreOptions,
    /// The catalog file.
    pub catalog: PathBuf,
    /// The signing key file ([`Settings::signing_key`] reads or makes it).
    pub key_path: PathBuf,
    /// Public keys of earlier signing keys, still trusted for their backups.
    pub trusted: Vec<PublicKey>,
    /// This installation's origin id.
    pub origin: OriginId,
    /// The device model, serial number and software version recorded in
    /// every backup.
    pub model: Option<String>,
    /// See [`Settings::model`].
    pub serial: Option<String>,
    /// See [`Settings::model`].
    pub software_version: Option<String>,
    /// The job time limit, if set.
    pub job_timeout: Option<Duration>,
    /// The targets: the file's, then those `cairn backup DIR` made.
    pub targets: Vec<TargetConfig>,
    /// The installation's age recipients (targets without their own
    /// `encrypt_to` use them).
    pub encrypt_to: Vec<cairn::AgeRecipient>,
    /// The age identity files that open encrypted backups.
    pub identities: Vec<PathBuf>,
    /// Whether plain backups are refused (written or restored in place).
    pub require_encryption: bool,
    /// The `[server]` section.
    pub server: ServerFile,
    /// Where the configuration came from (none: zero configuration).
    pub source: Option<PathBuf>,
}

impl Settings {
    /// The signing key ([`key`]: made on first use, checked against the
    /// state folder's record of it).
    ///
    /// # Errors
    ///
    /// As [`key`].
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        key(&self.key_path, Some(&self.home))
    }

    /// A `Vault` builder with everything these settings say (the signing
    /// key is read, or made on first use, by [`Settings::signing_key`]); add
    /// a clock or threads, then `open()`.
    ///
    /// # Errors
    ///
    /// The key cannot be read or made, is readable by others, or is not
    /// this installation's.
    pub fn vault_builder(&self) -> Result<cairn::VaultBuilder, Error> {
        let mut b = cairn::Vault::builder()
            .store(self.store.clone())
            .store_options(self.store_options.clone())
            .catalog(self.catalog.clone())
            .signing_key(self.signing_key()?)
            .origin(self.origin.clone());
        for k in &self.trusted {
            b = b.trust(*k);
        }
        if let Some(m) = &self.model {
            b = b.model(m);
        }
        if let Some(s) = &self.serial {
            b = b.serial(s);
        }
        if let Some(v) = &self.software_version {
            b = b.software_version(v);
        }
        if let Some(t) = self.job_timeout {
            b = b.job_timeout(t);
        }
        b = b.require_encryption(self.require_encryption);
        for path in &self.identities {
            let ids = cairn::AgeIdentities::load(path).map_err(|e| {
                let hint = match e.kind() {
                    cairn::AgeErrorKind::InsecurePermissions => {
                        Some(format!("chmod 600 {}", path.display()))
                    }
                    _ => None,
                };
                let err = Error::usage(e.to_string());
                match hint {
                    Some(h) => err.hint(h),
                    None => err,
                }
            })?;
            b = b.age_identities(ids);
        }
        for t in &self.targets {
            b = b.target(t.clone());
        }
        Ok(b)
    }

    /// Starts signing with a new key on purpose ([`rotate_key`]); the
    /// settings then hold the old public key as trusted.
    ///
    /// # Errors
    ///
    /// As [`rotate_key`].
    pub fn rotate_key(&mut self, new: Option<SigningKey>) -> Result<Rotated, Error> {
        let old = self.signing_key()?.public_key();
        let rotated = rotate_key(&self.key_path, &self.home, new)?;
        self.trusted.push(old);
        Ok(rotated)
    }
}

/// The configuration file to read: `--config`, else `$CAIRN_CONFIG`, else
/// `./cairn.toml`, else `<home>/cairn.toml`, if they exist.
///
/// # Errors
///
/// An explicit file that does not exist.
pub fn find(explicit: Option<&Path>, home: &Path) -> Result<Option<PathBuf>, Error> {
    if let Some(p) = explicit {
        if !p.exists() {
            return Err(Error::usage(format!(
                "the configuration file {} does not exist",
                p.display()
            ))
            .hint("create it, or give another file")
            .with_remedy(Remedy::CreateConfig));
        }
        return Ok(Some(absolute(p)));
    }
    Ok([PathBuf::from("cairn.toml"), home.join("cairn.toml")]
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| absolute(&p)))
}

/// `p` from the root, so that errors and logs name the file unambiguously.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// Parses the text of a configuration file read from `path` (named in errors).
///
/// # Errors
///
/// One line naming the file, the line and column, the key path and what is
/// wrong (an unknown key, a value of the wrong type, a bad name or
/// duration, a missing key).
pub fn parse(path: &Path, text: &str) -> Result<File, Error> {
    let de = toml::Deserializer::parse(text).map_err(|e| Error::in_file(path, text, "", &e))?;
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::in_file(path, text, &e.path().to_string(), e.inner()))
}

/// Reads the configuration (or the zero-configuration defaults), creating
/// the state folder, the key and the origin on first use.
///
/// # Errors
///
/// The file cannot be read or is not valid ([`parse`]); the state folder
/// cannot be made.
pub fn load(explicit: Option<&Path>) -> Result<Settings, Error> {
    let home = home()?;
    let source = find(explicit, &home)?;
    let file: File = match &source {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::usage(format!("reading {}: {e}", p.display())))?;
            parse(p, &text)?
        }
        None => File::default(),
    };
    std::fs::create_dir_all(&home).map_err(|e| Error::io("creating", &home, &e))?;
    let base = source
        .as_ref()
        .and_then(|p| p.parent())
        .map_or_else(|| home.clone(), Path::to_owned);
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let key_path = file
        .key
        .as_deref()
        .map_or_else(|| home.join("key.pem"), resolve);
    let origin = match &file.origin {
        Some(o) => o.clone(),
        None => state::origin(&home)?,
    };
    let extra: Vec<PathBuf> = file.trust.iter().map(|p| resolve(p)).collect();
    let trusted = trusted_keys(&home, &extra)?;
    let encrypt_to =
        recipients(&file.encrypt_to).map_err(|e| Error::usage(format!("encrypt_to: {e}")))?;
    let mut targets = Vec::new();
    for t in file
        .targets
        .iter()
        .chain(paths::path_targets(&home)?.iter())
    {
        let config = target(t, &resolve, &encrypt_to)?;
        if targets.iter().any(|o: &TargetConfig| o.name == config.name) {
            continue;
        }
        targets.push(config);
    }
    Ok(Settings {
        store: file
            .store
            .clone()
            .unwrap_or_else(|| home.join("store").to_string_lossy().into_owned()),
        store_options: file.store_options.options(),
        catalog: file
            .catalog
            .as_deref()
            .map_or_else(|| home.join("catalog.db"), resolve),
        key_path,
        trusted,
        origin,
        model: file.model.clone(),
        serial: file.serial.clone(),
        software_version: file.software_version.clone(),
        job_timeout: file.job_timeout.map(|i| i.0),
        targets,
        encrypt_to,
        identities: file.identity.to_vec().iter().map(|p| resolve(p)).collect(),
        require_encryption: file.require_encryption,
        server: file.server.clone(),
        source,
        home,
    })
}

/// Parses age recipients (`age1…`).
fn recipients(texts: &[String]) -> Result<Vec<cairn::AgeRecipient>, String> {
    texts
        .iter()
        .map(|t| t.parse().map_err(|e: cairn::AgeError| e.to_string()))
        .collect()
}

impl StoreSettings {
    fn options(&self) -> StoreOptions {
        let mut o = StoreOptions::default();
        o.endpoint.clone_from(&self.endpoint);
        o.region.clone_from(&self.region);
        o.access_key_id.clone_from(&self.access_key_id);
        o.secret_access_key.clone_from(&self.secret_access_key);
        o.azure_account.clone_from(&self.azure_account);
        o.azure_access_key.clone_from(&self.azure_key);
        o.azure_use_emulator = self.azure_use_emulator;
        o.allow_http = self.allow_http;
        o
    }
}

/// Parses a duration given outside the file (a command-line flag named
/// `what`), with the file's syntax ([`Interval`]).
///
/// # Errors
///
/// An error of kind `Usage` naming `what`.
pub fn duration(what: &str, text: &str) -> Result<Duration, Error> {
    Interval::parse(what, text).map(|i| i.0)
}

/// The engine's target for a target of the file.
pub(crate) fn target(
    t: &TargetFile,
    resolve: &dyn Fn(&Path) -> PathBuf,
    encrypt_to: &[cairn::AgeRecipient],
) -> Result<TargetConfig, Error> {
    let usage = |m: String| Error::usage(format!("target {}: {m}", t.name));
    let mut config = TargetConfig::new(t.name.clone());
    let own = match &t.encrypt_to {
        Some(texts) => recipients(texts).map_err(|e| usage(format!("encrypt_to: {e}")))?,
        None => encrypt_to.to_vec(),
    };
    for r in own {
        config = config.encrypt_to(r);
    }
    for c in &t.components {
        config = config.component(
            ComponentSpec::new(c.name.clone(), c.kind, resolve(&c.path)).optional(c.optional),
        );
    }
    if let Some(every) = t.every {
        config = config.every(every.0);
    }
    let signed =
        |i: Interval| jiff::SignedDuration::try_from(i.0).map_err(|e| usage(e.to_string()));
    let mut rules = ScheduleRules::default();
    if let Some(d) = t.min_interval {
        rules = rules
            .with_min_interval(signed(d)?)
            .map_err(|e| usage(e.to_string()))?;
    }
    if let Some(d) = t.cooldown {
        rules = rules
            .with_cooldown(signed(d)?)
            .map_err(|e| usage(e.to_string()))?;
    }
    config = config.schedule_rules(rules);
    let hook_timeout = t.hook_timeout.map_or(Hook::DEFAULT_TIMEOUT, |i| i.0);
    if let Some(cmd) = &t.pre_restore {
        config = config.pre_restore(Hook::new(cmd).timeout(hook_timeout));
    }
    if let Some(cmd) = &t.post_restore {
        config = config.post_restore(Hook::new(cmd).timeout(hook_timeout));
    }
    if let Some(tier) = t.verify_after_write {
        config = config.verify_after_write(tier);
    }
    if let Some(policy) = &t.retention {
        config = config.retention(policy.clone());
    }
    let mut chain = ChainRule::default();
    if let Some(depth) = t.max_depth {
        chain = chain.max_depth(depth);
    }
    if let Some(every) = t.full_every {
        chain = chain.full_every(every.0);
    }
    Ok(config.chain(chain))
}
