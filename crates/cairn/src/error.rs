//! Errors of the engine.
//!
//! One [`Error`] enum, whose variants carry what a caller may want to show
//! or act on, and one [`ErrorKind`] that says what class of failure it is:
//! the binaries map the kind to an HTTP status or an exit code, a failed
//! job carries its name as `error.code`, and [`Error::is_transient`] says
//! whether trying again later may succeed (a busy target, a store that did
//! not answer). An error from a lower crate keeps it as its source:
//! [`Error::report`] prints the whole chain on one line.

use cairn_job::idempotency::IdempotencyConflict;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] cairn_storage::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] cairn_catalog::Error),
    /// Reading, writing or verifying an archive failed.
    #[error(transparent)]
    Archive(#[from] cairn_archive::Error),
    /// Capturing or restoring components failed.
    #[error(transparent)]
    Source(#[from] cairn_source::Error),
    /// A backup's seal or signature does not check out with the trusted
    /// keys, or its archive is not the one its seal describes.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The vault's configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The signing key is not the one this installation signs with (its
    /// catalog recorded another key id when the installation was made), and
    /// that key is not among the trusted ones, as it would be after a
    /// rotation made on purpose.
    #[error(
        "the signing key (key id {key}) is not this installation's signing key (key id {expected}, recorded in its catalog)"
    )]
    WrongKey {
        /// The id of the key given.
        key: String,
        /// The id the catalog recorded.
        expected: String,
    },
    /// The request is not valid (unknown component, missing confirmation, ...).
    #[error("{0}")]
    Invalid(String),
    /// No such target, backup or job.
    #[error("{what} {id} not found")]
    NotFound {
        /// `target`, `backup` or `job`.
        what: &'static str,
        /// What was asked for.
        id: String,
    },
    /// A pinned backup cannot be deleted.
    #[error("backup {backup} is pinned: unpin it first")]
    Pinned {
        /// The backup.
        backup: String,
    },
    /// The job has ended: it cannot be cancelled.
    #[error("job {job} has already ended ({state})")]
    Ended {
        /// The job.
        job: String,
        /// How it ended.
        state: cairn_job::JobState,
    },
    /// Another mutating job runs on the target (in this process or, through
    /// the store's lease, in another one).
    #[error("target {target} is busy: {holder}")]
    Busy {
        /// The target.
        target: String,
        /// The job or lease holding it.
        holder: String,
    },
    /// The backup is in use by a running job (restore, verify, download).
    #[error("backup {backup} is in use by job {job}")]
    Leased {
        /// The backup.
        backup: String,
        /// The job using it.
        job: String,
    },
    /// A target's schedule or retention cannot change while a backup or
    /// restore of it runs.
    #[error("the configuration of target {target} is locked while job {job} runs")]
    Locked {
        /// The target.
        target: String,
        /// The running job.
        job: String,
    },
    /// Re-enabling automatic backups is refused until the cooldown ends.
    #[error(
        "automatic backups of {target} were disabled at {disabled_at}; they can be re-enabled from {until}"
    )]
    Cooldown {
        /// The target.
        target: String,
        /// When they were disabled.
        disabled_at: Timestamp,
        /// When the cooldown ends.
        until: Timestamp,
    },
    /// The backup comes from another origin or target; restoring it needs `force`.
    #[error(
        "backup {backup} was made by {origin} for target {target}; this vault is {ours}: use force to restore it anyway"
    )]
    ForeignOrigin {
        /// The backup.
        backup: String,
        /// Its origin id.
        origin: String,
        /// Its target.
        target: String,
        /// This vault's origin and target.
        ours: String,
    },
    /// A soft-deleted backup's recovery window has passed.
    #[error("backup {backup} was deleted at {deleted_at} and could be recovered until {until}")]
    Gone {
        /// The backup.
        backup: String,
        /// When it was deleted.
        deleted_at: Timestamp,
        /// When its window ended.
        until: Timestamp,
    },
    /// The idempotency key was used for a different request.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyConflict),
    /// An incremental backup's archive alone is not the whole state (its
    /// unchanged files are in its parents): it cannot be downloaded as one
    /// archive yet.
    #[error(
        "backup {backup} is incremental (its unchanged files are in {parent} and earlier backups): it cannot be downloaded as one archive yet; restore it, or make a full backup (cairn backup --full) to download"
    )]
    Incremental {
        /// The backup.
        backup: String,
        /// Its nearest parent.
        parent: String,
    },
    /// An encrypted backup that none of the vault's age identities opens
    /// (none configured, or none of its recipients'): a failed
    /// verification (`verification_failed`) for a restore or a full
    /// verification; the quick and sample tiers check its stored bytes
    /// instead.
    #[error("backup {backup}: {}", cairn_crypt::NO_MATCHING_IDENTITY)]
    NoIdentity {
        /// The backup (or the parent of its chain) that did not open.
        backup: String,
    },
    /// The store cannot do this (a signed URL from a local store).
    #[error("{0}")]
    Unsupported(String),
    /// The vault is shutting down ([`crate::Vault::shutdown`]): no new job starts.
    #[error("the vault is shutting down: no new job starts")]
    ShuttingDown,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What class of failure an [`Error`] is.
///
/// Stable and serialisable: its name (`as_str`, and the serde form) is the
/// `code` of a failed job and of the server's error documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No such target, backup or job (or object in the store).
    NotFound,
    /// The request is not valid: a bad value, a missing confirmation, a
    /// component that cannot be restored in place, a pinned backup to
    /// delete, an ended job to cancel.
    Invalid,
    /// Something else holds what the request needs: a busy target, a backup
    /// in use, a locked configuration, a reused idempotency key.
    Conflict,
    /// Automatic backups cannot be re-enabled before the cooldown ends.
    Cooldown,
    /// A soft-deleted backup's recovery window has passed.
    Gone,
    /// The backup comes from another installation or target.
    ForeignOrigin,
    /// A backup or archive failed verification: tampered, truncated,
    /// signed by a key that is not trusted, or damaged.
    VerificationFailed,
    /// The store cannot do this.
    Unsupported,
    /// The vault's configuration is not usable (including a signing key that
    /// is not this installation's).
    Config,
    /// The store did not answer, through its retries: try again later.
    Unavailable,
    /// Anything else: a disk error, a bug.
    Internal,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [Self; 11] = [
        Self::NotFound,
        Self::Invalid,
        Self::Conflict,
        Self::Cooldown,
        Self::Gone,
        Self::ForeignOrigin,
        Self::VerificationFailed,
        Self::Unsupported,
        Self::Config,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The snake_case name (`"verification_failed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Cooldown => "cooldown",
            Self::Gone => "gone",
            Self::ForeignOrigin => "foreign_origin",
            Self::VerificationFailed => "verification_failed",
            Self::Unsupported => "unsupported",
            Self::Config => "config",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The kind named `code` (a failed job's `error.code`); `None` for the
    /// codes only the job runner gives (`timeout`, `interrupted`) and for
    /// unknown ones.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// What class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Invalid(_) | Error::Pinned { .. } | Error::Ended { .. } => ErrorKind::Invalid,
            Error::Busy { .. }
            | Error::Leased { .. }
            | Error::Locked { .. }
            | Error::Idempotency(_)
            | Error::Incremental { .. } => ErrorKind::Conflict,
            Error::Cooldown { .. } => ErrorKind::Cooldown,
            Error::ForeignOrigin { .. } => ErrorKind::ForeignOrigin,
            Error::Gone { .. } => ErrorKind::Gone,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Config(_) | Error::WrongKey { .. } => ErrorKind::Config,
            Error::ShuttingDown => ErrorKind::Unavailable,
            Error::Verification(_) | Error::NoIdentity { .. } => ErrorKind::VerificationFailed,
            Error::Archive(e) => archive_kind(e),
            Error::Source(cairn_source::Error::Archive(e)) => archive_kind(e),
            Error::Source(cairn_source::Error::Database { .. }) => ErrorKind::VerificationFailed,
            Error::Source(cairn_source::Error::Invalid(_)) => ErrorKind::Invalid,
            Error::Storage(e) => match e.kind() {
                cairn_storage::ErrorKind::NotFound => ErrorKind::NotFound,
                cairn_storage::ErrorKind::LeaseHeld => ErrorKind::Conflict,
                cairn_storage::ErrorKind::Transient => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }

    /// The kind's name (`"not_found"`, …): the `code` of a job this error
    /// failed.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Whether trying again later may succeed: a busy target or backup, a
    /// configuration locked by a running job, a store or catalog that did
    /// not answer in time.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Busy { .. } | Error::Leased { .. } | Error::Locked { .. } => true,
            Error::ShuttingDown => true,
            Error::Storage(e) => e.is_transient(),
            Error::Archive(e) | Error::Source(cairn_source::Error::Archive(e)) => e.is_transient(),
            Error::Catalog(e) => e.is_transient(),
            _ => false,
        }
    }

    /// This error and its causes on one line (`a: b: c`), for people and
    /// logs. `Display` shows this error alone, as the convention wants
    /// for an error that returns its cause from `source()`.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        // A transparent variant's Display is its source's: skip that one.
        if matches!(
            self,
            Error::Storage(_)
                | Error::Catalog(_)
                | Error::Archive(_)
                | Error::Source(_)
                | Error::Idempotency(_)
        ) {
            cause = cause.and_then(std::error::Error::source);
        }
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        out
    }
}

/// An archive that does not check out is a failed verification; one an
/// upload brings with hostile paths, absurd sizes or what Cairn cannot
/// store (sparse files) is an invalid request.
fn archive_kind(e: &cairn_archive::Error) -> ErrorKind {
    use cairn_archive::ErrorKind as A;
    match e.kind() {
        A::Verification | A::Corrupt => ErrorKind::VerificationFailed,
        A::InvalidInput | A::Unsafe | A::Limit | A::Unsupported => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

pub(crate) fn task(e: tokio::task::JoinError) -> Error {
    Error::Task(e)
}
