//! Cairn, the engine that embedding services use: safe backups and restores
//! of a service's directories, files and live SQLite databases.
//!
//! Build a [`Vault`] with a store URL, a catalog path, a signing key, an
//! origin id and the targets to protect; then [`Vault::backup`],
//! [`Vault::restore`], [`Vault::verify`], [`Vault::prune`], [`Vault::upload`]
//! and [`Vault::reset`] start jobs, each returning a [`JobHandle`] that can be
//! awaited, polled, watched for progress or cancelled ([`Vault::follow`]
//! streams a job of this process or another until it ends), while
//! [`Vault::list`], [`Vault::get`], [`Vault::delete`], [`Vault::undelete`],
//! [`Vault::pin`], [`Vault::restore_status`] and [`Vault::schedule`] answer
//! at once. An archive leaves through [`Vault::open_archive`] (a stream,
//! whole or a byte range) or [`Vault::download_url`]; a copy kept elsewhere
//! is checked with [`Vault::verify_file`]; one file or folder of any backup
//! comes out verified through [`Vault::extract`] ([`Vault::entry`] and
//! [`Vault::list_folder`] read its manifest). [`Vault::run_scheduler`] makes
//! the automatic backups, a [`JobObserver`] given to the builder hears every
//! job start and end (metrics), and [`Vault::shutdown`] lets running jobs
//! finish, or cancels them, before a process exits.
//!
//! Every job's result is typed ([`JobResult`]: [`BackupResult`],
//! [`RestoreResult`], [`VerifyReport`], [`PruneReport`], [`UploadResult`]),
//! and every error has a kind ([`Error::kind`]) that a binary maps to an
//! exit code or an HTTP status, and a one-line report ([`Error::report`])
//! that names each cause once.
//!
//! - A backup streams: components are captured (databases through a
//!   consistent snapshot) and compressed on blocking threads while the
//!   archive uploads in parts; it counts only once its seal is published.
//! - Backups are incremental to the newest one (within the target's
//!   [`ChainRule`]; [`BackupRequest::full`] forces a full one): files whose
//!   size, times, inode, mode and owner did not change are not read, their
//!   entries refer to the data the chain holds. Restores and verification
//!   open the whole chain through each backup's seal; retention keeps a kept
//!   backup's chain.
//! - A restore reads only the frames of the components it restores, checks
//!   every digest and the signature before anything moves, then swaps
//!   components in with renames, keeping what they replace as
//!   `<path>.before-restore` and putting everything back on failure.
//! - One mutating job per target, in this process and, through a lease in
//!   the store, across processes sharing the store.
//! - Pins, deletes, undeletes and purges are signed records of the target's
//!   shared state in the store, each checked against every record before
//!   it: hosts sharing a store respect each other's decisions, and a
//!   catalog follows the store (the others' backups and decisions) before
//!   every decision that depends on it, and on [`Vault::sync`].
//! - Jobs and backups are saved in the catalog from their start (a backup's
//!   record reads `creating`, `uploading`, then `ready` or `failed`; the job
//!   names it as its `resource`). Opening a vault after a crash ends the jobs
//!   whose process died and settles what they left: a backup they had sealed
//!   is recorded as ready, anything else they stored is removed; a restore
//!   they had committed is reported completed, one they had not is rolled
//!   back; their staging and scratch folders are removed.
//!
//! Cairn starts no runtime and prints nothing: it runs on the caller's Tokio
//! runtime and reports through `tracing` spans and job progress.
//!
//! # Example
//!
//! An embedder depends on this crate alone: names, ids, kinds, statuses,
//! policies, requests and results are all re-exported here.
//!
//! ```
//! use cairn::{
//!     BackupRequest, ComponentName, ComponentSpec, JobState, OriginId, RestoreRequest,
//!     SigningKey, TargetConfig, TargetName, Vault,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let site = tmp.path().join("site");
//! std::fs::create_dir_all(&site)?;
//! std::fs::write(site.join("index.html"), "<h1>v1</h1>")?;
//!
//! let vault = Vault::builder()
//!     .store(tmp.path().join("store").to_str().unwrap())
//!     .catalog(tmp.path().join("state/catalog.db"))
//!     .signing_key(SigningKey::generate()?)
//!     .origin(OriginId::parse("org_example")?)
//!     .target(
//!         TargetConfig::new(TargetName::parse("web")?)
//!             .component(ComponentSpec::dir(ComponentName::parse("site")?, &site)),
//!     )
//!     .open()
//!     .await?;
//!
//! let job = vault.backup("web", BackupRequest::new()).await?.wait().await;
//! let made = job.result.as_ref().and_then(|r| r.backup()).expect("a backup");
//! assert!(made.size > 0);
//! let id = made.backup_id.clone();
//!
//! std::fs::write(site.join("index.html"), "<h1>broken</h1>")?;
//! let job = vault.restore(&id, RestoreRequest::new().confirm()).await?.wait().await;
//! assert_eq!(job.state, JobState::Succeeded);
//! assert_eq!(std::fs::read_to_string(site.join("index.html"))?, "<h1>v1</h1>");
//! assert!(tmp.path().join("site.before-restore/index.html").exists());
//! # Ok(()) }
//! ```
//!
//! # Crate features
//!
//! - `clap` (off by default): the request and option enums a command line
//!   takes ([`VerifyTier`], [`BackupKind`], [`ComponentKind`]) derive
//!   `clap::ValueEnum`, so a CLI takes them as they are.

mod backup;
mod bridge;
mod builder;
mod download;
mod error;
mod files;
mod follow;
mod jobs;
mod prune;
mod rebuild;
mod recovery;
mod restore;
mod scheduler;
mod settings;
mod shared;
mod target;
mod upload;
mod vault;
mod verify;

pub use crate::backup::BackupRequest;
#[doc(hidden)]
pub use crate::builder::CrashHook;
pub use crate::builder::{Clock, DEFAULT_JOB_TIMEOUT, DEFAULT_LEASE_TTL, VaultBuilder};
pub use crate::download::ArchiveStream;
pub use crate::error::{Error, ErrorKind};
pub use crate::files::{Extracted, parse_path};
pub use crate::jobs::{JobHandle, JobObserver, Shutdown};
pub use crate::prune::PruneRequest;
pub use crate::rebuild::RebuildReport;
pub use crate::recovery::Recovery;
pub use crate::restore::{ResetRequest, RestoreRequest};
pub use crate::settings::Schedule;
pub use crate::shared::SyncReport;
pub use crate::target::{ChainRule, TargetConfig};
pub use crate::upload::UploadRequest;
pub use crate::vault::Vault;
pub use crate::verify::{FileVerification, VerifyRequest};

// What an embedder names, reads and matches, from the crates below.
pub use cairn_catalog::{BackupFilter, BackupRecord, Cursor, Page, TargetSummary, Verification};
/// Encryption at rest (`docs/encryption.md`): age recipients a target
/// encrypts to, and the identities that open its backups.
pub use cairn_crypt::{
    Error as AgeError, ErrorKind as AgeErrorKind, Identities as AgeIdentities,
    Identity as AgeIdentity, Recipient as AgeRecipient,
};
pub use cairn_integrity::{KeyId, PublicKey, SigningKey};
pub use cairn_job::idempotency::{IdempotencyConflict, IdempotencyKey};
pub use cairn_job::{
    BackupResult, Job, JobError, JobKind, JobResult, JobState, Phase, Progress, PruneReport,
    Resource, ResourceKind, RestoreOutcome, RestorePreview, RestoreResult, RestoreStatus,
    RestoreStatusKind, Restored, UnknownTier, UploadResult, VerifyReport, VerifyTier,
};
pub use cairn_manifest::{
    BackupId, BackupKind, Component, ComponentKind, ComponentName, Entry, EntryKind, EntryPath,
    Manifest, OriginId, TargetName,
};
pub use cairn_retention::{
    Action, BackupStatus, Decision, Period, Plan, Policy, Reason, ScheduleRules, ScheduleState,
    parse_duration,
};
pub use cairn_source::{ComponentSpec, Hook};
pub use cairn_storage::{SignedUrl, StoreOptions};

/// The errors of the crates below, as [`Error`]'s variants carry them.
pub mod errors {
    pub use cairn_archive::{Error as ArchiveError, ErrorKind as ArchiveErrorKind};
    pub use cairn_catalog::{Error as CatalogError, ErrorKind as CatalogErrorKind};
    pub use cairn_source::Error as SourceError;
    pub use cairn_storage::{Error as StorageError, ErrorKind as StorageErrorKind};
}
