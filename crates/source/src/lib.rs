//! What Cairn captures from a target and puts back.
//!
//! Work in progress. Today: [`sqlite::snapshot`], a transaction-consistent,
//! self-contained copy of a live SQLite database taken while other processes
//! keep writing it, with a bound on how long it holds its read transaction.
//! Capture of `dir` and `file` components and the transactional restore come
//! next.

pub mod sqlite;
