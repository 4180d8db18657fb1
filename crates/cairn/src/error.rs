//! Errors of the engine.

use cairn_job::idempotency::IdempotencyConflict;
use jiff::Timestamp;

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
    /// A backup's seal or signature does not check out with the trusted keys.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The vault's configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
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
    /// The idempotency key was used for a different request.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyConflict),
    /// The store cannot do this (a signed URL from a local store).
    #[error("{0}")]
    Unsupported(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    /// A stable, machine-readable code for the binaries to map to HTTP
    /// statuses and exit codes: `not_found`, `invalid`, `conflict`,
    /// `cooldown`, `verification_failed`, `foreign_origin`, `gone`,
    /// `unsupported`, `config`, `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Invalid(_) => "invalid",
            Error::Busy { .. }
            | Error::Leased { .. }
            | Error::Locked { .. }
            | Error::Idempotency(_) => "conflict",
            Error::Cooldown { .. } => "cooldown",
            Error::ForeignOrigin { .. } => "foreign_origin",
            Error::Gone { .. } => "gone",
            Error::Unsupported(_) => "unsupported",
            Error::Config(_) | Error::WrongKey { .. } => "config",
            Error::Verification(_) => "verification_failed",
            Error::Archive(e) if is_verification(e) => "verification_failed",
            Error::Source(cairn_source::Error::Archive(e)) if is_verification(e) => {
                "verification_failed"
            }
            Error::Source(cairn_source::Error::Database { .. }) => "verification_failed",
            Error::Source(cairn_source::Error::Invalid(_)) => "invalid",
            Error::Archive(e) if e.kind() == cairn_archive::ErrorKind::InvalidInput => "invalid",
            Error::Storage(e) if e.kind() == cairn_storage::ErrorKind::NotFound => "not_found",
            Error::Storage(e) if e.kind() == cairn_storage::ErrorKind::LeaseHeld => "conflict",
            _ => "internal",
        }
    }
}

fn is_verification(e: &cairn_archive::Error) -> bool {
    matches!(
        e.kind(),
        cairn_archive::ErrorKind::Verification | cairn_archive::ErrorKind::Corrupt
    )
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(task)`
pub(crate) fn task(e: tokio::task::JoinError) -> Error {
    Error::Task(e.to_string())
}
