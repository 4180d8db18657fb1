//! Cairn, the engine that embedding services use: safe backups and restores
//! of a service's directories, files and live SQLite databases.
//!
//! Build a [`Vault`] with a store URL, a catalog path, a signing key, an
//! origin id and the targets to protect; then [`Vault::backup`],
//! [`Vault::restore`], [`Vault::verify`], [`Vault::prune`], [`Vault::upload`]
//! and [`Vault::reset`] start jobs, each returning a [`JobHandle`] that can be
//! awaited, polled, watched for progress or cancelled, while
//! [`Vault::list`], [`Vault::get`], [`Vault::delete`], [`Vault::undelete`],
//! [`Vault::pin`], [`Vault::download_url`], [`Vault::restore_status`] and
//! [`Vault::schedule`] answer at once. [`Vault::run_scheduler`] makes the
//! automatic backups.
//!
//! - A backup streams: components are captured (databases through a
//!   consistent snapshot) and compressed on blocking threads while the
//!   archive uploads in parts; it counts only once its seal is published.
//! - A restore reads only the frames of the components it restores, checks
//!   every digest and the signature before anything moves, then swaps
//!   components in with renames, keeping what they replace as
//!   `<path>.before-restore` and putting everything back on failure.
//! - One mutating job per target, in this process and, through a lease in
//!   the store, across processes sharing the store.
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
//! ```
//! use cairn::{BackupRequest, RestoreRequest, TargetConfig, Vault};
//! use cairn_integrity::SigningKey;
//! use cairn_manifest::{ComponentName, OriginId, TargetName};
//! use cairn_source::ComponentSpec;
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
//! let id = job.result.unwrap()["backup_id"].as_str().unwrap().to_owned();
//!
//! std::fs::write(site.join("index.html"), "<h1>broken</h1>")?;
//! let job = vault.restore(&id, RestoreRequest::new().confirm()).await?.wait().await;
//! assert_eq!(job.state, cairn_job::JobState::Succeeded);
//! assert_eq!(std::fs::read_to_string(site.join("index.html"))?, "<h1>v1</h1>");
//! assert!(tmp.path().join("site.before-restore/index.html").exists());
//! # Ok(()) }
//! ```

mod backup;
mod bridge;
mod config;
mod error;
mod jobs;
mod prune;
mod rebuild;
mod restore;
mod scheduler;
mod upload;
mod vault;
mod verify;

pub use crate::backup::BackupRequest;
pub use crate::bridge::{FETCH_SIZE, StoreRangeReader};
pub use crate::config::{TargetConfig, VerifyTier};
pub use crate::error::{Error, ErrorKind};
pub use crate::jobs::JobHandle;
pub use crate::prune::PruneReport;
pub use crate::rebuild::{RebuildReport, rebuild_catalog};
pub use crate::restore::RestoreRequest;
pub use crate::upload::UploadRequest;
#[doc(hidden)]
pub use crate::vault::CrashHook;
pub use crate::vault::{
    Clock, DEFAULT_JOB_TIMEOUT, DEFAULT_LEASE_TTL, Recovery, Vault, VaultBuilder,
};
pub use crate::verify::VerifyReport;

pub use cairn_catalog::{BackupFilter, BackupRecord, Cursor, Page};
pub use cairn_job::{Job, JobKind, JobState, RestoreStatus};
