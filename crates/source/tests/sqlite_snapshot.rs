//! Snapshots of a live SQLite database while another process writes to it.
//!
//! The writer is a separate Python process committing transactions that keep
//! an invariant (`summary` holds the count and sum of `t`), so a torn copy is
//! detectable. Every snapshot must pass `integrity_check`, hold the invariant,
//! be a self-contained file, and be taken while the writer keeps committing.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cairn_source::sqlite::{SnapshotError, SnapshotOptions, snapshot};
use cairn_testkit::require_tool;
use rusqlite::Connection;

const WRITER: &str = r#"
import sqlite3, sys, os, time
db, stop, counter = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, isolation_level=None, timeout=30)
n = 0
while not os.path.exists(stop):
    c.execute("BEGIN IMMEDIATE")
    base = n * 50
    c.executemany("INSERT INTO t(v) VALUES (?)", [(base + i,) for i in range(50)])
    c.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT 10)")
    c.execute("UPDATE summary SET n = (SELECT count(*) FROM t), s = (SELECT coalesce(sum(v), 0) FROM t)")
    c.execute("COMMIT")
    n += 1
    with open(counter + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(counter + ".tmp", counter)
with open(counter, "w") as f:
    f.write(str(n))
"#;

fn make_db(path: &Path, rows: i64) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB);
         CREATE TABLE summary (n INTEGER NOT NULL, s INTEGER NOT NULL);
         INSERT INTO summary VALUES (0, 0);",
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    {
        let mut ins = c
            .prepare("INSERT INTO t (v, pad) VALUES (?1, zeroblob(200))")
            .unwrap();
        for v in 0..rows {
            ins.execute([v]).unwrap();
        }
    }
    c.execute_batch(
        "UPDATE summary SET n = (SELECT count(*) FROM t), s = (SELECT sum(v) FROM t); COMMIT;",
    )
    .unwrap();
}

fn commits(counter: &Path) -> u64 {
    std::fs::read_to_string(counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn check_copy(path: &Path) -> (i64, i64) {
    let c = Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the copy must not be in WAL mode");
    let (n, s): (i64, i64) = c
        .query_row("SELECT n, s FROM summary", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (count, sum): (i64, i64) = c
        .query_row("SELECT count(*), coalesce(sum(v), 0) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (n, s),
        (count, sum),
        "torn snapshot: summary disagrees with the rows"
    );
    (count, sum)
}

struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn snapshots_under_a_steady_writer_are_consistent() {
    let Some(python) = require_tool("python3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    make_db(&db, 100_000);
    let stop = dir.path().join("stop");
    let counter = dir.path().join("commits");
    let writer = Writer(
        Command::new(python)
            .arg("-c")
            .arg(WRITER)
            .arg(&db)
            .arg(&stop)
            .arg(&counter)
            .spawn()
            .unwrap(),
    );
    // Wait until the writer is committing.
    let t0 = Instant::now();
    while commits(&counter) < 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the writer never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut last = (0, 0);
    let mut seen_commits = Vec::new();
    for i in 0..6 {
        let out = dir.path().join(format!("snap{i}.db"));
        let snap = snapshot(&db, &out, &SnapshotOptions::default()).unwrap();
        assert!(snap.bytes > 0);
        assert!(!dir.path().join(format!("snap{i}.db-wal")).exists());
        let state = check_copy(&out);
        assert_ne!(state, last, "each snapshot sees newer commits");
        last = state;
        seen_commits.push(commits(&counter));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&stop, b"").unwrap();
    let mut writer = writer;
    assert!(
        writer.0.wait().unwrap().success(),
        "the writer failed (it never waits long: WAL)"
    );
    assert!(
        seen_commits.windows(2).all(|w| w[1] > w[0]),
        "the writer kept committing during the snapshots: {seen_commits:?}"
    );
}

#[test]
fn a_snapshot_that_takes_too_long_is_interrupted_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    make_db(&db, 300_000);
    let out = dir.path().join("snap.db");
    let opts = SnapshotOptions {
        max_duration: Duration::from_millis(1),
        ..SnapshotOptions::default()
    };
    let err = snapshot(&db, &out, &opts).unwrap_err();
    assert!(matches!(err, SnapshotError::TooSlow { .. }), "{err}");
    assert!(err.to_string().contains("max_duration"), "{err}");
    assert!(!out.exists(), "a failed snapshot leaves nothing");
    // With the default limit the same database copies fine.
    snapshot(&db, &out, &SnapshotOptions::default()).unwrap();
    check_copy(&out);
}

#[test]
fn bad_sources_and_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SnapshotOptions::default();
    let out = dir.path().join("out.db");
    let err = snapshot(&dir.path().join("missing.db"), &out, &opts).unwrap_err();
    assert!(matches!(err, SnapshotError::Source { .. }), "{err}");
    let err = snapshot(dir.path(), &out, &opts).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let err = snapshot(&junk, &out, &opts).unwrap_err();
    assert!(matches!(err, SnapshotError::NotADatabase { .. }), "{err}");
    assert!(!out.exists());
    let db = dir.path().join("ok.db");
    make_db(&db, 10);
    std::fs::write(&out, b"keep me").unwrap();
    let err = snapshot(&db, &out, &opts).unwrap_err();
    assert!(matches!(err, SnapshotError::Destination { .. }), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"keep me",
        "an existing file is never replaced"
    );
}

/// The 4 KiB pages at which two files differ.
fn differing_pages(a: &[u8], b: &[u8]) -> Vec<usize> {
    let pages = a.len().max(b.len()).div_ceil(4096);
    (0..pages)
        .filter(|&i| {
            let page = |f: &[u8]| {
                f.get(i * 4096..((i + 1) * 4096).min(f.len()))
                    .map(<[u8]>::to_vec)
            };
            page(a) != page(b)
        })
        .collect()
}

#[test]
fn unchanged_pages_keep_their_offsets_from_one_snapshot_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("live.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
         INSERT INTO t SELECT i, randomblob(300) FROM n;
         DELETE FROM t WHERE id BETWEEN 1000 AND 1400;",
    )
    .unwrap();
    let opts = SnapshotOptions::default();
    let first = tmp.path().join("first.db");
    snapshot(&db, &first, &opts).unwrap();
    // One row changes in place; nothing else.
    c.execute("UPDATE t SET pad = randomblob(300) WHERE id = 3500", [])
        .unwrap();
    let second = tmp.path().join("second.db");
    snapshot(&db, &second, &opts).unwrap();

    let (a, b) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    let changed = differing_pages(&a, &b);
    // The header page (its change counter) and the row's leaf page.
    assert!(
        changed.len() <= 3 && changed.len() < a.len() / 4096 / 50,
        "{} of {} pages moved or changed: {changed:?}",
        changed.len(),
        a.len() / 4096
    );
    // Free pages are kept where they are, not compacted away as VACUUM does.
    let copy = Connection::open(&second).unwrap();
    let free: i64 = copy
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert!(free > 0, "the snapshot compacted the database");
    let ok: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
