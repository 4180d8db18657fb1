//! Cairn, the engine that embedding services use.
//!
//! Work in progress: this crate will hold the `Vault` (backups, restores,
//! jobs, schedules). What is here today is the part the storage and catalog
//! need from it, because it is the only crate where sync meets async:
//!
//! - [`StoreRangeReader`]: one object of a store as the archive reader's
//!   synchronous `RangeRead`, fetching bounded chunks through the runtime.
//! - [`rebuild_catalog`]: a lost or corrupt catalog rebuilt from the store's
//!   seals and manifests, reading only the manifests.

mod bridge;
mod rebuild;

pub use bridge::{FETCH_SIZE, StoreRangeReader};
pub use rebuild::{RebuildReport, rebuild_catalog};

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
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}
