//! The file as operators write it. Every value is checked while the file
//! is read (names, kinds, durations, retention rules), so that an error
//! names the line and the key it is about.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cairn::VerifyTier;
use cairn_manifest::{ComponentKind, ComponentName, OriginId, TargetName};
use cairn_retention::Policy;
use serde::{Deserialize, Serialize};

use crate::error::Error;

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
    /// Public keys (PEM) of earlier signing keys whose backups stay trusted,
    /// besides those `cairn key rotate` keeps in `<home>/trusted/`.
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// This installation's origin id (default: made on first use, in `<home>/origin`).
    pub origin: Option<OriginId>,
    /// The device model recorded in every backup.
    pub model: Option<String>,
    /// The device serial number recorded in every backup.
    pub serial: Option<String>,
    /// The software version recorded in every backup (default `cairn/<version>`).
    pub software_version: Option<String>,
    /// Store settings.
    #[serde(default)]
    pub store_options: StoreSettings,
    /// Job time limit, e.g. `2h`.
    pub job_timeout: Option<Interval>,
    /// age recipients (`age1…`) every target's new backups are encrypted to,
    /// unless the target names its own (`docs/encryption.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_to: Vec<String>,
    /// age identity files (mode 0600) that open encrypted backups: one path
    /// or a list (old identities keep opening old backups).
    #[serde(default, skip_serializing_if = "Paths::is_empty")]
    pub identity: Paths,
    /// Refuse to write a backup that is not encrypted, and to restore one
    /// in place.
    #[serde(default)]
    pub require_encryption: bool,
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
    pub request_timeout: Option<Interval>,
    /// On shutdown, how long running jobs may go on (default `60s`); then
    /// they are cancelled and recorded as interrupted.
    pub shutdown_grace: Option<Interval>,
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
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) azure_account: Option<String>,
    pub(crate) azure_key: Option<String>,
    #[serde(default)]
    pub(crate) azure_use_emulator: bool,
    #[serde(default)]
    pub(crate) allow_http: bool,
}

/// `[[target]]`: one target.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Its name (`[a-z0-9][a-z0-9_-]{0,62}`).
    pub name: TargetName,
    /// Its components, in order.
    #[serde(default, rename = "component")]
    pub components: Vec<ComponentFile>,
    /// Automatic backups, e.g. `6h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Interval>,
    /// Minimum interval between scheduled backups, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<Interval>,
    /// Cooldown after disabling automatic backups (default 72h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Interval>,
    /// Shell command run before a restore changes anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_restore: Option<String>,
    /// Shell command run after a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_restore: Option<String>,
    /// Time limit of each hook (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_timeout: Option<Interval>,
    /// Verify each new backup: `quick`, `sample` or `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_after_write: Option<VerifyTier>,
    /// Retention rules (see docs/retention.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Policy>,
    /// Most incremental backups after a full one (default 7; 0: every backup
    /// is full; at most 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// A full backup at least this often, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<Interval>,
    /// age recipients (`age1…`) its new backups are encrypted to, in place
    /// of the installation's `encrypt_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_to: Option<Vec<String>>,
}

/// One path or a list of paths.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Paths {
    /// None given.
    #[default]
    #[serde(skip)]
    None,
    /// One.
    One(PathBuf),
    /// Several.
    Many(Vec<PathBuf>),
}

impl Paths {
    /// The paths, in order.
    pub fn to_vec(&self) -> Vec<PathBuf> {
        match self {
            Paths::None => Vec::new(),
            Paths::One(p) => vec![p.clone()],
            Paths::Many(v) => v.clone(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.to_vec().is_empty()
    }
}

/// `[[target.component]]`: one component of a target.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentFile {
    /// Its name in the archive.
    pub name: ComponentName,
    /// `dir`, `file` or `sqlite`.
    pub kind: ComponentKind,
    /// Where it lives (relative to the file).
    pub path: PathBuf,
    /// Backed up only when asked for by name.
    #[serde(default)]
    pub optional: bool,
}

/// A duration as the file writes it: `"90s"`, `"15m"`, `"6h"`, `"7d"`,
/// `"1w"`, `"1h30m"`, `"PT6H"` (the one syntax of
/// [`cairn_retention::parse_duration`]); longer than zero and at most 100
/// years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl Interval {
    /// Reads `text` (the value of `what`, named in the error).
    ///
    /// # Errors
    ///
    /// An error of kind `Usage` naming `what`.
    pub fn parse(what: &str, text: &str) -> Result<Self, Error> {
        Self::from_text(text).map_err(|e| Error::usage(format!("{what}: {e}")))
    }

    fn from_text(text: &str) -> Result<Self, String> {
        let d = cairn_retention::parse_duration(text).map_err(|e| e.to_string())?;
        if d.is_zero() {
            return Err(format!("{text:?} is zero; a duration here must be longer"));
        }
        Duration::try_from(d)
            .map(Interval)
            .map_err(|e| format!("{text:?}: {e}"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) => write!(f, "{d:#}"),
            Err(_) => write!(f, "{}s", self.0.as_secs()),
        }
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Interval::from_text(&text).map_err(serde::de::Error::custom)
    }
}
