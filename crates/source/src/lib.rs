//! What Cairn captures from a target and how it puts it back.
//!
//! - [`ComponentSpec`]: a component of a target, `dir`, `file` or `sqlite`,
//!   and where it lives.
//! - [`capture`]: appends a component to an archive being written; a live
//!   database goes in as a transaction-consistent snapshot
//!   ([`sqlite::snapshot`]), never as a raw copy.
//! - [`apply`]: the transactional restore. Verified copies staged beside
//!   their destinations are swapped in with renames, each replaced component
//!   kept as `<path>.before-restore`; a failure at any step puts back what
//!   was swapped, and [`recover`] does the same after a crash from the
//!   restore's journal.
//! - [`dry_run`]: what a restore would create, replace and delete.
//! - [`run_hook`]: the `pre_restore`/`post_restore` commands, with a timeout.
//!
//! This crate is synchronous and does no network I/O; the `cairn` engine
//! runs it on blocking threads.

mod capture;
mod error;
mod hook;
mod preview;
mod restore;
mod spec;
pub mod sqlite;

pub use crate::capture::{CaptureOptions, Captured, capture};
pub use crate::error::{Error, Result};
pub use crate::hook::run_hook;
pub use crate::preview::{DryRun, dry_run};
pub use crate::restore::{
    Recovered, Replacement, RestoreItem, RestoreOptions, Restored, Step, StepCheck, Stop, apply,
    forget, note_staging, recover, staging_prefix,
};
pub use crate::spec::{ComponentSpec, Hook};
