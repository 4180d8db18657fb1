//! What capturing a directory does with awkward inputs.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_archive::*;
use cairn_manifest::{ComponentKind, EntryKind, EntryPath, Mtime, SkipReason};

use super::common::*;

#[test]
fn sockets_and_fifos_are_skipped_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), b"kept").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status();
    let have_fifo = status.is_ok_and(|s| s.success());
    let done = pack_dir(&src, WriterOptions::default().format(1));
    let m = &listing(&done);
    let mut skipped: Vec<(String, SkipReason)> = m
        .skipped
        .iter()
        .map(|s| (s.path.to_string(), s.reason))
        .collect();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![("data/sock".to_owned(), SkipReason::Socket)];
    if have_fifo {
        want.insert(0, ("data/pipe".to_owned(), SkipReason::Fifo));
    }
    assert_eq!(skipped, want);
    assert_eq!(m.entries.len(), 2); // the root and the file
}

/// Reads `real` bytes but is announced as `declared`.
struct Liar {
    left: usize,
}

impl Read for Liar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.left.min(buf.len());
        buf[..n].fill(b'z');
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn sources_that_change_size_are_archived_consistently_and_reported() {
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(1)).unwrap();
    w.begin_component(&name("data"), ComponentKind::Dir, false)
        .unwrap();
    let m0 = EntryMeta::new(0o644, Mtime::new(0, 0));
    w.append_data(
        &EntryPath::parse(b"data/shrank").unwrap(),
        m0,
        1000,
        &mut Liar { left: 600 },
        None,
    )
    .unwrap();
    w.append_data(
        &EntryPath::parse(b"data/grew").unwrap(),
        m0,
        100,
        &mut Liar { left: 5000 },
        None,
    )
    .unwrap();
    let done = w.finish(&key()).unwrap();
    let warnings: Vec<String> = done
        .manifest
        .v1()
        .unwrap()
        .manifest()
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("data/shrank: changed while being read: only 600 of 1000"));
    assert!(warnings[1].starts_with("data/grew: changed while being read: it grew"));
    // The archive is consistent: it verifies, and holds what was read (zero-padded).
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &dest, &UnpackOptions::default())
        .unwrap();
    let shrank = std::fs::read(dest.join("data/shrank")).unwrap();
    assert_eq!(&shrank[..600], &[b'z'; 600][..]);
    assert_eq!(&shrank[600..], &[0u8; 400][..]);
    assert_eq!(
        std::fs::read(dest.join("data/grew")).unwrap(),
        vec![b'z'; 100]
    );
}

#[test]
fn missing_or_wrong_sources_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(1)).unwrap();
    let err = w
        .append_dir(&name("data"), &tmp.path().join("nope"), false)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let err = w
        .append_dir(&name("data"), &tmp.path().join("file"), false)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = w
        .append_file(&name("cfg"), ComponentKind::File, tmp.path(), false)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A component name may be used once.
    w.append_file(
        &name("cfg"),
        ComponentKind::File,
        &tmp.path().join("file"),
        false,
    )
    .unwrap();
    let err = w
        .append_file(
            &name("cfg"),
            ComponentKind::File,
            &tmp.path().join("file"),
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
}

#[test]
fn single_file_components() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("app.db"), b"SQLite format 3\0...").unwrap();
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(1)).unwrap();
    w.append_file(
        &name("db"),
        ComponentKind::Sqlite,
        &tmp.path().join("app.db"),
        true,
    )
    .unwrap();
    let done = w.finish(&key()).unwrap();
    let m = &listing(&done);
    assert_eq!(m.components[0].kind, ComponentKind::Sqlite);
    assert!(m.components[0].optional);
    assert_eq!(m.entries[0].path.to_string(), "db/app.db");
    assert_eq!(m.entries[0].kind, EntryKind::File);
}

#[derive(Debug, Default)]
struct Counter {
    bytes: AtomicU64,
    entries: AtomicU64,
    cancel_after: Option<u64>,
}

impl Progress for Counter {
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn entry(&self, _: &EntryPath) {
        self.entries.fetch_add(1, Ordering::Relaxed);
    }
    fn is_cancelled(&self) -> bool {
        self.cancel_after
            .is_some_and(|n| self.bytes.load(Ordering::Relaxed) >= n)
    }
}

#[test]
fn progress_is_reported_and_cancellation_stops_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 100_000]).unwrap();
    }
    let counter = Arc::new(Counter::default());
    let done = pack_dir(
        &src,
        WriterOptions::default().format(1).progress(counter.clone()),
    );
    assert_eq!(counter.bytes.load(Ordering::Relaxed), 2_000_000);
    assert_eq!(counter.entries.load(Ordering::Relaxed), 21);

    let reading = Arc::new(Counter::default());
    ArchiveReader::with_options(
        &done.inner[..],
        ReadOptions::default().progress(reading.clone()),
    )
    .unwrap()
    .verify(&key().public_key())
    .unwrap();
    assert_eq!(reading.bytes.load(Ordering::Relaxed), 2_000_000);

    let stop = Arc::new(Counter {
        cancel_after: Some(500_000),
        ..Counter::default()
    });
    let mut w = ArchiveWriter::new(
        Vec::new(),
        meta(),
        WriterOptions::default().format(1).progress(stop.clone()),
    )
    .unwrap();
    let err = w.append_dir(&name("data"), &src, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(stop.bytes.load(Ordering::Relaxed) < 2_000_000);

    let stop = Arc::new(Counter {
        cancel_after: Some(500_000),
        ..Counter::default()
    });
    let err = ArchiveReader::with_options(&done.inner[..], ReadOptions::default().progress(stop))
        .unwrap()
        .unpack(
            &key().public_key(),
            &tmp.path().join("out"),
            &UnpackOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(!tmp.path().join("out").exists());
    assert!(staging_leftovers(tmp.path()).is_empty());
}
