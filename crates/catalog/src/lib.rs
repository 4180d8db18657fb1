//! The catalog of Cairn: an SQLite index of backups, jobs, schedules and
//! idempotency keys.
//!
//! The store is the truth about which backups exist; the catalog makes them
//! fast to list and filter, and holds what the store does not: job records,
//! schedule states, idempotency keys, pins, soft deletes and verification
//! results. A lost or corrupt catalog is rebuilt from the store's seals and
//! manifests ([`Catalog::replace_target_backups`] takes the rebuilt records).
//!
//! - SQLite is bundled (no system library), in WAL mode with
//!   `synchronous=FULL`, foreign keys on and a 5 s busy timeout.
//! - The schema is versioned with `PRAGMA user_version` and migrated forward
//!   on open, one transaction per step; a database from a newer Cairn is
//!   refused rather than guessed at.
//! - **Threads:** a [`Catalog`] owns one connection behind a mutex; it is
//!   `Send + Sync`, every call takes the lock for one short transaction, and
//!   the async engine calls it from `spawn_blocking`. Other processes (a CLI
//!   beside a server) open their own `Catalog` on the same file: WAL lets them
//!   read while one writes, and writers wait on the busy timeout.
//! - A file that is not a catalog, or is corrupt, gives [`ErrorKind::Corrupt`]
//!   with the path and how to rebuild.
//!
//! Timestamps are stored as integer nanoseconds since the Unix epoch, so they
//! sort and compare exactly.

mod backups;
mod jobs;
mod schedules;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};

pub use backups::{
    BackupFilter, BackupRecord, BackupStatus, Cursor, MAX_PAGE, Page, TargetSummary, Verification,
};
pub use jobs::{JobCreated, UnfinishedJob};
pub use schedules::TargetSettings;
pub use shared::StateChange;

/// The schema, one migration per version: `MIGRATIONS[i]` takes a database
/// from version `i` to `i + 1`. Released migrations never change; a new
/// version appends one.
pub const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
    include_str!("schema/v6.sql"),
    include_str!("schema/v7.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a call waits for another process's write to finish.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What kind of failure, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file is not a catalog or is damaged: rebuild it from the store.
    Corrupt,
    /// The catalog was written by a newer Cairn.
    TooNew,
    /// No such backup or job.
    NotFound,
    /// The row exists already (a duplicate id or idempotency key).
    Conflict,
    /// A cursor that this catalog did not issue.
    BadCursor,
    /// Another process held the catalog's write lock past the busy timeout.
    Busy,
    /// Anything else from SQLite or the filesystem.
    Other,
}

/// A catalog operation failed.
#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {message}")]
pub struct Error {
    path: String,
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<rusqlite::Error>,
}

impl Error {
    fn new(path: &Path, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            path: path.display().to_string(),
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An SQLite failure while doing `what`. The SQLite error is the
    /// source: the message says what it means for the catalog, not what
    /// SQLite said (a report of the chain prints both, once each).
    fn sqlite(path: &Path, what: &str, e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        let (kind, message) = match (&e, e.sqlite_error_code()) {
            (rusqlite::Error::FromSqlConversionFailure(..), _) => (
                ErrorKind::Corrupt,
                format!(
                    "{what}: a stored value does not decode; rebuild the catalog from the store"
                ),
            ),
            (_, Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)) => (
                ErrorKind::Corrupt,
                format!(
                    "{what}: the file is not a Cairn catalog or is damaged; move it aside and rebuild the catalog from the store"
                ),
            ),
            (_, Some(ErrorCode::ConstraintViolation)) => (ErrorKind::Conflict, what.to_owned()),
            (_, Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) => (
                ErrorKind::Busy,
                format!(
                    "{what}: another process held the catalog longer than {} s",
                    BUSY_TIMEOUT.as_secs()
                ),
            ),
            _ => (ErrorKind::Other, what.to_owned()),
        };
        Self {
            path: path.display().to_string(),
            kind,
            message,
            source: Some(e),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again later may succeed (another process held the
    /// catalog's lock past the timeout).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Busy
    }

    /// The catalog file.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A catalog: one SQLite file.
#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

pub(crate) fn to_nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t > Timestamp::UNIX_EPOCH {
        i64::MAX
    } else {
        i64::MIN
    })
}

pub(crate) fn from_nanos(n: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(n)).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and migrates it to
    /// the current schema.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] for a file that is not a catalog (or a damaged one),
    /// [`ErrorKind::TooNew`] for one written by a newer Cairn, [`ErrorKind::Busy`] when other
    /// processes hold it past the busy timeout, [`ErrorKind::Other`] when it cannot be created
    /// or the filesystem refuses WAL mode.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| Error::sqlite(&path, "opening", e))?;
        Self::start(path, conn)
    }

    /// An in-memory catalog (tests, dry runs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] if SQLite cannot open or migrate an in-memory database.
    pub fn in_memory() -> Result<Self, Error> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| Error::sqlite(&path, "opening", e))?;
        Self::start(path, conn)
    }

    /// Configures a fresh connection and brings its schema up to date.
    fn start(path: PathBuf, conn: Connection) -> Result<Self, Error> {
        let catalog = Self {
            path,
            conn: Mutex::new(conn),
        };
        catalog.configure()?;
        catalog.migrate()?;
        Ok(catalog)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so the connection is still usable.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn err(&self, what: &str, e: rusqlite::Error) -> Error {
        Error::sqlite(&self.path, what, e)
    }

    pub(crate) fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(&self.path, kind, message)
    }

    fn configure(&self) -> Result<(), Error> {
        let conn = self.conn();
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.err("setting the busy timeout", e))?;
        // The first statement reads the header: a file that is not a
        // database fails here, with a clear message. Switching a new file
        // to WAL needs it alone, and SQLite does not wait for that on its
        // busy timeout: another process creating the same catalog at the
        // same instant makes it busy, so wait here as the timeout would.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mode: String = loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.map_err(|e| self.err("enabling WAL", e))?,
            }
        };
        if mode != "wal" && mode != "memory" {
            return Err(self.error(
                ErrorKind::Other,
                format!("the filesystem refused WAL mode (journal_mode is {mode})"),
            ));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| self.err("setting pragmas", e))
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn schema_version(&self) -> Result<u32, Error> {
        self.conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))
    }

    /// Brings the schema up to date in one immediate transaction: the
    /// version is read under the write lock, so two processes opening a new
    /// catalog at once migrate it once (the second waits, then finds it
    /// current), and a failed step leaves the previous version whole.
    fn migrate(&self) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err("starting a migration", e))?;
        let version: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(self.error(
                ErrorKind::TooNew,
                format!(
                    "schema version {version} was written by a newer Cairn (this one knows up to {SCHEMA_VERSION}); upgrade Cairn or rebuild the catalog from the store"
                ),
            ));
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let to = from + 1;
            tx.execute_batch(sql)
                .map_err(|e| self.err(&format!("migrating to schema version {to}"), e))?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| self.err("recording the schema version", e))?;
        tx.commit()
            .map_err(|e| self.err("committing a migration", e))
    }

    /// Runs SQLite's own consistency check (`PRAGMA quick_check`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] naming what SQLite found; SQLite failures: [`ErrorKind::Busy`]
    /// when another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`]
    /// for a damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn check(&self) -> Result<(), Error> {
        let result: String = self
            .conn()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.err("checking", e))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(self.error(
                ErrorKind::Corrupt,
                format!("quick_check: {result}; move the file aside and rebuild the catalog from the store"),
            ))
        }
    }
}
