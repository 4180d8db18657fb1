//! Format 2: many pages, every read path, plain tools, and forged pages.

use std::io::{Cursor, Read};
use std::path::Path;
use std::process::Command;

use cairn_archive::*;
use cairn_manifest::{
    AnyManifest, Codec, ComponentKind, EntryKind, EntryPath, Mtime, PageRef, Root, SignedRoot,
};
use cairn_testkit::{assert_trees_equal, require_tool, run_ok, running_as_root};

use super::common::*;

/// A tree of `dirs` folders of `per_dir` small files, plus a nested folder,
/// a symlink, a hard link and an empty folder.
fn many_files(root: &Path, dirs: usize, per_dir: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            std::fs::write(dir.join(format!("f{f:05}.txt")), format!("file {d}/{f}\n")).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("nested/deeper/still")).unwrap();
    std::fs::write(root.join("nested/deeper/still/leaf"), b"leaf").unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("d000/f00000.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("d000/f00001.txt"), root.join("zz-hard")).unwrap();
}

fn pack_v2(src: &Path, conf: &Path, frame_size: usize) -> Finished<Vec<u8>> {
    let options = opts(Codec::Zstd, frame_size, 2).format(2);
    let mut w = ArchiveWriter::new(Vec::new(), meta(), options).unwrap();
    w.append_dir(&name("data"), src, false).unwrap();
    w.append_file(&name("conf"), ComponentKind::File, conf, false)
        .unwrap();
    w.finish(&key()).unwrap()
}

fn root_of(done: &Finished<Vec<u8>>) -> &Root {
    done.manifest.v2().expect("a format 2 archive").manifest()
}

#[test]
fn a_tree_of_many_pages_round_trips_by_every_read_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    many_files(&src, 4, 2_500);
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, b"port = 8080\n").unwrap();
    let done = pack_v2(&src, &conf, 64 * 1024);
    let root = root_of(&done);
    assert!(root.canonical_order, "a walk is in canonical order");
    assert!(root.pages.len() >= 4, "{} pages", root.pages.len());
    assert!(root.pages.iter().all(|p| p.entries as usize <= 4096));
    let public = key().public_key();
    let owners = running_as_root();

    // The stream reader checks every page and entry, and the seal.
    let v = ArchiveReader::new(&done.inner[..])
        .unwrap()
        .verify(&public)
        .unwrap();
    v.check_seal(&done.seal).unwrap();
    assert_eq!(v.manifest, done.manifest);

    // Streaming and seekable unpacks give back the tree.
    let stream = tmp.path().join("stream");
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&public, &stream, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &stream.join("data"), owners);
    let seek = tmp.path().join("seek");
    seekable(&done.inner)
        .unpack(&seek, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &seek.join("data"), owners);
    assert_eq!(
        std::fs::read(seek.join("conf/app.toml")).unwrap(),
        b"port = 8080\n"
    );
    let a = std::fs::metadata(seek.join("data/zz-hard")).unwrap();
    let b = std::fs::metadata(seek.join("data/d000/f00001.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&a),
        std::os::unix::fs::MetadataExt::ino(&b)
    );

    // One small component alone: its page and its frame, not the rest.
    let only = tmp.path().join("only");
    seekable(&done.inner)
        .unpack(&only, &UnpackOptions::default().components([name("conf")]))
        .unwrap();
    assert!(!only.join("data").exists());
    assert_eq!(
        std::fs::read(only.join("conf/app.toml")).unwrap(),
        b"port = 8080\n"
    );

    // Files read alone, through a hard link too; entries listed page by page.
    let mut s = seekable(&done.inner);
    let mut out = Vec::new();
    s.read_file(&EntryPath::parse(b"data/zz-hard").unwrap(), &mut out)
        .unwrap();
    assert_eq!(out, b"file 0/1\n");
    let mut listed = 0u64;
    s.for_each_entry(|_| {
        listed += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(listed, root.entry_count());
    // A range of entries reads only the pages that hold it, and equals the
    // same slice of the whole list.
    let mut all = Vec::new();
    s.for_each_entry(|e| {
        all.push(e.path.clone());
        Ok(())
    })
    .unwrap();
    let middle = root.entry_count() / 2;
    let mut part = Vec::new();
    let opened = super::seek::open_counting(&done.inner).into_inner().read;
    let mut counting = super::seek::open_counting(&done.inner);
    counting
        .for_each_entry_in(middle - 5..middle + 5, |e| {
            part.push(e.path.clone());
            Ok(())
        })
        .unwrap();
    let m = usize::try_from(middle).unwrap();
    assert_eq!(part, all[m - 5..m + 5]);
    let read = counting.into_inner().read - opened;
    let manifest_region = done.inner.len() as u64 - root.data_compressed_end();
    assert!(
        read * 2 < manifest_region,
        "read {read} of {manifest_region} manifest bytes"
    );
    let n = usize::try_from(root.entry_count()).unwrap();
    s.verify_entries(&[1, n / 3, n / 2, n - 1]).unwrap();
    let err = s.verify_entries(&[n]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let full = seekable(&done.inner).verify_full(&public).unwrap();
    assert_eq!(full.sha256, Some(done.sha256));

    // Through the seal (which the footer must agree with).
    let mut sealed = SeekableArchive::open_sealed(
        SeekSource(Cursor::new(done.inner.clone())),
        &done.seal,
        &public,
        ReadOptions::default(),
    )
    .unwrap();
    sealed.verify_full(&public).unwrap();
}

#[test]
fn entries_out_of_canonical_order_are_recorded_and_still_checked() {
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(2)).unwrap();
    let data = name("data");
    w.begin_component(&data, ComponentKind::Dir, false).unwrap();
    let m = EntryMeta::new(0o644, Mtime::new(1_700_000_000, 0));
    let dm = EntryMeta::new(0o755, Mtime::new(1_700_000_000, 0));
    w.append_directory(&EntryPath::parse(b"data").unwrap(), dm)
        .unwrap();
    for p in [&b"data/b"[..], b"data/a", b"data/c"] {
        let path = EntryPath::parse(p).unwrap();
        w.append_data(&path, m, 1, &mut &b"x"[..], None).unwrap();
    }
    // The order switched to one that remembers every path: a duplicate of
    // an entry from before the switch is still refused.
    let dup = w.append_data(
        &EntryPath::parse(b"data/b").unwrap(),
        m,
        1,
        &mut &b"y"[..],
        None,
    );
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::InvalidInput);
    // ... and so is a file where earlier entries need a folder.
    let deep = EntryPath::parse(b"data/d/e").unwrap();
    w.append_data(&deep, m, 1, &mut &b"x"[..], None).unwrap();
    let over = w.append_data(
        &EntryPath::parse(b"data/d").unwrap(),
        m,
        1,
        &mut &b"y"[..],
        None,
    );
    assert_eq!(over.unwrap_err().kind(), ErrorKind::Unsafe);
    let done = w.finish(&key()).unwrap();
    assert!(!root_of(&done).canonical_order);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &dest, &UnpackOptions::default())
        .unwrap();
    for f in ["a", "b", "c", "d/e"] {
        assert_eq!(std::fs::read(dest.join("data").join(f)).unwrap(), b"x");
    }
}

#[test]
fn a_hard_link_to_no_earlier_file_fails_the_archive() {
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(2)).unwrap();
    let data = name("data");
    w.begin_component(&data, ComponentKind::Dir, false).unwrap();
    let m = EntryMeta::new(0o644, Mtime::new(1_700_000_000, 0));
    w.append_hardlink(
        &EntryPath::parse(b"data/a").unwrap(),
        &EntryPath::parse(b"data/b").unwrap(),
        m,
    )
    .unwrap();
    w.append_data(
        &EntryPath::parse(b"data/b").unwrap(),
        m,
        1,
        &mut &b"x"[..],
        None,
    )
    .unwrap();
    let err = w.finish(&key()).unwrap_err();
    assert!(err.to_string().contains("earlier regular file"), "{err}");
}

#[test]
fn gnu_tar_extracts_format_2_and_openssl_verifies_its_root() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    many_files(&src, 2, 3_000);
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, b"a = 1\n").unwrap();
    let done = pack_v2(&src, &conf, 2 << 20);
    let archive = tmp.path().join("a.tar.zst");
    std::fs::write(&archive, &done.inner).unwrap();
    let dest = tmp.path().join("gnu");
    super::gnu::gnu_extract(&tar, &archive, &dest, "--zstd");
    assert_trees_equal(&src, &dest.join("data"), running_as_root());
    let listing = run_ok(Command::new(&tar).args(["--zstd", "-tf"]).arg(&archive));
    let listing = String::from_utf8_lossy(&listing);
    let last: Vec<&str> = listing.lines().rev().take(2).collect();
    assert_eq!(last, vec![ROOT_SIGNATURE_PATH, ROOT_PATH]);
    let pages = listing
        .lines()
        .filter(|l| l.starts_with(PAGES_PREFIX))
        .count();
    assert_eq!(pages, root_of(&done).pages.len());
    // Each page extracted by tar hashes to the digest the root names.
    for (i, p) in root_of(&done).pages.iter().enumerate() {
        let bytes = std::fs::read(dest.join(format!("{PAGES_PREFIX}{i:06}"))).unwrap();
        assert_eq!(cairn_integrity::Sha256Digest::of(&bytes), p.sha256);
    }
    let pem = tmp.path().join("public.pem");
    key().public_key().save(&pem).unwrap();
    let out = run_ok(
        Command::new(&openssl)
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&pem)
            .arg("-in")
            .arg(dest.join(ROOT_PATH))
            .arg("-sigfile")
            .arg(dest.join(ROOT_SIGNATURE_PATH)),
    );
    assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));
}

/// The decompressed tar entry held by the frames `p` names.
fn page_entry(archive: &[u8], p: &PageRef) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&archive[p.offset as usize..(p.offset + p.size) as usize])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The decompressed root region (root, signature, end of archive).
fn root_region(done: &Finished<Vec<u8>>) -> Vec<u8> {
    let start = root_of(done).pages_end() as usize;
    let end = done.inner.len() - 48;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&done.inner[start..end])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// An archive made of `done`'s data region, then `pages` (decompressed tar
/// entries, one frame each), then `root` (the decompressed root region) and
/// a footer pointing at them.
fn rebuild(done: &Finished<Vec<u8>>, pages: &[Vec<u8>], root: &[u8]) -> Vec<u8> {
    let data_end = root_of(done).data_compressed_end() as usize;
    let mut out = done.inner[..data_end].to_vec();
    for p in pages {
        out.extend_from_slice(&zstd::bulk::compress(p, 3).unwrap());
    }
    finish_rebuild(out, data_end, root)
}

fn finish_rebuild(mut out: Vec<u8>, data_end: usize, root: &[u8]) -> Vec<u8> {
    let root_offset = out.len() as u64;
    out.extend_from_slice(&zstd::bulk::compress(root, 3).unwrap());
    let footer = Footer {
        manifest_offset: data_end as u64,
        manifest_length: out.len() as u64 - data_end as u64,
        root_offset,
    };
    out.extend_from_slice(&footer.encode(Codec::Zstd));
    out
}

/// As [`rebuild`], with a root re-signed to place the pages where they now
/// are (their digests stay those of `done`'s pages).
fn rebuild_placed(done: &Finished<Vec<u8>>, pages: &[Vec<u8>]) -> Vec<u8> {
    let mut root = root_of(done).clone();
    let data_end = root.data_compressed_end() as usize;
    let mut out = done.inner[..data_end].to_vec();
    for (p, named) in pages.iter().zip(root.pages.iter_mut()) {
        let frame = zstd::bulk::compress(p, 3).unwrap();
        named.offset = out.len() as u64;
        named.size = frame.len() as u64;
        out.extend_from_slice(&frame);
    }
    finish_rebuild(out, data_end, &signed_region(&root))
}

/// The root region for a root re-signed with the test key.
fn signed_region(root: &Root) -> Vec<u8> {
    let signed = SignedRoot::sign(root.clone(), &key()).unwrap();
    let mtime = Mtime::new(root.created_at.as_second(), 0);
    // The headers Cairn writes: ustar, mode 0644, owner 0, the root's time.
    let mut out = Vec::new();
    for (path, bytes) in [
        (ROOT_PATH, signed.bytes()),
        (ROOT_SIGNATURE_PATH, &signed.signature().as_bytes()[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime.secs() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn stream_refusal(archive: &[u8]) -> Error {
    ArchiveReader::new(archive)
        .unwrap()
        .verify(&key().public_key())
        .expect_err("a forged archive verified")
}

#[test]
fn forged_pages_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    many_files(&src, 3, 2_000);
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, b"a = 1\n").unwrap();
    let done = pack_v2(&src, &conf, 2 << 20);
    let root = root_of(&done).clone();
    assert!(root.pages.len() >= 3);
    let pages: Vec<Vec<u8>> = root
        .pages
        .iter()
        .map(|p| page_entry(&done.inner, p))
        .collect();
    let region = root_region(&done);

    // Rebuilt as written, with a root placing the new frames, the archive
    // reads by both paths: the forgeries below differ only in what they say.
    let placed = rebuild_placed(&done, &pages);
    ArchiveReader::new(&placed[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap();
    seekable(&placed).for_each_entry(|_| Ok(())).unwrap();
    // Without moving the root's offsets, the pages are out of place.
    let err = stream_refusal(&rebuild(&done, &pages, &region));
    assert!(
        err.to_string()
            .contains("not where the signed root places it"),
        "{err}"
    );

    // A page whose bytes changed: not the page the root names.
    let mut altered = pages.clone();
    let at = 512 + 40;
    altered[1][at] = if altered[1][at] == b'1' { b'2' } else { b'1' };
    let err = stream_refusal(&rebuild(&done, &altered, &region));
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("manifest page 1"), "{err}");

    // Pages swapped: each is out of its place.
    let mut swapped = pages.clone();
    swapped.swap(0, 1);
    let err = stream_refusal(&rebuild(&done, &swapped, &region));
    assert!(err.to_string().contains("manifest page 0"), "{err}");

    // A page missing, and a page the root does not name.
    let err = stream_refusal(&rebuild(&done, &pages[..pages.len() - 1], &region));
    assert!(
        err.to_string()
            .contains("manifest pages, its signed root names"),
        "{err}"
    );
    let mut extra = pages.clone();
    let mut again = pages[0].clone();
    let n = format!("{PAGES_PREFIX}{:06}", pages.len());
    again[..n.len()].copy_from_slice(n.as_bytes());
    extra.push(again);
    let err = stream_refusal(&rebuild(&done, &extra, &region));
    assert!(
        err.to_string()
            .contains("manifest pages, its signed root names")
            || err.kind() == ErrorKind::Corrupt,
        "{err}"
    );

    // A re-signed root naming a page that is not in the archive.
    let mut more = root.clone();
    let mut named = more.pages[0].clone();
    named.offset = more.pages_end();
    more.pages.push(named);
    more.components[0].entries += u64::from(more.pages[0].entries);
    let err = stream_refusal(&rebuild(&done, &pages, &signed_region(&more)));
    assert!(
        err.to_string()
            .contains("manifest pages, its signed root names"),
        "{err}"
    );

    // A footer whose root offset points at the pages, not the root.
    let mut misplaced = done.inner.clone();
    let n = misplaced.len();
    let footer = Footer {
        manifest_offset: root.data_compressed_end(),
        manifest_length: n as u64 - 48 - root.data_compressed_end(),
        root_offset: root.data_compressed_end(),
    };
    misplaced[n - 48..].copy_from_slice(&footer.encode(Codec::Zstd));
    let err = SeekableArchive::open(
        SeekSource(Cursor::new(misplaced)),
        &key().public_key(),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(
        err.to_string().contains("points at the manifest's pages"),
        "{err}"
    );

    // Through random access, a changed page is refused when it is fetched.
    let forged = rebuild_placed(&done, &altered);
    let err = seekable(&forged).for_each_entry(|_| Ok(())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("manifest page 1"), "{err}");
    let err = stream_refusal(&forged);
    assert!(err.to_string().contains("manifest page 1"), "{err}");
    let dest = tmp.path().join("forged");
    let err = seekable(&forged)
        .unpack(&dest, &UnpackOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(!dest.exists());
}

#[test]
fn stream_and_random_access_read_the_same_root() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    many_files(&src, 2, 500);
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, b"a = 1\n").unwrap();
    let done = pack_v2(&src, &conf, 64 * 1024);
    let streamed = ArchiveReader::new(&done.inner[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap()
        .manifest;
    let opened = seekable(&done.inner).manifest().clone();
    assert_eq!(streamed, opened);
    assert!(matches!(opened, AnyManifest::V2(_)));
    let mut kinds = std::collections::BTreeMap::new();
    seekable(&done.inner)
        .for_each_entry(|e| {
            *kinds.entry(format!("{:?}", e.kind)).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(kinds.get(&format!("{:?}", EntryKind::Hardlink)), Some(&1));
    assert_eq!(kinds.get(&format!("{:?}", EntryKind::Symlink)), Some(&1));
}
