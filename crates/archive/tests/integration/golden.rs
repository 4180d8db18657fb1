//! The golden archives under `tests/golden/` (format 1, `v1.*`, and format 2,
//! `v2.*`, with the same content) were written once by `regenerate_golden_v1`
//! and `regenerate_golden_v2` (ignored) and are committed. Every later version
//! must keep reading them exactly: never regenerate one to make this test pass.

use std::io::Cursor;
use std::path::PathBuf;

use cairn_archive::*;
use cairn_integrity::{PublicKey, SignedSeal, SigningKey};
use cairn_manifest::*;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn big() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 17) as u8)
        .collect()
}

const LONG: &str = "data/a-name-that-is-much-longer-than-the-hundred-bytes-a-ustar-header-can-hold-so-it-needs-a-pax-record.txt";

/// Writes the golden format 1 archive. Run with
/// `cargo test -p cairn-archive --test integration regenerate_golden_v1 -- --ignored`
/// only when adding a new format version's golden file, never to change v1.
#[test]
#[ignore = "writes the committed golden archive"]
fn regenerate_golden_v1() {
    write_golden(1, "golden v1");
}

/// Writes the golden format 2 archive (same content as v1's); as above.
#[test]
#[ignore = "writes the committed golden archive"]
fn regenerate_golden_v2() {
    write_golden(2, "golden v2");
}

fn write_golden(format: u32, label: &str) {
    let key = SigningKey::from_seed(&[0x6f; 32]);
    let meta = ArchiveMeta::new(
        TargetName::parse("golden").unwrap(),
        OriginId::parse("org_golden").unwrap(),
    )
    .backup_id(BackupId::from_parts(1_795_000_000_000, 0x1234))
    .created_at("2026-11-22T00:00:00Z".parse().unwrap())
    .label(label)
    .hostname("golden-host");
    let opts = WriterOptions::default()
        .frame_size(64 * 1024)
        .threads(1)
        .format(format);
    let mut w = ArchiveWriter::new(Vec::new(), meta, opts).unwrap();
    let t = |s: i64| Mtime::new(1_795_000_000 + s, 123_456_789);
    let m = |mode, s| EntryMeta {
        mode,
        mtime: t(s),
        uid: 1000,
        gid: 1000,
    };
    let p = |s: &[u8]| EntryPath::parse(s).unwrap();

    let config = ComponentName::parse("config").unwrap();
    let body = b"listen = 8080\n";
    w.append_reader(
        &config,
        ComponentKind::File,
        b"app.toml",
        m(0o640, 1),
        body.len() as u64,
        &mut &body[..],
        false,
    )
    .unwrap();

    let data = ComponentName::parse("data").unwrap();
    w.begin_component(&data, ComponentKind::Dir, false).unwrap();
    w.append_directory(&p(b"data"), m(0o755, 2)).unwrap();
    let readme = b"Cairn golden archive, format v1.\n";
    w.append_data(
        &p(b"data/readme.txt"),
        m(0o644, 3),
        readme.len() as u64,
        &mut &readme[..],
        None,
    )
    .unwrap();
    w.append_data(
        &p(b"data/odd \xff name"),
        m(0o600, 4),
        3,
        &mut &b"odd"[..],
        None,
    )
    .unwrap();
    let big = big();
    w.append_data(
        &p(b"data/big.bin"),
        m(0o644, 5),
        big.len() as u64,
        &mut &big[..],
        None,
    )
    .unwrap();
    w.append_directory(&p(b"data/empty-dir"), m(0o700, 6))
        .unwrap();
    w.append_data(&p(b"data/empty"), m(0o444, 7), 0, &mut &b""[..], None)
        .unwrap();
    w.append_symlink(
        &p(b"data/link"),
        &LinkTarget::parse(b"readme.txt").unwrap(),
        m(0o777, 8),
    )
    .unwrap();
    w.append_hardlink(&p(b"data/hard"), &p(b"data/readme.txt"), m(0o644, 3))
        .unwrap();
    w.append_data(&p(LONG.as_bytes()), m(0o644, 9), 4, &mut &b"long"[..], None)
        .unwrap();

    let db = ComponentName::parse("db").unwrap();
    let sqlite = b"SQLite format 3\0 not really";
    w.append_reader(
        &db,
        ComponentKind::Sqlite,
        b"app.db",
        m(0o600, 10),
        sqlite.len() as u64,
        &mut &sqlite[..],
        true,
    )
    .unwrap();

    let done = w.finish(&key).unwrap();
    let dir = golden_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let v = format!("v{format}");
    std::fs::write(dir.join(format!("{v}.tar.zst")), &done.inner).unwrap();
    std::fs::write(dir.join(format!("{v}.tar.zst.seal")), done.seal.to_bytes()).unwrap();
    std::fs::write(
        dir.join(format!("{v}.pub.pem")),
        key.public_key().to_public_key_pem().unwrap(),
    )
    .unwrap();
}

fn load(v: &str) -> (Vec<u8>, SignedSeal, PublicKey) {
    let dir = golden_dir();
    let archive = std::fs::read(dir.join(format!("{v}.tar.zst"))).unwrap();
    let key = PublicKey::load(dir.join(format!("{v}.pub.pem"))).unwrap();
    let seal = SignedSeal::parse(&std::fs::read(dir.join(format!("{v}.tar.zst.seal"))).unwrap())
        .unwrap()
        .verify(&key)
        .unwrap();
    (archive, seal, key)
}

#[test]
fn golden_v1_still_reads() {
    let (archive, seal, key) = load("v1");
    let v = ArchiveReader::new(&archive[..])
        .unwrap()
        .verify(&key)
        .unwrap();
    v.check_seal(&seal).unwrap();
    let m = v.manifest.v1().unwrap().manifest();
    assert_eq!(m.version, FormatVersion { major: 1, minor: 0 });
    assert_eq!(m.backup_id.to_string(), seal.seal().backup_id);
    assert_eq!(m.backup_id.unix_ms(), 1_795_000_000_000);
    assert_eq!(m.label.as_deref(), Some("golden v1"));
    assert_eq!(m.origin.hostname.as_deref(), Some("golden-host"));
    check_components(&m.components);
    let paths: Vec<String> = m.entries.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(paths, golden_paths());
    assert!(m.frames.len() >= 4, "big.bin spans frames");
    check_golden_reads(&archive, &seal, &key);
}

#[test]
fn golden_v2_still_reads() {
    let (archive, seal, key) = load("v2");
    let v = ArchiveReader::new(&archive[..])
        .unwrap()
        .verify(&key)
        .unwrap();
    v.check_seal(&seal).unwrap();
    let r = v.manifest.v2().expect("format 2").manifest();
    assert_eq!(r.version, FormatVersion { major: 2, minor: 0 });
    assert_eq!(r.backup_id.to_string(), seal.seal().backup_id);
    assert_eq!(r.label.as_deref(), Some("golden v2"));
    assert!(
        !r.canonical_order,
        "the golden entries are not in canonical order"
    );
    // One page per component, and `data` cut where its order stopped being
    // canonical (the writer closes the page it replays from).
    assert_eq!(r.pages.len(), 4);
    check_components(&r.components);
    let mut s = SeekableArchive::open(
        SeekSource(Cursor::new(archive.clone())),
        &key,
        ReadOptions::default(),
    )
    .unwrap();
    let mut paths = Vec::new();
    s.for_each_entry(|e| {
        paths.push(e.path.to_string());
        Ok(())
    })
    .unwrap();
    assert_eq!(paths, golden_paths());
    assert!(r.frames.len() >= 4, "big.bin spans frames");
    check_golden_reads(&archive, &seal, &key);
}

fn golden_paths() -> Vec<&'static str> {
    vec![
        "config/app.toml",
        "data",
        "data/readme.txt",
        "data/odd \\xff name",
        "data/big.bin",
        "data/empty-dir",
        "data/empty",
        "data/link",
        "data/hard",
        LONG,
        "db/app.db",
    ]
}

fn check_components(components: &[Component]) {
    let comps: Vec<(String, ComponentKind, bool)> = components
        .iter()
        .map(|c| (c.name.to_string(), c.kind, c.optional))
        .collect();
    assert_eq!(
        comps,
        vec![
            ("config".into(), ComponentKind::File, false),
            ("data".into(), ComponentKind::Dir, false),
            ("db".into(), ComponentKind::Sqlite, true),
        ]
    );
}

/// What both golden archives must give back, by every read path.
fn check_golden_reads(archive: &[u8], seal: &SignedSeal, key: &PublicKey) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    ArchiveReader::new(archive)
        .unwrap()
        .unpack(key, &dest, &UnpackOptions::default().restore_owner(false))
        .unwrap();
    assert_eq!(
        std::fs::read(dest.join("config/app.toml")).unwrap(),
        b"listen = 8080\n"
    );
    assert_eq!(std::fs::read(dest.join("data/big.bin")).unwrap(), big());
    assert_eq!(
        std::fs::read(dest.join("data/hard")).unwrap(),
        b"Cairn golden archive, format v1.\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("data/link")).unwrap(),
        PathBuf::from("readme.txt")
    );
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        std::fs::read(dest.join(std::ffi::OsStr::from_bytes(b"data/odd \xff name"))).unwrap(),
        b"odd"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dest.join("config/app.toml")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_795_000_001, 123_456_789)
    );
    assert_eq!(
        std::fs::metadata(dest.join("data/empty-dir"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o700
    );

    let mut s = SeekableArchive::open_sealed(
        SeekSource(Cursor::new(archive.to_vec())),
        seal,
        key,
        ReadOptions::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_file(&EntryPath::parse(b"data/big.bin").unwrap(), &mut out)
        .unwrap();
    assert_eq!(out, big());
    s.verify_full(key).unwrap();
    let seek = tmp.path().join("seek");
    s.unpack(&seek, &UnpackOptions::default().restore_owner(false))
        .unwrap();
    assert_eq!(
        std::fs::read(seek.join("data/hard")).unwrap(),
        std::fs::read(dest.join("data/hard")).unwrap()
    );
}

/// Writes a golden chain `<prefix>.full` and `<prefix>.child` with their
/// seals and the key that verifies them.
fn write_golden_chain(
    prefix: &str,
    full: &Finished<Vec<u8>>,
    child: &Finished<Vec<u8>>,
    key: &SigningKey,
) {
    let dir = golden_dir();
    for (name, done) in [("full", full), ("child", child)] {
        let name = format!("{prefix}.{name}");
        std::fs::write(dir.join(format!("{name}.tar.zst")), &done.inner).unwrap();
        std::fs::write(
            dir.join(format!("{name}.tar.zst.seal")),
            done.seal.to_bytes(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join(format!("{prefix}.pub.pem")),
        key.public_key().to_public_key_pem().unwrap(),
    )
    .unwrap();
}

/// The committed golden archive `name`, opened through its seal with `key`.
fn open_golden(name: &str, key: &PublicKey) -> SeekableArchive<SeekSource<Cursor<Vec<u8>>>> {
    let dir = golden_dir();
    let bytes = std::fs::read(dir.join(format!("{name}.tar.zst"))).unwrap();
    let seal = SignedSeal::parse(&std::fs::read(dir.join(format!("{name}.tar.zst.seal"))).unwrap())
        .unwrap()
        .verify(key)
        .unwrap();
    SeekableArchive::open_sealed(
        SeekSource(Cursor::new(bytes)),
        &seal,
        key,
        ReadOptions::default(),
    )
    .unwrap()
}

/// The files of the golden chain: (path under `data/`, content in the full
/// backup, content in the incremental one; `None` where absent).
type ChainFile = (&'static str, Option<&'static [u8]>, Option<&'static [u8]>);
const CHAIN: &[ChainFile] = &[
    (
        "kept.txt",
        Some(b"unchanged, stored in the full backup\n"),
        Some(b"unchanged, stored in the full backup\n"),
    ),
    (
        "sub/also-kept.bin",
        Some(&[7u8; 70_000]),
        Some(&[7u8; 70_000]),
    ),
    (
        "changed.txt",
        Some(b"first version\n"),
        Some(b"second version, stored in the child\n"),
    ),
    ("removed.txt", Some(b"only in the full backup\n"), None),
    ("added.txt", None, Some(b"only in the child\n")),
];

/// Writes the golden chain (a full format 2.1 archive and an incremental one
/// naming it), once, from a real tree: which files are unchanged is decided
/// from their times and inodes on disk. Run like `regenerate_golden_v1`.
#[test]
#[ignore = "writes the committed golden archives"]
fn regenerate_golden_chain() {
    let key = SigningKey::from_seed(&[0x70; 32]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    let write = |pick: fn(&ChainFile) -> Option<&'static [u8]>| {
        for f in CHAIN {
            let path = src.join(f.0);
            match pick(f) {
                Some(body) if std::fs::read(&path).ok().as_deref() != Some(body) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, body).unwrap();
                }
                Some(_) => {}
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    };
    let pack = |n: u64, parent: Option<&[u8]>| {
        // A minute ahead of the files: they count as settled.
        let meta = ArchiveMeta::new(
            TargetName::parse("golden").unwrap(),
            OriginId::parse("org_golden").unwrap(),
        )
        .backup_id(BackupId::from_parts(1_796_000_000_000 + n, u128::from(n)))
        .created_at(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + n as i64))
        .label(format!("golden chain {n}"));
        let opts = WriterOptions::default().frame_size(64 * 1024).threads(1);
        let mut w = ArchiveWriter::new(Vec::new(), meta, opts).unwrap();
        if let Some(p) = parent {
            let a = SeekableArchive::open(
                SeekSource(Cursor::new(p.to_vec())),
                &key.public_key(),
                ReadOptions::default(),
            )
            .unwrap();
            w.set_parent(Parent::new(a).unwrap()).unwrap();
        }
        w.append_dir(&ComponentName::parse("data").unwrap(), &src, false)
            .unwrap();
        w.finish(&key).unwrap()
    };
    write(|f| f.1);
    let full = pack(1, None);
    write(|f| f.2);
    let child = pack(2, Some(&full.inner));
    assert_eq!(child.reused_files, 2);
    write_golden_chain("chain", &full, &child, &key);
}

#[test]
fn golden_chain_still_reads() {
    let dir = golden_dir();
    let key = PublicKey::load(dir.join("chain.pub.pem")).unwrap();
    let open = |name: &str| open_golden(name, &key);
    let full = open("chain.full");
    let mut child = open("chain.child");
    let root = child.manifest().v2().unwrap().manifest().clone();
    assert_eq!(root.version, FormatVersion { major: 2, minor: 1 });
    assert_eq!(root.features, vec!["parents".to_owned()]);
    assert_eq!(root.parents.len(), 1);
    assert_eq!(root.parents[0].backup_id, full.manifest().backup_id());
    assert!(root.parents[0].root_sha256.ct_eq(&full.manifest().sha256()));
    child.attach_parents(vec![full]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    child
        .unpack(&out, &UnpackOptions::default().restore_owner(false))
        .unwrap();
    for (path, _, body) in CHAIN {
        let got = std::fs::read(out.join("data").join(path)).ok();
        assert_eq!(got.as_deref(), *body, "{path}");
    }
    let mut stored_in = Vec::new();
    child
        .for_each_entry(|e| {
            if e.stored_in.is_some() {
                stored_in.push(e.path.to_string());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(stored_in, ["data/kept.txt", "data/sub/also-kept.bin"]);

    // GNU tar sees the child's own entries: the changed and added files.
    let Some(tar) = cairn_testkit::require_tool("tar") else {
        return;
    };
    let listed = cairn_testkit::run_ok(
        std::process::Command::new(tar)
            .arg("--zstd")
            .arg("-tf")
            .arg(dir.join("chain.child.tar.zst")),
    );
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(
        listed
            .lines()
            .filter(|l| !l.starts_with(".cairn/"))
            .collect::<Vec<_>>(),
        ["data/", "data/added.txt", "data/changed.txt", "data/sub/"]
    );
}

/// The large file of the golden segments chain: 200 KiB of numbered lines,
/// and the same with lines of its second 64 KiB segment rewritten.
fn segments_file(changed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < 200 * 1024 {
        let line = if changed && (70_000..120_000).contains(&out.len()) && i.is_multiple_of(50) {
            format!("line {i}: rewritten in the child\n")
        } else {
            format!("line {i}: {}\n", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        };
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(200 * 1024);
    out
}

/// Writes the golden segments chain: a full archive with a 200 KiB file
/// and an incremental one (segments of 64 KiB) in which its second segment
/// changed. Run like `regenerate_golden_v1`.
#[test]
#[ignore = "writes the committed golden archives"]
fn regenerate_golden_segments() {
    let key = SigningKey::from_seed(&[0x71; 32]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.log");
    let pack = |n: u64, parent: Option<&[u8]>| {
        let meta = ArchiveMeta::new(
            TargetName::parse("golden").unwrap(),
            OriginId::parse("org_golden").unwrap(),
        )
        .backup_id(BackupId::from_parts(1_797_000_000_000 + n, u128::from(n)))
        .created_at(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + n as i64))
        .label(format!("golden segments {n}"));
        let opts = WriterOptions::default()
            .frame_size(64 * 1024)
            .threads(1)
            .segment_size(64 * 1024);
        let mut w = ArchiveWriter::new(Vec::new(), meta, opts).unwrap();
        if let Some(p) = parent {
            let a = SeekableArchive::open(
                SeekSource(Cursor::new(p.to_vec())),
                &key.public_key(),
                ReadOptions::default(),
            )
            .unwrap();
            w.set_parent(Parent::new(a).unwrap()).unwrap();
        }
        w.append_file(
            &ComponentName::parse("log").unwrap(),
            ComponentKind::File,
            &src,
            false,
        )
        .unwrap();
        w.finish(&key).unwrap()
    };
    std::fs::write(&src, segments_file(false)).unwrap();
    let full = pack(1, None);
    std::fs::write(&src, segments_file(true)).unwrap();
    let child = pack(2, Some(&full.inner));
    write_golden_chain("segments", &full, &child, &key);
}

#[test]
fn golden_segments_still_read() {
    let dir = golden_dir();
    let key = PublicKey::load(dir.join("segments.pub.pem")).unwrap();
    let open = |name: &str| open_golden(name, &key);
    let full = open("segments.full");
    let mut child = open("segments.child");
    let root = child.manifest().v2().unwrap().manifest().clone();
    assert_eq!(
        root.features,
        vec!["parents".to_owned(), "segments".to_owned()]
    );
    assert_eq!(root.segment_size, Some(64 * 1024));
    assert!(
        root.blob_bytes > 0 && root.blob_bytes < 4096,
        "{}",
        root.blob_bytes
    );
    child.attach_parents(vec![full]).unwrap();
    child.verify_full(&key).unwrap();
    let mut body = Vec::new();
    child
        .read_file(&EntryPath::parse(b"log/big.log").unwrap(), &mut body)
        .unwrap();
    assert!(body == segments_file(true));

    // zstd and GNU tar pass over the blobs: alone, the child holds no data
    // entry, only its manifest.
    let Some(tar) = cairn_testkit::require_tool("tar") else {
        return;
    };
    let listed = cairn_testkit::run_ok(
        std::process::Command::new(tar)
            .arg("--zstd")
            .arg("-tf")
            .arg(dir.join("segments.child.tar.zst")),
    );
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(
        listed.lines().filter(|l| !l.starts_with(".cairn/")).count(),
        0
    );
}

/// Writes the golden page-reuse chain: a full archive of two components
/// and an incremental one in which `kept` did not change (its page is the
/// full backup's) and `notes` did. Run like `regenerate_golden_v1`.
#[test]
#[ignore = "writes the committed golden archives"]
fn regenerate_golden_pages() {
    let key = SigningKey::from_seed(&[0x72; 32]);
    let tmp = tempfile::tempdir().unwrap();
    let kept = tmp.path().join("kept");
    let notes = tmp.path().join("notes");
    for (dir, files) in [(&kept, 5), (&notes, 2)] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for i in 0..files {
            std::fs::write(dir.join(format!("sub/f{i}")), format!("file {i}\n")).unwrap();
        }
    }
    std::os::unix::fs::symlink("sub/f0", kept.join("link")).unwrap();
    let pack = |n: u64, parent: Option<&[u8]>| {
        let meta = ArchiveMeta::new(
            TargetName::parse("golden").unwrap(),
            OriginId::parse("org_golden").unwrap(),
        )
        .backup_id(BackupId::from_parts(1_798_000_000_000 + n, u128::from(n)))
        .created_at(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + n as i64))
        .label(format!("golden pages {n}"));
        let opts = WriterOptions::default().frame_size(64 * 1024).threads(1);
        let mut w = ArchiveWriter::new(Vec::new(), meta, opts).unwrap();
        if let Some(p) = parent {
            let a = SeekableArchive::open(
                SeekSource(Cursor::new(p.to_vec())),
                &key.public_key(),
                ReadOptions::default(),
            )
            .unwrap();
            w.set_parent(Parent::new(a).unwrap()).unwrap();
        }
        for (name, dir) in [("kept", &kept), ("notes", &notes)] {
            w.append_dir(&ComponentName::parse(name).unwrap(), dir, false)
                .unwrap();
        }
        w.finish(&key).unwrap()
    };
    let full = pack(1, None);
    std::fs::write(notes.join("sub/f1"), b"changed in the child\n").unwrap();
    let child = pack(2, Some(&full.inner));
    write_golden_chain("pages", &full, &child, &key);
}

#[test]
fn golden_pages_still_read() {
    let dir = golden_dir();
    let key = PublicKey::load(dir.join("pages.pub.pem")).unwrap();
    let open = |name: &str| open_golden(name, &key);
    let full = open("pages.full");
    let mut child = open("pages.child");
    let root = child.manifest().v2().unwrap().manifest().clone();
    assert_eq!(
        root.features,
        vec!["parents".to_owned(), "parent_pages".to_owned()]
    );
    let full_root = full.manifest().v2().unwrap().manifest().clone();
    assert_eq!(
        root.pages[0].data_in,
        Some(0),
        "kept: the full backup's page"
    );
    assert_eq!(root.pages[0].offset, full_root.pages[0].offset);
    assert!(root.pages[1].is_own(), "notes: changed, written anew");
    child.attach_parents(vec![full]).unwrap();
    child.verify_full(&key).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    child
        .unpack(&out, &UnpackOptions::default().restore_owner(false))
        .unwrap();
    assert_eq!(std::fs::read(out.join("kept/sub/f4")).unwrap(), b"file 4\n");
    assert_eq!(
        std::fs::read_link(out.join("kept/link")).unwrap(),
        std::path::Path::new("sub/f0")
    );
    assert_eq!(
        std::fs::read(out.join("notes/sub/f1")).unwrap(),
        b"changed in the child\n"
    );

    // GNU tar sees the child's own entries only: the changed component's.
    let Some(tar) = cairn_testkit::require_tool("tar") else {
        return;
    };
    let listed = cairn_testkit::run_ok(
        std::process::Command::new(tar)
            .arg("--zstd")
            .arg("-tf")
            .arg(dir.join("pages.child.tar.zst")),
    );
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(
        listed
            .lines()
            .filter(|l| !l.starts_with(".cairn/"))
            .collect::<Vec<_>>(),
        ["notes/", "notes/sub/", "notes/sub/f1"]
    );
}
