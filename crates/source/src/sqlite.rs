//! Consistent snapshots of live SQLite databases.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Limits of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The longest the snapshot may hold its read transaction on the live
    /// database. A WAL database cannot checkpoint past an open reader, so its
    /// `-wal` file grows while a snapshot runs; past this limit the snapshot
    /// is interrupted and fails rather than let the WAL grow without bound.
    /// Default: 10 minutes.
    pub max_duration: Duration,
    /// How long to wait for a lock (a rollback-journal database being written). Default: 5 s.
    pub busy_timeout: Duration,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(600),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// What a snapshot produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot file's size.
    pub bytes: u64,
    /// How long the read transaction on the live database lasted.
    pub duration: Duration,
}

/// A snapshot failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The source is missing, not a regular file, or not readable.
    #[error("{path}: {message}")]
    Source {
        /// The database.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The source is not an SQLite database (or is damaged).
    #[error("{path} is not an SQLite database or is damaged: {source}")]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The copy took longer than `max_duration` and was interrupted.
    #[error("snapshot of {path} interrupted after {limit:?} (SnapshotOptions::max_duration)")]
    TooSlow {
        /// The database.
        path: PathBuf,
        /// The limit.
        limit: Duration,
    },
    /// The destination exists already, or cannot be written.
    #[error("snapshot destination {path}: {message}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// SQLite failed during the copy or the check of the copy.
    #[error("snapshot of {path}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// Writes a transaction-consistent copy of the SQLite database at `src` to
/// `dest` (which must not exist), while other processes keep reading and
/// writing it.
///
/// The copy is made page for page with SQLite's online backup API, all its
/// steps inside one read transaction held on the source: it sees the
/// database as of one commit, never a torn state, and never blocks WAL
/// writers (a rollback-journal database blocks writers for the duration).
/// Because the transaction pins one snapshot, a steady writer cannot make it
/// restart. Every page keeps its number, free pages included, so the pages
/// that did not change between two snapshots are byte for byte the same at
/// the same offsets (what an incremental backup compares; `VACUUM INTO`,
/// used before, rewrote and moved them). The copy is a single self-contained
/// file (rollback-journal mode, no `-wal`/`-shm`), checked with
/// `PRAGMA integrity_check` before this returns. Past `max_duration` the
/// copy stops between steps. On any failure nothing is left at `dest`.
///
/// # Errors
///
/// [`SnapshotError::Source`] for a missing or unreadable source,
/// [`SnapshotError::NotADatabase`] for a file that is not SQLite (or is damaged, or fails the
/// integrity check), [`SnapshotError::TooSlow`] past `max_duration`,
/// [`SnapshotError::Destination`] when `dest` exists or cannot be written,
/// [`SnapshotError::Sqlite`] for other SQLite failures.
pub fn snapshot(
    src: &Path,
    dest: &Path,
    opts: &SnapshotOptions,
) -> Result<Snapshot, SnapshotError> {
    let meta = std::fs::metadata(src).map_err(|e| SnapshotError::Source {
        path: src.to_owned(),
        message: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(SnapshotError::Source {
            path: src.to_owned(),
            message: "not a regular file".to_owned(),
        });
    }
    if dest.symlink_metadata().is_ok() {
        return Err(SnapshotError::Destination {
            path: dest.to_owned(),
            message: "already exists".to_owned(),
        });
    }
    let dest_text = dest.to_str().ok_or_else(|| SnapshotError::Destination {
        path: dest.to_owned(),
        message: "the path must be UTF-8".to_owned(),
    })?;
    let result = copy(src, dest, dest_text, opts);
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
        let _ = std::fs::remove_file(dest.with_extension("db-journal"));
    }
    result
}

/// Why copying the pages stopped.
enum Copy {
    TooSlow,
    Sqlite(rusqlite::Error),
}

/// Pages copied per step of the online backup: between steps the time limit
/// is checked (16 MiB of 4 KiB pages).
const PAGES_PER_STEP: i32 = 4096;

/// Copies every page of `conn`'s database (its read transaction open) into a
/// new database at `dest`, in steps, stopping past `opts.max_duration`.
fn copy_pages(
    conn: &Connection,
    dest_text: &str,
    opts: &SnapshotOptions,
    start: Instant,
) -> Result<(), Copy> {
    use rusqlite::backup::{Backup, StepResult};
    let mut to = Connection::open(dest_text).map_err(Copy::Sqlite)?;
    let backup = Backup::new(conn, &mut to).map_err(Copy::Sqlite)?;
    loop {
        if start.elapsed() > opts.max_duration {
            return Err(Copy::TooSlow);
        }
        match backup.step(PAGES_PER_STEP).map_err(Copy::Sqlite)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // Another connection holds a lock for a moment: retry.
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn copy(
    src: &Path,
    dest: &Path,
    dest_text: &str,
    opts: &SnapshotOptions,
) -> Result<Snapshot, SnapshotError> {
    let sqlite = |source| SnapshotError::Sqlite {
        path: src.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(opts.busy_timeout).map_err(sqlite)?;
    // Reading the schema is the first access to the file's header.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|source| SnapshotError::NotADatabase {
        path: src.to_owned(),
        source,
    })?;

    // One read transaction for every step: the snapshot cannot move.
    conn.execute_batch("BEGIN").map_err(sqlite)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(sqlite)?;
    let start = Instant::now();
    let copied = copy_pages(&conn, dest_text, opts, start);
    let duration = start.elapsed();
    // Ending a read transaction cannot lose anything.
    let _ = conn.execute_batch("ROLLBACK");
    match copied {
        Err(Copy::TooSlow) => {
            return Err(SnapshotError::TooSlow {
                path: src.to_owned(),
                limit: opts.max_duration,
            });
        }
        Err(Copy::Sqlite(e)) => return Err(sqlite(e)),
        Ok(()) => {}
    }
    drop(conn);

    // Check the copy: complete, consistent, and not in WAL mode.
    let check =
        Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sqlite)?;
    let mode: String = check
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(sqlite)?;
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sqlite)?;
    drop(check);
    if mode != "delete" || integrity != "ok" {
        return Err(SnapshotError::Destination {
            path: dest.to_owned(),
            message: format!(
                "the copy failed its check (journal_mode {mode}, integrity {integrity})"
            ),
        });
    }
    let file = File::open(dest).map_err(|e| SnapshotError::Destination {
        path: dest.to_owned(),
        message: e.to_string(),
    })?;
    file.sync_all().map_err(|e| SnapshotError::Destination {
        path: dest.to_owned(),
        message: e.to_string(),
    })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Snapshot { bytes, duration })
}
