//! Errors of capture and restore.

use std::io;
use std::path::PathBuf;

use cairn_manifest::ComponentName;

use crate::sqlite::SnapshotError;

/// A capture or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing or reading the archive failed (including verification).
    #[error(transparent)]
    Archive(#[from] cairn_archive::Error),
    /// A database snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A restored database is damaged (`PRAGMA integrity_check` failed).
    #[error("component {component}: the restored database failed its check: {message}")]
    Database {
        /// The component.
        component: ComponentName,
        /// What SQLite said.
        message: String,
    },
    /// A hook failed, timed out or could not start.
    #[error("{phase} hook failed: {message}")]
    Hook {
        /// `pre_restore` or `post_restore`.
        phase: &'static str,
        /// Exit status or time-out, and the end of its standard error.
        message: String,
    },
    /// The request does not fit the target or the backup.
    #[error("{0}")]
    Invalid(String),
    /// The restore was stopped (cancelled, or a fault) before it completed;
    /// everything it had changed was put back.
    #[error("restore stopped before it completed, everything was put back: {0}")]
    Stopped(String),
    /// A step failed, and putting things back failed too: the target needs
    /// attention. The journal stays, and is replayed by [`crate::recover`].
    #[error("{cause}; rolling back failed too ({rollback}); the journal {} is kept for recovery", journal.display())]
    RollbackFailed {
        /// The first failure.
        cause: Box<Error>,
        /// Why rolling back failed.
        rollback: String,
        /// The journal left for recovery.
        journal: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// The result of capture and restore operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
