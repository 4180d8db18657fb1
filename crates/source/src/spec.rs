//! What a target's components are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_manifest::{ComponentKind, ComponentName};

/// One component of a target: what it is called, what kind of thing it is,
/// and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentSpec {
    /// Its name in archives.
    pub name: ComponentName,
    /// Directory tree, single file or live SQLite database.
    pub kind: ComponentKind,
    /// The directory or file, as an absolute path (relative paths are taken
    /// relative to the process's working directory).
    pub path: PathBuf,
    /// Excluded from backups and restores unless asked for by name.
    pub optional: bool,
}

impl ComponentSpec {
    /// A component of any kind.
    pub fn new(name: ComponentName, kind: ComponentKind, path: impl Into<PathBuf>) -> Self {
        Self {
            name,
            kind,
            path: path.into(),
            optional: false,
        }
    }

    /// A directory tree.
    pub fn dir(name: ComponentName, path: impl Into<PathBuf>) -> Self {
        Self::new(name, ComponentKind::Dir, path)
    }

    /// One regular file.
    pub fn file(name: ComponentName, path: impl Into<PathBuf>) -> Self {
        Self::new(name, ComponentKind::File, path)
    }

    /// A live SQLite database (its main file; `-wal`/`-shm` are SQLite's business).
    pub fn sqlite(name: ComponentName, path: impl Into<PathBuf>) -> Self {
        Self::new(name, ComponentKind::Sqlite, path)
    }

    /// Makes it optional (or not).
    #[must_use]
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Where a restore keeps what it replaced: `<path>.before-restore`.
    pub fn before_restore_path(&self) -> PathBuf {
        with_suffix(&self.path, ".before-restore")
    }
}

/// `path` with `suffix` appended to its last component (`db` + `-wal` = `db-wal`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The files SQLite keeps beside a database, which belong to that database only.
pub(crate) const SQLITE_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// A command run around a restore (typically stopping and starting the
/// service), through `sh -c`, with a time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hook {
    /// The shell command.
    pub command: String,
    /// How long it may run before it is killed and counted as failed.
    pub timeout: Duration,
}

impl Hook {
    /// The default time limit: 5 minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

    /// A hook with the default time limit.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time limit.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
