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
//! assert_eq!(file.targets[0].name, "web");
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::{TargetConfig, VerifyTier};
use cairn_integrity::SigningKey;
use cairn_manifest::{ComponentKind, ComponentName, OriginId, TargetName};
use cairn_retention::{Policy, ScheduleRules};
use cairn_source::{ComponentSpec, Hook};
use cairn_storage::StoreOptions;
use serde::{Deserialize, Serialize};

/// What went wrong, and what decides how a binary reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file, a value in it or an argument is wrong: the user can fix it.
    Usage,
    /// The filesystem failed (creating the state folder, writing the key).
    Io,
}

/// A configuration error: one line, and a hint when there is something to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// What kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What to do about it, if anything.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

/// The file as written by operators.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Store URL or path (default: `<home>/store`).
    pub store: Option<String>,
    /// Catalog file (default: `<home>/catalog.db`).
    pub catalog: Option<PathBuf>,
    /// Signing key, PKCS#8 PEM (default: `<home>/key.pem`, made on first use).
    pub key: Option<PathBuf>,
    /// This installation's origin id (default: made on first use, in `<home>/origin`).
    pub origin: Option<String>,
    /// Store settings.
    #[serde(default)]
    pub store_options: StoreSettings,
    /// Job time limit, e.g. `2h`.
    pub job_timeout: Option<String>,
    /// Targets.
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetFile>,
    /// Settings of `cairn-server` (the CLI ignores them).
    #[serde(default)]
    pub server: ServerFile,
}

/// `[server]`: settings of the REST server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Address to listen on (default `127.0.0.1:8420`). Beyond loopback the
    /// server refuses to start without tokens.
    pub listen: Option<String>,
    /// Largest upload accepted, in bytes (default 16 GiB); larger is 413.
    pub max_upload_bytes: Option<u64>,
    /// Time limit of a request that is not a stream (default `30s`).
    pub request_timeout: Option<String>,
    /// On shutdown, how long running jobs may go on (default `60s`); then
    /// they are cancelled and recorded as interrupted.
    pub shutdown_grace: Option<String>,
    /// Secret for the server's own signed download URLs (local stores),
    /// hex, at least 32 bytes; default: `<home>/url-secret`, made on first use.
    pub url_secret_file: Option<PathBuf>,
    /// Structured logs as JSON lines (default: text).
    #[serde(default)]
    pub log_json: bool,
    /// Bearer tokens: only their SHA-256 is stored (`cairn-server token`
    /// makes one).
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenFile>,
}

/// `[[server.token]]`: a bearer token, by its hash, with its scopes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Who holds it (logged with each request).
    pub name: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// `backups:read`, `backups:write`, `backups:admin`.
    pub scopes: Vec<String>,
}

/// `[store_options]`: credentials and endpoints (the environment's
/// `AWS_*`/`AZURE_*` variables fill what is missing).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    azure_account: Option<String>,
    azure_key: Option<String>,
    #[serde(default)]
    azure_use_emulator: bool,
    #[serde(default)]
    allow_http: bool,
}

/// `[[target]]`: one target.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// Its components, in order.
    #[serde(default, rename = "component")]
    pub components: Vec<ComponentFile>,
    /// Automatic backups, e.g. `6h`.
    pub every: Option<String>,
    /// Minimum interval between scheduled backups, e.g. `1h`.
    pub min_interval: Option<String>,
    /// Cooldown after disabling automatic backups (default 72h).
    pub cooldown: Option<String>,
    /// Shell command run before a restore changes anything.
    pub pre_restore: Option<String>,
    /// Shell command run after a restore.
    pub post_restore: Option<String>,
    /// Time limit of each hook (default 5m).
    pub hook_timeout: Option<String>,
    /// Verify each new backup: `quick`, `sample` or `full`.
    pub verify_after_write: Option<String>,
    /// Retention rules (see docs/retention.md).
    pub retention: Option<toml::Table>,
}

/// `[[target.component]]`: one component of a target.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentFile {
    /// Its name in the archive.
    pub name: String,
    /// `dir`, `file` or `sqlite`.
    pub kind: String,
    /// Where it lives (relative to the file).
    pub path: PathBuf,
    /// Backed up only when asked for by name.
    #[serde(default)]
    pub optional: bool,
}

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
    /// The signing key file ([`key`] reads or makes it).
    pub key_path: PathBuf,
    /// This installation's origin id.
    pub origin: OriginId,
    /// The job time limit, if set.
    pub job_timeout: Option<Duration>,
    /// The targets: the file's, then those `cairn backup DIR` made.
    pub targets: Vec<TargetConfig>,
    /// The `[server]` section.
    pub server: ServerFile,
    /// Where the configuration came from (none: zero configuration).
    pub source: Option<PathBuf>,
}

impl Settings {
    /// A `Vault` builder with everything these settings say (the signing
    /// key is read, or made on first use, by [`key`]); add a clock or
    /// threads, then `open()`.
    ///
    /// # Errors
    ///
    /// The key cannot be read or made, or is readable by others.
    pub fn vault_builder(&self) -> Result<cairn::VaultBuilder, Error> {
        let mut b = cairn::Vault::builder()
            .store(self.store.clone())
            .store_options(self.store_options.clone())
            .catalog(self.catalog.clone())
            .signing_key(key(&self.key_path)?)
            .origin(self.origin.clone());
        if let Some(t) = self.job_timeout {
            b = b.job_timeout(t);
        }
        for t in &self.targets {
            b = b.target(t.clone());
        }
        Ok(b)
    }
}

/// The state folder: `$CAIRN_HOME`, else `$XDG_DATA_HOME/cairn`, else
/// `~/.local/share/cairn`.
pub fn home() -> Result<PathBuf, Error> {
    if let Some(h) = std::env::var_os("CAIRN_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(x).join("cairn"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::Usage, "no state folder: set CAIRN_HOME or HOME"))?;
    Ok(PathBuf::from(home).join(".local/share/cairn"))
}

/// The configuration file to read: `--config`, else `$CAIRN_CONFIG`, else
/// `./cairn.toml`, else `<home>/cairn.toml`, if they exist.
pub fn find(explicit: Option<&Path>, home: &Path) -> Result<Option<PathBuf>, Error> {
    if let Some(p) = explicit {
        if !p.exists() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("the configuration file {} does not exist", p.display()),
            )
            .hint("create one with `cairn init`"));
        }
        return Ok(Some(p.to_owned()));
    }
    Ok([PathBuf::from("cairn.toml"), home.join("cairn.toml")]
        .into_iter()
        .find(|p| p.is_file()))
}

/// Reads the configuration (or the zero-configuration defaults), creating
/// the state folder, the key and the origin on first use.
pub fn load(explicit: Option<&Path>) -> Result<Settings, Error> {
    let home = home()?;
    let source = find(explicit, &home)?;
    let file: File = match &source {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::new(ErrorKind::Usage, format!("reading {}: {e}", p.display()))
            })?;
            toml::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Usage,
                    format!("{}: {}", p.display(), e.message()),
                )
                .hint("see `cairn init --help` for the format")
            })?
        }
        None => File::default(),
    };
    std::fs::create_dir_all(&home)
        .map_err(|e| Error::new(ErrorKind::Io, format!("creating {}: {e}", home.display())))?;
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
        Some(o) => OriginId::parse(o)
            .map_err(|e| Error::new(ErrorKind::Usage, format!("origin {o:?}: {e}")))?,
        None => origin(&home)?,
    };
    let mut targets = Vec::new();
    for t in file.targets.iter().chain(path_targets(&home)?.iter()) {
        let config = target(t, &resolve)?;
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
        origin,
        job_timeout: file
            .job_timeout
            .as_deref()
            .map(|d| duration("job_timeout", d))
            .transpose()?,
        targets,
        server: file.server.clone(),
        source,
        home,
    })
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

/// Parses `90s`, `15m`, `6h`, `7d` (also combined, `1h30m`).
pub fn duration(what: &str, text: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::new(
            ErrorKind::Usage,
            format!("{what}: {text:?} is not a duration (e.g. 90s, 15m, 6h, 7d)"),
        )
    };
    let mut total = 0u64;
    let mut num = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

fn target(t: &TargetFile, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<TargetConfig, Error> {
    let usage = |m: String| Error::new(ErrorKind::Usage, format!("target {}: {m}", t.name));
    let name = TargetName::parse(&t.name).map_err(|e| usage(e.to_string()))?;
    let mut config = TargetConfig::new(name);
    for c in &t.components {
        let cname = ComponentName::parse(&c.name)
            .map_err(|e| usage(format!("component {:?}: {e}", c.name)))?;
        let kind = match c.kind.as_str() {
            "dir" => ComponentKind::Dir,
            "file" => ComponentKind::File,
            "sqlite" => ComponentKind::Sqlite,
            other => {
                return Err(usage(format!(
                    "component {}: kind {other:?} is not dir, file or sqlite",
                    c.name
                )));
            }
        };
        config = config
            .component(ComponentSpec::new(cname, kind, resolve(&c.path)).optional(c.optional));
    }
    if let Some(every) = &t.every {
        config = config.every(duration("every", every).map_err(|e| usage(e.message))?);
    }
    let mut rules = ScheduleRules::default();
    if let Some(d) = &t.min_interval {
        let d = duration("min_interval", d).map_err(|e| usage(e.message))?;
        rules = rules
            .with_min_interval(jiff::SignedDuration::try_from(d).unwrap_or_default())
            .map_err(|e| usage(e.to_string()))?;
    }
    if let Some(d) = &t.cooldown {
        let d = duration("cooldown", d).map_err(|e| usage(e.message))?;
        rules = rules
            .with_cooldown(jiff::SignedDuration::try_from(d).unwrap_or_default())
            .map_err(|e| usage(e.to_string()))?;
    }
    config = config.schedule_rules(rules);
    let hook_timeout = t
        .hook_timeout
        .as_deref()
        .map(|d| duration("hook_timeout", d))
        .transpose()
        .map_err(|e| usage(e.message))?
        .unwrap_or(Hook::DEFAULT_TIMEOUT);
    if let Some(cmd) = &t.pre_restore {
        config = config.pre_restore(Hook::new(cmd).timeout(hook_timeout));
    }
    if let Some(cmd) = &t.post_restore {
        config = config.post_restore(Hook::new(cmd).timeout(hook_timeout));
    }
    if let Some(tier) = &t.verify_after_write {
        let tier: VerifyTier = tier
            .parse()
            .map_err(|e: cairn::Error| usage(e.to_string()))?;
        config = config.verify_after_write(tier);
    }
    if let Some(r) = &t.retention {
        let text = toml::to_string(r).map_err(|e| usage(e.to_string()))?;
        let policy = Policy::from_toml_str(&text).map_err(|e| usage(format!("retention: {e}")))?;
        config = config.retention(policy);
    }
    Ok(config)
}

/// The origin id of this state folder, made on first use.
fn origin(home: &Path) -> Result<OriginId, Error> {
    let path = home.join("origin");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => {
            let mut bytes = [0u8; 6];
            getrandom::fill(&mut bytes)
                .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness: {e}")))?;
            let made = format!("org_{}", hex::encode(bytes));
            write_new(&path, made.as_bytes(), 0o644)?;
            made
        }
    };
    OriginId::parse(text.trim())
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))
}

/// The signing key, made (mode 0600) on first use.
pub fn key(path: &Path) -> Result<SigningKey, Error> {
    if !path.exists() {
        let key = SigningKey::generate().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let pem = key
            .to_pkcs8_pem()
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        write_new(path, pem.as_bytes(), 0o600)?;
        return Ok(key);
    }
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the signing key {} is readable by others (mode {:o})",
                path.display(),
                mode & 0o777
            ),
        )
        .hint(format!("chmod 600 {}", path.display())));
    }
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Error::new(ErrorKind::Usage, format!("reading {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| Error::new(ErrorKind::Usage, format!("{}: {e}", path.display())))
}

/// Writes a new file with `mode`, refusing to overwrite one.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::new(ErrorKind::Io, format!("creating {}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("creating {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", path.display())))
}

/// Targets made by `cairn backup PATH` without configuration, kept in
/// `<home>/paths.toml` so that later commands know them.
fn path_targets(home: &Path) -> Result<Vec<TargetFile>, Error> {
    let path = home.join("paths.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let map: BTreeMap<String, Vec<TargetFile>> = toml::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: {}", path.display(), e.message()),
        )
    })?;
    Ok(map.into_values().flatten().collect())
}

/// The target for a directory given on the command line: an existing one
/// with that single directory, or a new one named after it, remembered.
/// Returns its name and whether it is new.
pub fn target_for_path(settings: &mut Settings, dir: &Path) -> Result<(String, bool), Error> {
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        Error::new(ErrorKind::Usage, format!("{}: {e}", dir.display()))
            .hint("give a configured target name or an existing directory")
    })?;
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} is not a directory", dir.display()),
        ));
    }
    if let Some(t) = settings
        .targets
        .iter()
        .find(|t| t.components.len() == 1 && t.components[0].path == dir)
    {
        return Ok((t.name.to_string(), false));
    }
    let base: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base
        .trim_start_matches(['-', '_'])
        .chars()
        .take(50)
        .collect::<String>();
    let base = if base.is_empty() {
        "dir".to_owned()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while settings.targets.iter().any(|t| t.name.as_str() == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    let file = TargetFile {
        name: name.clone(),
        components: vec![ComponentFile {
            name: "data".to_owned(),
            kind: "dir".to_owned(),
            path: dir.clone(),
            optional: false,
        }],
        every: None,
        min_interval: None,
        cooldown: None,
        pre_restore: None,
        post_restore: None,
        hook_timeout: None,
        verify_after_write: None,
        retention: None,
    };
    let paths = settings.home.join("paths.toml");
    let mut all = path_targets(&settings.home)?;
    all.push(file.clone());
    let mut map = BTreeMap::new();
    map.insert("target".to_owned(), all);
    let text = toml::to_string(&map).map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    let tmp = settings.home.join("paths.toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &paths))
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", paths.display())))?;
    settings
        .targets
        .push(target(&file, &|p: &Path| p.to_owned())?);
    Ok((name, true))
}
