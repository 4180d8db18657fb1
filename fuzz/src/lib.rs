//! Properties checked by the fuzz targets, as plain functions so that the stable
//! smoke test (`tests/smoke.rs`) runs the very same checks without libFuzzer.
//!
//! Each property panics when violated; a fuzzer reports the panic with its input.

use std::io::Cursor;
use std::path::Path;

use arbitrary::Arbitrary;
use cairn_archive::{
    ArchiveMeta, ArchiveReader, ArchiveWriter, EntryMeta, IngestOptions, ReadOptions, SeekSource,
    SeekableArchive, UnpackOptions, WriterOptions, ingest,
};
use cairn_integrity::SigningKey;
use cairn_manifest::{
    BackupId, ComponentKind, ComponentName, DEFAULT_MAX_MANIFEST_BYTES, EntryKind, EntryPath,
    Mtime, OriginId, TargetName, UnverifiedManifest, parse_unauthenticated,
};

fn key() -> SigningKey {
    SigningKey::from_seed(&[0x42; 32])
}

fn meta() -> ArchiveMeta {
    ArchiveMeta::new(
        TargetName::parse("fuzz").expect("valid"),
        OriginId::parse("org_fuzz").expect("valid"),
    )
    .backup_id(BackupId::from_parts(1, 1))
}

/// Manifest parsing: never panics; whatever parses re-serialises to JSON that
/// parses to the same manifest; nothing unsigned verifies; every accepted path is
/// safe to join.
pub fn manifest_parse(data: &[u8]) {
    if let Ok(m) = parse_unauthenticated(data) {
        let again = serde_json::to_vec(&m).expect("a parsed manifest serialises");
        let back = parse_unauthenticated(&again).expect("re-serialised manifest parses");
        assert_eq!(back, m, "manifest JSON round trip changed it");
        let _ = m.validate();
        for e in &m.entries {
            assert!(
                e.path
                    .components()
                    .all(|c| !c.is_empty() && c != b"." && c != b"..")
            );
        }
    }
    if let Ok(u) = UnverifiedManifest::parse(data.to_vec(), &[0u8; 64], DEFAULT_MAX_MANIFEST_BYTES)
    {
        assert!(
            u.verify(&key().public_key()).is_err(),
            "a zero signature verified"
        );
    }
    if let Ok(p) = EntryPath::parse(data) {
        assert!(!p.as_bytes().starts_with(b"/"));
        assert!(
            p.components()
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
        );
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = s.parse::<Mtime>() {
            assert_eq!(t.to_string().parse::<Mtime>().expect("reparse"), t);
        }
    }
}

/// Archive reading: arbitrary bytes (raw, or compressed as one zstd frame) never
/// panic and never verify, streaming or seeking.
pub fn archive_read(data: &[u8]) {
    let public = key().public_key();
    let compressed = zstd::bulk::compress(data, 1).expect("compress");
    for input in [data, &compressed[..]] {
        let opts = ReadOptions::default().threads(2);
        let r = ArchiveReader::with_options(input, opts.clone()).and_then(|r| r.verify(&public));
        assert!(r.is_err(), "arbitrary bytes verified");
        if let Ok(mut s) = SeekableArchive::open(SeekSource(Cursor::new(input)), &public, opts) {
            panic!(
                "arbitrary bytes opened as an archive: {s:?} {:?}",
                s.verify_full(&public)
            );
        }
    }
}

/// One raw tar entry for [`unpack`].
#[derive(Debug, Arbitrary)]
pub struct RawEntry {
    /// Path bytes.
    pub path: Vec<u8>,
    /// Type flag.
    pub kind: u8,
    /// Link name.
    pub link: Vec<u8>,
    /// Data.
    pub data: Vec<u8>,
}

/// A ustar header with a valid checksum and whatever fields it is given.
pub fn raw_header(path: &[u8], typ: u8, size: usize, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    let n = path.len().min(100);
    h[..n].copy_from_slice(&path[..n]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typ;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Builds a plain tar stream from raw entries.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut tar = Vec::new();
    for e in entries.iter().take(64) {
        let data = &e.data[..e.data.len().min(4096)];
        let typ = b"0125346xLK"[usize::from(e.kind) % 10];
        tar.extend_from_slice(&raw_header(&e.path, typ, data.len(), &e.link));
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Unpacking hostile tar streams: always refused (there is no valid manifest),
/// never writes outside the destination's parent, never leaves a staging
/// directory behind. Ingesting them either fails or yields an archive that
/// verifies and unpacks.
pub fn unpack(entries: &[RawEntry]) {
    let tar = raw_tar(entries);
    let archive = zstd::bulk::compress(&tar, 1).expect("compress");
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    std::fs::write(tmp.path().join("victim"), b"original").expect("write");
    let dest = work.join("dest");
    let public = key().public_key();
    let r = ArchiveReader::new(&archive[..])
        .and_then(|r| r.unpack(&public, &dest, &UnpackOptions::default()));
    assert!(r.is_err(), "an unsigned archive unpacked");
    assert!(!dest.exists(), "destination created");
    assert!(
        listing(&work).is_empty(),
        "something left in the work directory: {:?}",
        listing(&work)
    );
    assert_eq!(listing(tmp.path()), vec!["victim", "work"]);
    assert_eq!(
        std::fs::read(tmp.path().join("victim")).expect("read"),
        b"original"
    );

    if let Ok(done) = ingest(
        &tar[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    ) {
        let out = work.join("ingested");
        ArchiveReader::new(&done.archive.inner[..])
            .and_then(|r| r.unpack(&public, &out, &UnpackOptions::default()))
            .expect("an ingested archive unpacks");
        assert_eq!(listing(tmp.path()), vec!["victim", "work"]);
    }
}

/// One file for [`roundtrip`].
#[derive(Debug, Arbitrary)]
pub struct File {
    /// Name, restricted to a safe alphabet by [`roundtrip`].
    pub name: Vec<u8>,
    /// Content.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u16,
    /// Seconds and nanoseconds of the modification time.
    pub mtime: (i32, u32),
}

/// Writing then reading gives back exactly what was written, by every read path.
pub fn roundtrip(files: &[File], gzip: bool) {
    let key = key();
    let opts = WriterOptions::default()
        .codec(if gzip {
            cairn_manifest::Codec::Gzip
        } else {
            cairn_manifest::Codec::Zstd
        })
        .frame_size(64 * 1024)
        .threads(2);
    let mut w = ArchiveWriter::new(Vec::new(), meta(), opts).expect("writer");
    let comp = ComponentName::parse("data").expect("valid");
    w.begin_component(&comp, ComponentKind::Dir, false)
        .expect("component");
    let mut written = Vec::new();
    for (i, f) in files.iter().take(32).enumerate() {
        let mut name = format!("f{i}-").into_bytes();
        name.extend(
            f.name
                .iter()
                .take(40)
                .map(|b| if *b == b'/' || *b == 0 { b'_' } else { *b }),
        );
        let path = EntryPath::parse(&[b"data/".as_slice(), &name].concat()).expect("safe name");
        let mtime = Mtime::new(i64::from(f.mtime.0), f.mtime.1 % 1_000_000_000);
        let meta = EntryMeta::new(u32::from(f.mode) & 0o7777, mtime);
        w.append_data(&path, meta, f.data.len() as u64, &mut &f.data[..], None)
            .expect("append");
        written.push((path, meta, f.data.clone()));
    }
    let done = w.finish(&key).expect("finish");
    let public = key.public_key();
    let v = ArchiveReader::new(&done.inner[..])
        .and_then(|r| r.verify(&public))
        .expect("verifies");
    v.check_seal(&done.seal).expect("seal");
    let m = v.manifest.manifest();
    assert_eq!(m.entries.len(), written.len());
    for (e, (path, meta, data)) in m.entries.iter().zip(&written) {
        assert_eq!(&e.path, path);
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(
            (e.mode, e.mtime, e.size),
            (meta.mode, meta.mtime, data.len() as u64)
        );
    }
    let mut s = SeekableArchive::open(
        SeekSource(Cursor::new(&done.inner[..])),
        &public,
        ReadOptions::default(),
    )
    .expect("opens");
    for (path, _, data) in &written {
        let mut out = Vec::new();
        s.read_file(path, &mut out).expect("reads");
        assert_eq!(&out, data);
    }
    s.verify_full(&public).expect("full verification");
}
