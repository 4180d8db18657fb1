//! Test fixtures shared by Cairn's crates (`publish = false`).
//!
//! - [`RandomReader`], [`ShortWriter`], [`FailingReader`]: I/O that returns short
//!   reads and writes or fails on cue; every parser is tested through them.
//! - [`random_tree`], [`snapshot`], [`assert_trees_equal`]: deterministic random file
//!   trees with awkward names, modes, times and links, and an exact comparison.
//! - [`require_tool`]: external tools (GNU tar, zstd, openssl) that skip a test
//!   outside CI and fail it with `CI=true`.
//! - [`storage`]: emulator endpoints (skip outside CI, fail under `CI=true`),
//!   per-test buckets and containers, an in-process S3 server that checks
//!   signatures and injects faults; [`conformance`]: the storage suite every
//!   backend runs.
#![cfg(unix)]

pub mod conformance;
mod io;
pub mod storage;
mod tools;
mod tree;

pub use crate::io::{FailingReader, RandomReader, ShortWriter, noise};
pub use crate::tools::{in_ci, require_tool, run_ok, running_as_root};
pub use crate::tree::{Node, Snapshot, TreeOptions, assert_trees_equal, random_tree, snapshot};
