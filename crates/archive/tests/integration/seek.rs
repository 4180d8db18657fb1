//! Random access reads only what it needs and agrees with a full read.

use std::io::{self, Cursor, Read};
use std::ops::Range;

use cairn_archive::*;
use cairn_manifest::{Codec, ComponentKind, EntryKind, EntryPath, Mtime};
use cairn_testkit::{RandomReader, assert_trees_equal};

use super::common::*;

/// A range source that counts what is read and serves it in short reads.
pub(crate) struct Counting {
    bytes: Vec<u8>,
    pub(crate) read: u64,
    requests: u64,
}

impl RangeRead for Counting {
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>> {
        self.requests += 1;
        self.read += range.end - range.start;
        let slice = &self.bytes[range.start as usize..range.end as usize];
        Ok(Box::new(RandomReader::new(slice, self.requests, 20_000)))
    }
}

/// An archive over a [`Counting`] source.
pub(crate) fn open_counting(bytes: &[u8]) -> SeekableArchive<Counting> {
    let src = Counting {
        bytes: bytes.to_vec(),
        read: 0,
        requests: 0,
    };
    SeekableArchive::open(src, &key().public_key(), ReadOptions::default()).unwrap()
}

/// Three components: a 3 MB incompressible one between two small ones.
fn three_components(codec: Codec) -> Finished<Vec<u8>> {
    let mut w = ArchiveWriter::new(Vec::new(), meta(), opts(codec, 256 * 1024, 2)).unwrap();
    let m0 = EntryMeta::new(0o644, Mtime::new(1_700_000_000, 0));
    w.begin_component(&name("config"), ComponentKind::Dir, false)
        .unwrap();
    w.append_directory(&EntryPath::parse(b"config").unwrap(), m0)
        .unwrap();
    for i in 0..20 {
        let body = format!("setting_{i} = {i}\n").repeat(50);
        w.append_data(
            &EntryPath::parse(format!("config/f{i}.toml").as_bytes()).unwrap(),
            m0,
            body.len() as u64,
            &mut body.as_bytes(),
            None,
        )
        .unwrap();
    }
    w.begin_component(&name("media"), ComponentKind::Dir, true)
        .unwrap();
    w.append_directory(&EntryPath::parse(b"media").unwrap(), m0)
        .unwrap();
    let blob = noise(3_000_000, 3);
    w.append_data(
        &EntryPath::parse(b"media/big.bin").unwrap(),
        m0,
        blob.len() as u64,
        &mut &blob[..],
        None,
    )
    .unwrap();
    w.begin_component(&name("db"), ComponentKind::Sqlite, false)
        .unwrap();
    let db = b"SQLite format 3\0".repeat(1000);
    w.append_data(
        &EntryPath::parse(b"db/app.db").unwrap(),
        m0,
        db.len() as u64,
        &mut &db[..],
        None,
    )
    .unwrap();
    w.finish(&key()).unwrap()
}

#[test]
fn one_component_is_read_with_few_bytes() {
    for codec in [Codec::Zstd, Codec::Gzip] {
        let done = three_components(codec);
        let total = done.inner.len() as u64;
        let mut a = open_counting(&done.inner);
        let tmp = tempfile::tempdir().unwrap();
        a.unpack(
            &tmp.path().join("db-only"),
            &UnpackOptions::default().components([name("db")]),
        )
        .unwrap();
        let src = a.into_inner();
        assert!(
            src.read < total / 10,
            "{codec}: read {} of {total} bytes in {} requests",
            src.read,
            src.requests
        );
        // Footer, manifest, and one range for the component.
        assert_eq!(src.requests, 3, "{codec}");
        assert_eq!(
            std::fs::read(tmp.path().join("db-only/db/app.db")).unwrap(),
            b"SQLite format 3\0".repeat(1000)
        );
    }
}

#[test]
fn seek_reads_agree_with_the_stream() {
    let done = three_components(Codec::Zstd);
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &all, &UnpackOptions::default())
        .unwrap();
    for c in ["config", "media", "db"] {
        let dest = tmp.path().join(format!("seek-{c}"));
        let mut a = open_counting(&done.inner);
        a.unpack(&dest, &UnpackOptions::default().components([name(c)]))
            .unwrap();
        if c == "db" {
            // A one-file component has no directory entry of its own.
            assert_eq!(
                std::fs::read(all.join("db/app.db")).unwrap(),
                std::fs::read(dest.join("db/app.db")).unwrap()
            );
        } else {
            assert_trees_equal(&all.join(c), &dest.join(c), false);
        }
    }
}

#[test]
fn sample_verification_reads_only_the_sample() {
    let done = three_components(Codec::Zstd);
    let mut a = open_counting(&done.inner);
    let n = a.manifest().v1().unwrap().manifest().entries.len();
    let big = a
        .manifest()
        .v1()
        .unwrap()
        .manifest()
        .find(&EntryPath::parse(b"media/big.bin").unwrap())
        .unwrap();
    let sample: Vec<usize> = (0..n).filter(|i| i % 4 == 0 && *i != big).collect();
    a.verify_entries(&sample).unwrap();
    let src = a.into_inner();
    assert!(src.read < done.inner.len() as u64 / 4, "read {}", src.read);
    let mut a = SeekableArchive::open(
        SeekSource(Cursor::new(done.inner.clone())),
        &key().public_key(),
        ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        a.verify_entries(&[n]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn read_file_follows_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"shared content").unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    std::os::unix::fs::symlink("a", src.join("s")).unwrap();
    let done = pack_dir(&src, WriterOptions::default().format(1));
    let m = done.manifest.v1().unwrap().manifest();
    assert_eq!(
        m.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Hardlink)
            .count(),
        1
    );
    let mut a = seekable(&done.inner);
    let mut out = Vec::new();
    a.read_file(&EntryPath::parse(b"data/b").unwrap(), &mut out)
        .unwrap();
    assert_eq!(out, b"shared content");
    let err = a
        .read_file(&EntryPath::parse(b"data/s").unwrap(), &mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = a
        .read_file(&EntryPath::parse(b"data/none").unwrap(), &mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn open_through_seal_checks_size() {
    let done = three_components(Codec::Zstd);
    let mut longer = done.inner.clone();
    longer.push(0);
    let err = SeekableArchive::open_sealed(
        SeekSource(Cursor::new(longer)),
        &done.seal,
        &key().public_key(),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
    assert!(err.to_string().contains("seal says"), "{err}");
}

/// A single file or folder out of an archive, format 1 and 2: what is under
/// it, the folders above it, a hard link's file from elsewhere; nothing else.
#[test]
fn a_subtree_unpacks_alone_at_its_own_path() {
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    std::fs::create_dir_all(d.join("a/b/deep")).unwrap();
    std::fs::create_dir_all(d.join("a/b-c")).unwrap();
    std::fs::create_dir_all(d.join("other")).unwrap();
    std::fs::write(d.join("a/b/x.txt"), b"x").unwrap();
    std::fs::write(d.join("a/b/deep/y.bin"), noise(300_000, 4)).unwrap();
    std::fs::write(d.join("a/b-c/z.txt"), b"z").unwrap();
    std::fs::write(d.join("a/top.txt"), b"top").unwrap();
    std::fs::write(d.join("other/f.txt"), b"shared").unwrap();
    std::fs::hard_link(d.join("other/f.txt"), d.join("a/b/link.txt")).unwrap();
    std::os::unix::fs::symlink("x.txt", d.join("a/b/sym")).unwrap();
    for format in [1, 2] {
        let done = pack_dir(d, opts(Codec::Zstd, 64 * 1024, 2).format(format));
        let out = tempfile::tempdir().unwrap();
        let path = |p: &str| EntryPath::parse(p.as_bytes()).unwrap();
        let names = |root: &std::path::Path| {
            let mut names: Vec<_> = walkdir::WalkDir::new(root)
                .min_depth(1)
                .into_iter()
                .map(|e| {
                    e.unwrap()
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .display()
                        .to_string()
                })
                .collect();
            names.sort();
            names
        };
        let staged = seekable(&done.inner)
            .unpack_to_staging(
                out.path(),
                &UnpackOptions::default().subtree(path("data/a/b")),
            )
            .unwrap();
        let root = staged.path().join("data");
        assert_trees_equal(&d.join("a/b"), &root.join("a/b"), false);
        assert_eq!(
            names(&root),
            [
                "a",
                "a/b",
                "a/b/deep",
                "a/b/deep/y.bin",
                "a/b/link.txt",
                "a/b/sym",
                "a/b/x.txt"
            ],
            "format {format}"
        );
        drop(staged);

        // A hard link whose file is elsewhere (archived first, at a/b)
        // brings that file.
        let staged = seekable(&done.inner)
            .unpack_to_staging(
                out.path(),
                &UnpackOptions::default().subtree(path("data/other")),
            )
            .unwrap();
        let root = staged.path().join("data");
        assert_eq!(
            names(&root),
            ["a", "a/b", "a/b/link.txt", "other", "other/f.txt"],
            "format {format}"
        );
        assert_eq!(std::fs::read(root.join("other/f.txt")).unwrap(), b"shared");
        drop(staged);

        // One file, at its own path.
        let staged = seekable(&done.inner)
            .unpack_to_staging(
                out.path(),
                &UnpackOptions::default().subtree(path("data/a/b/deep/y.bin")),
            )
            .unwrap();
        assert_eq!(
            std::fs::read(staged.path().join("data/a/b/deep/y.bin")).unwrap(),
            std::fs::read(d.join("a/b/deep/y.bin")).unwrap()
        );
        assert!(!staged.path().join("data/a/b/x.txt").exists());
        drop(staged);

        let err = seekable(&done.inner)
            .unpack_to_staging(
                out.path(),
                &UnpackOptions::default().subtree(path("data/a/nope")),
            )
            .unwrap_err();
        assert!(err.to_string().contains("no entry data/a/nope"), "{err}");
        assert!(staging_leftovers(out.path()).is_empty());
        let mut a = seekable(&done.inner);
        let (mut all, mut of) = (Vec::new(), Vec::new());
        a.for_each_entry(|e| {
            all.push(e.path.clone());
            Ok(())
        })
        .unwrap();
        a.for_each_entry_of(b"data", |e| {
            of.push(e.path.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(of, all, "format {format}: one component, all of it");
        let mut none = 0;
        a.for_each_entry_of(b"other", |_| {
            none += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(none, 0);
        assert_eq!(
            a.entry(&path("data/a/b/x.txt")).unwrap().unwrap().size,
            1,
            "format {format}"
        );
        assert!(a.entry(&path("data/a/nope")).unwrap().is_none());
    }
}

/// The entries of one component of a format 2 archive come from that
/// component's pages only: listing a small component of a large archive
/// reads a small part of its manifest.
#[test]
fn one_components_entries_read_only_its_pages() {
    let src = tempfile::tempdir().unwrap();
    let (big, small) = (src.path().join("big"), src.path().join("small"));
    std::fs::create_dir_all(&big).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..6_000 {
        std::fs::write(big.join(format!("file-{i:05}.txt")), b"x").unwrap();
    }
    std::fs::write(small.join("only.txt"), b"small").unwrap();
    let mut w = ArchiveWriter::new(
        Vec::new(),
        meta(),
        opts(Codec::Zstd, 256 * 1024, 2).format(2),
    )
    .unwrap();
    w.append_dir(&name("big"), &big, false).unwrap();
    w.append_dir(&name("small"), &small, false).unwrap();
    let done = w.finish(&key()).unwrap();
    let opened = open_counting(&done.inner).into_inner().read;
    let read_for = |component: Option<&[u8]>| {
        let mut a = open_counting(&done.inner);
        let mut n = 0;
        match component {
            Some(c) => a.for_each_entry_of(c, |_| {
                n += 1;
                Ok(())
            }),
            None => a.for_each_entry(|_| {
                n += 1;
                Ok(())
            }),
        }
        .unwrap();
        (n, a.into_inner().read - opened)
    };
    let (all, whole) = read_for(None);
    let (small_n, small_read) = read_for(Some(b"small"));
    assert_eq!((all, small_n), (6_003, 2));
    assert!(
        small_read * 10 < whole,
        "read {small_read} bytes for the small component, {whole} for all"
    );
}

#[test]
fn a_range_outside_its_source_is_refused_by_name() {
    assert!(check_range(&(0..10), 10, "x").is_ok());
    assert!(check_range(&(10..10), 10, "x").is_ok(), "empty at the end");
    // Past the end, and one that ends before it starts.
    for bad in [0..11, Range { start: 5, end: 4 }] {
        let err = check_range(&bad, 10, "the archive k").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("the archive k (10 bytes)"),
            "{err}"
        );
    }
}
