//! Incremental archives (format 2.1, feature `parents`): unchanged files are
//! not read, their entries refer to the chain's data, and every read path
//! follows the references.

use std::io::Cursor;
use std::path::Path;

use cairn_archive::*;
use cairn_manifest::{BackupId, Codec, ComponentKind, EntryPath};
use cairn_testkit::{assert_trees_equal, running_as_root};

use super::common::*;

type Archive = SeekableArchive<SeekSource<Cursor<Vec<u8>>>>;

/// `done` with eight bytes changed in the middle of its second frame (the
/// first holds only headers), inside a file's data; its root (and so its
/// signature) is intact.
fn damaged(done: &Finished<Vec<u8>>) -> Vec<u8> {
    let mut bad = done.inner.clone();
    let frame = done.manifest.v2().unwrap().manifest().frames[1];
    let mid = (frame.offset + frame.size / 2) as usize;
    for b in &mut bad[mid..mid + 8] {
        *b ^= 0x5a;
    }
    bad
}

fn tree(root: &Path, files: usize) {
    for f in 0..files {
        let dir = root.join(format!("d{}", f % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let body = if f % 10 == 0 {
            noise(150_000, f as u64)
        } else {
            format!("file {f}\n").into_bytes()
        };
        std::fs::write(dir.join(format!("f{f:04}")), body).unwrap();
    }
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("d0/f0000", root.join("link")).unwrap();
    std::fs::hard_link(root.join("d1/f0001"), root.join("zz-hard")).unwrap();
}

/// Backup number `seq` of `src` (a minute in the future, so that every file
/// counts as settled), incremental to the first of `chain` (nearest first)
/// when it is not empty.
fn backup(src: &Path, conf: &Path, seq: u32, chain: &[&[u8]]) -> Finished<Vec<u8>> {
    backup_with(src, conf, seq, chain, false)
}

fn backup_with(
    src: &Path,
    conf: &Path,
    seq: u32,
    chain: &[&[u8]],
    full_read: bool,
) -> Finished<Vec<u8>> {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + i64::from(seq));
    let meta = meta()
        .backup_id(BackupId::from_parts(
            1_790_000_000_000 + u64::from(seq),
            seq.into(),
        ))
        .created_at(at);
    let mut w =
        ArchiveWriter::new(Vec::new(), meta, opts(Codec::Zstd, 64 * 1024, 2).format(2)).unwrap();
    if let Some((p, rest)) = chain.split_first() {
        w.set_parent(Parent::new(with_chain(p, rest)).unwrap())
            .unwrap();
    }
    w.set_full_read(full_read);
    w.append_dir(&name("data"), src, false).unwrap();
    w.append_file(&name("conf"), ComponentKind::File, conf, false)
        .unwrap();
    w.finish(&key()).unwrap()
}

/// A folder with a tree of `files` files and a config file holding `config`.
fn setup(
    files: usize,
    config: &[u8],
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, files);
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, config).unwrap();
    (tmp, src, conf)
}

fn open(bytes: &[u8]) -> Archive {
    seekable(bytes)
}

#[test]
fn a_chain_of_incremental_archives_restores_every_point() {
    let (tmp, src, conf) = setup(300, b"port = 1\n");
    let owners = running_as_root();

    let full = backup(&src, &conf, 1, &[]);
    assert_eq!(full.reused_files, 0);
    let full_root = full.manifest.v2().unwrap().manifest().clone();
    assert!(full_root.parents.is_empty() && full_root.features.is_empty());

    // Unchanged: every non-empty file is referenced, nothing is read.
    let second = backup(&src, &conf, 2, &[&full.inner]);
    let root2 = second.manifest.v2().unwrap().manifest().clone();
    assert_eq!(root2.parents.len(), 1);
    assert_eq!(root2.parents[0].backup_id, full_root.backup_id);
    assert_eq!(
        root2.features,
        vec!["parents".to_owned(), "parent_pages".to_owned()]
    );
    // Every page is the full backup's: none is written again.
    assert!(root2.pages.iter().all(|p| p.data_in == Some(0)));
    assert_eq!(second.reused_files, 301, "300 files and the config");
    assert!(
        second.size * 20 < full.size,
        "an unchanged backup is small: {} of {}",
        second.size,
        full.size
    );

    // Change some files, add one, remove one, change the config.
    std::fs::write(src.join("d3/f0010"), b"changed\n").unwrap();
    std::fs::write(src.join("d0/new"), noise(70_000, 99)).unwrap();
    std::fs::remove_file(src.join("d4/f0004")).unwrap();
    std::fs::write(&conf, b"port = 2\n").unwrap();
    let third = backup(&src, &conf, 3, &[&second.inner, &full.inner]);
    let root3 = third.manifest.v2().unwrap().manifest().clone();
    assert_eq!(
        root3
            .parents
            .iter()
            .map(|p| p.backup_id)
            .collect::<Vec<_>>(),
        vec![root2.backup_id, full_root.backup_id]
    );
    assert_eq!(third.reused_files, 298);

    // Each point restores exactly.
    let out = tmp.path().join("out3");
    with_chain(&third.inner, &[&second.inner, &full.inner])
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), owners);
    assert_eq!(
        std::fs::read(out.join("conf/app.toml")).unwrap(),
        b"port = 2\n"
    );

    // Full verification, samples and single files follow the chain too.
    let mut a = with_chain(&third.inner, &[&second.inner, &full.inner]);
    a.verify_full(&key().public_key()).unwrap();
    a.verify_entries(&(0..root3.entry_count() as usize).collect::<Vec<_>>())
        .unwrap();
    let mut body = Vec::new();
    a.read_file(&EntryPath::parse(b"data/d0/f0000").unwrap(), &mut body)
        .unwrap();
    assert_eq!(body, noise(150_000, 0));
    body.clear();
    a.read_file(&EntryPath::parse(b"data/zz-hard").unwrap(), &mut body)
        .unwrap();
    assert_eq!(body, b"file 1\n");

    // The listing names where reused data is.
    let mut stored_in = 0;
    a.for_each_entry(|e| {
        if let Some(id) = &e.stored_in {
            assert_eq!(id, &full_root.backup_id, "{}", e.path);
            stored_in += 1;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(stored_in, 298, "all reused data is in the full backup");
}

#[test]
fn an_incremental_archive_alone_is_refused_with_its_parent_named() {
    let (tmp, src, conf) = setup(40, b"x\n");
    let full = backup(&src, &conf, 1, &[]);
    let child = backup(&src, &conf, 2, &[&full.inner]);
    let parent_id = full.manifest.backup_id().to_string();
    let public = key().public_key();

    // Seekable, without its parent.
    let err = open(&child.inner)
        .unpack(&tmp.path().join("a"), &UnpackOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&parent_id), "{err}");
    assert!(!tmp.path().join("a").exists());

    // As a stream: verifying alone is refused, naming the parent; unpacking
    // is refused too (here by the hard link to a file the stream lacks, or
    // else once the root is read) and leaves nothing.
    let err = ArchiveReader::new(&child.inner[..])
        .unwrap()
        .verify(&public)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is incremental"), "{err}");
    assert!(err.contains(&parent_id), "{err}");
    ArchiveReader::new(&child.inner[..])
        .unwrap()
        .unpack(&public, &tmp.path().join("b"), &UnpackOptions::default())
        .unwrap_err();
    assert!(!tmp.path().join("b").exists());
    assert!(staging_leftovers(tmp.path()).is_empty());
    // Without hard links the refusal names the parent.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    std::fs::write(flat.join("one"), b"one\n").unwrap();
    let flat_full = backup(&flat, &conf, 4, &[]);
    let flat_child = backup(&flat, &conf, 5, &[&flat_full.inner]);
    let err = ArchiveReader::new(&flat_child.inner[..])
        .unwrap()
        .unpack(&public, &tmp.path().join("c"), &UnpackOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is incremental"), "{err}");
    assert!(!tmp.path().join("c").exists());

    // Another backup in the parent's place is refused, naming the parent.
    let other = backup(&src, &conf, 3, &[]);
    let err = open(&child.inner)
        .attach_parents(vec![open(&other.inner)])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&parent_id), "{err}");
    // So is a validly signed archive under the parent's own id with other
    // content (the child names the parent's root by its digest).
    std::fs::write(src.join("d0/f0000"), b"forged\n").unwrap();
    let forged = backup(&src, &conf, 1, &[]);
    assert_eq!(forged.manifest.backup_id(), full.manifest.backup_id());
    let err = open(&child.inner)
        .attach_parents(vec![open(&forged.inner)])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("its root differs"), "{err}");
}

#[test]
fn a_file_changed_just_before_a_backup_is_read_again_by_the_next() {
    let (_tmp, src, conf) = setup(20, b"x\n");
    // Made now: every file changed within the last seconds, so none is
    // trusted to be unchanged by its times alone.
    let meta = meta().created_at(jiff::Timestamp::now());
    let mut w =
        ArchiveWriter::new(Vec::new(), meta, opts(Codec::Zstd, 64 * 1024, 2).format(2)).unwrap();
    w.append_dir(&name("data"), &src, false).unwrap();
    let first = w.finish(&key()).unwrap();
    let second = backup(&src, &conf, 2, &[&first.inner]);
    assert_eq!(second.reused_files, 0);
    assert!(second.manifest.v2().unwrap().manifest().parents.is_empty());
}

#[test]
fn a_changed_mode_owner_or_inode_reads_the_file_again() {
    let (tmp, src, conf) = setup(20, b"x\n");
    let full = backup(&src, &conf, 1, &[]);
    // A chmod (new ctime and mode) and a same-content replacement (new inode).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("d1/f0008"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let body = std::fs::read(src.join("d2/f0002")).unwrap();
    std::fs::remove_file(src.join("d2/f0002")).unwrap();
    std::fs::write(src.join("d2/f0002"), body).unwrap();
    let child = backup(&src, &conf, 2, &[&full.inner]);
    assert_eq!(child.reused_files, 21 - 2);
    let out = tmp.path().join("out");
    with_chain(&child.inner, &[&full.inner])
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), running_as_root());
}

#[test]
fn damaged_data_in_a_parent_fails_the_child_naming_the_parent() {
    let (tmp, src, conf) = setup(30, b"x\n");
    let full = backup(&src, &conf, 1, &[]);
    let child = backup(&src, &conf, 2, &[&full.inner]);
    let parent_id = full.manifest.backup_id().to_string();
    let bad = damaged(&full);
    let mut a = open(&child.inner);
    a.attach_parents(vec![open(&bad)]).unwrap();
    let err = a
        .unpack(&tmp.path().join("out"), &UnpackOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&parent_id), "{err}");
    assert!(!tmp.path().join("out").exists());
    let mut a = open(&child.inner);
    a.attach_parents(vec![open(&bad)]).unwrap();
    a.verify_full(&key().public_key()).unwrap_err();
}

#[test]
fn an_incremental_archive_cannot_be_ingested_as_an_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("one"), b"one\n").unwrap();
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, b"x\n").unwrap();
    let full = backup(&src, &conf, 1, &[]);
    let child = backup(&src, &conf, 2, &[&full.inner]);
    let err = ingest(
        &child.inner[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("incremental"), "{err}");
    assert!(
        err.contains(&full.manifest.backup_id().to_string()),
        "{err}"
    );
    // The full one is accepted.
    ingest(
        &full.inner[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    )
    .unwrap();
}

#[test]
fn a_chain_assembles_into_one_full_archive_gnu_tar_extracts() {
    let (tmp, src, conf) = setup(120, b"port = 1\n");
    let full = backup(&src, &conf, 1, &[]);
    std::fs::write(src.join("d2/f0009"), b"changed\n").unwrap();
    let second = backup(&src, &conf, 2, &[&full.inner]);
    std::fs::write(src.join("d0/new"), noise(90_000, 5)).unwrap();
    let third = backup(&src, &conf, 3, &[&second.inner, &full.inner]);
    let root3 = third.manifest.v2().unwrap().manifest().clone();

    // Assembled by another key (the serving vault's).
    let server = cairn_integrity::SigningKey::from_seed(&[9; 32]);
    let mut a = with_chain(&third.inner, &[&second.inner, &full.inner]);
    let same = meta()
        .backup_id(root3.backup_id)
        .created_at(root3.created_at);
    let mut w = ArchiveWriter::new(Vec::new(), same, WriterOptions::default()).unwrap();
    a.assemble_into(&mut w).unwrap();
    let whole = w.finish(&server).unwrap();
    let r = whole.manifest.v2().unwrap().manifest();
    assert!(
        r.parents.is_empty() && r.features.is_empty(),
        "a full archive"
    );
    assert_eq!(r.entry_count(), root3.entry_count());
    assert_eq!(r.components, root3.components);

    // It verifies alone with the server's key, and GNU tar extracts the tree.
    ArchiveReader::new(&whole.inner[..])
        .unwrap()
        .verify(&server.public_key())
        .unwrap()
        .check_seal(&whole.seal)
        .unwrap();
    let Some(tar) = cairn_testkit::require_tool("tar") else {
        return;
    };
    let file = tmp.path().join("whole.tar.zst");
    std::fs::write(&file, &whole.inner).unwrap();
    let out = tmp.path().join("gnu");
    std::fs::create_dir(&out).unwrap();
    cairn_testkit::run_ok(
        std::process::Command::new(tar)
            .arg("--zstd")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(&out),
    );
    assert_trees_equal(&src, &out.join("data"), false);
    assert_eq!(
        std::fs::read(out.join("conf/app.toml")).unwrap(),
        b"port = 1\n"
    );

    // A damaged parent fails the assembly, naming the parent.
    let bad = damaged(&full);
    let mut a = open(&third.inner);
    a.attach_parents(vec![open(&second.inner), open(&bad)])
        .unwrap();
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default()).unwrap();
    let err = a.assemble_into(&mut w).unwrap_err().to_string();
    assert!(
        err.contains(&full.manifest.backup_id().to_string()),
        "{err}"
    );
}

#[test]
fn a_format_1_archive_cannot_be_a_parent_but_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, 10);
    let v1 = pack_dir(&src, opts(Codec::Zstd, 64 * 1024, 1));
    let err = Parent::new(open(&v1.inner)).unwrap_err().to_string();
    assert!(err.contains("format 1 and cannot be a parent"), "{err}");
    let out = tmp.path().join("out");
    open(&v1.inner)
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), running_as_root());
}

#[test]
fn a_full_read_reads_every_file_and_refers_to_the_same_content() {
    let (tmp, src, conf) = setup(30, b"x\n");
    let full = backup(&src, &conf, 1, &[]);
    // Same content, new metadata: a chmod and a rewrite with the same bytes;
    // and one real change.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("d3/f0010"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let same = std::fs::read(src.join("d4/f0011")).unwrap();
    std::fs::write(src.join("d4/f0011"), &same).unwrap();
    std::fs::write(src.join("d5/f0012"), b"really changed\n").unwrap();
    // By metadata, three files are read and stored again.
    let by_meta = backup(&src, &conf, 2, &[&full.inner]);
    assert_eq!(by_meta.reused_files, 31 - 3);
    // Read in full, only the changed one is stored.
    let read = backup_with(&src, &conf, 3, &[&full.inner], true);
    assert_eq!(read.reused_files, 31 - 1);
    assert!(
        read.size < by_meta.size,
        "{} >= {}",
        read.size,
        by_meta.size
    );
    let out = tmp.path().join("out");
    with_chain(&read.inner, &[&full.inner])
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), running_as_root());
}

#[test]
fn a_parent_is_set_first_on_a_format_2_writer_and_attached_in_full() {
    let (_tmp, src, conf) = setup(10, b"x\n");
    let full = backup(&src, &conf, 1, &[]);
    let child = backup(&src, &conf, 2, &[&full.inner]);
    // Too late: after a component.
    let mut w = ArchiveWriter::new(
        Vec::new(),
        meta(),
        opts(Codec::Zstd, 64 * 1024, 1).format(2),
    )
    .unwrap();
    w.append_dir(&name("data"), &src, false).unwrap();
    let err = w
        .set_parent(Parent::new(open(&full.inner)).unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("before the first component"),
        "{err}"
    );
    // A format 1 writer cannot be incremental.
    let mut w = ArchiveWriter::new(Vec::new(), meta(), opts(Codec::Zstd, 64 * 1024, 1)).unwrap();
    let err = w
        .set_parent(Parent::new(open(&full.inner)).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("only format 2"), "{err}");
    // The chain is attached whole or not at all.
    let err = open(&child.inner).attach_parents(Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("names 1 parents, 0 were given"),
        "{err}"
    );
}

#[test]
fn unchanged_pages_are_the_parents_and_every_read_path_follows_them() {
    let (tmp, src, conf) = setup(5000, b"port = 1\n");
    let root_of = |d: &Finished<Vec<u8>>| d.manifest.v2().unwrap().manifest().clone();
    let full = backup(&src, &conf, 1, &[]);
    let r1 = root_of(&full);
    assert!(r1.pages.len() >= 4, "{} pages", r1.pages.len());

    // Unchanged: every page is the full backup's; the archive holds its
    // root and little else.
    let second = backup(&src, &conf, 2, &[&full.inner]);
    let r2 = root_of(&second);
    assert_eq!(r2.pages.len(), r1.pages.len());
    for (mine, theirs) in r2.pages.iter().zip(&r1.pages) {
        assert_eq!(mine.data_in, Some(0));
        assert_eq!((mine.offset, mine.size), (theirs.offset, theirs.size));
        assert!(mine.sha256.ct_eq(&theirs.sha256));
    }
    assert!(
        second.size * 100 < full.size,
        "{} of {} bytes",
        second.size,
        full.size
    );

    // One file changed: its page is written anew, the others still name
    // the full backup, which holds them (not the parent that reused them).
    std::fs::write(src.join("d3/f0010"), b"changed\n").unwrap();
    let third = backup(&src, &conf, 3, &[&second.inner, &full.inner]);
    let r3 = root_of(&third);
    // (The page holding it may be written as two: a page also ends at
    // 1 MiB of JSON, and the child's entries are longer than the full
    // backup's.)
    let own: u32 = r3
        .pages
        .iter()
        .filter(|p| p.is_own())
        .map(|p| p.entries)
        .sum();
    let reused: Vec<_> = r3.pages.iter().filter(|p| !p.is_own()).collect();
    assert_eq!(reused.len(), r1.pages.len() - 1, "{:?}", r3.pages);
    assert!(reused.iter().all(|p| p.data_in == Some(1)));
    assert_eq!(
        u64::from(own) + reused.iter().map(|p| u64::from(p.entries)).sum::<u64>(),
        r1.entry_count()
    );
    assert!(third.size * 20 < full.size);

    // Every read path goes through the parents' pages.
    let chain: &[&[u8]] = &[&second.inner, &full.inner];
    let out = tmp.path().join("out");
    with_chain(&third.inner, chain)
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), running_as_root());
    let mut a = with_chain(&third.inner, chain);
    a.verify_full(&key().public_key()).unwrap();
    a.verify_entries(&(0..r3.entry_count() as usize).collect::<Vec<_>>())
        .unwrap();
    let mut body = Vec::new();
    a.read_file(&EntryPath::parse(b"data/d0/f0000").unwrap(), &mut body)
        .unwrap();
    assert_eq!(body, noise(150_000, 0));
    let (mut listed, mut dirs_stored_in) = (0, 0);
    a.for_each_entry(|e| {
        listed += 1;
        if e.kind != cairn_manifest::EntryKind::File && e.stored_in.is_some() {
            dirs_stored_in += 1;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(listed, r1.entry_count());
    assert_eq!(dirs_stored_in, 0, "only files' data is stored elsewhere");
    // The assembled archive is the whole state.
    let mut w = ArchiveWriter::new(
        Vec::new(),
        meta().backup_id(r3.backup_id).created_at(r3.created_at),
        WriterOptions::default(),
    )
    .unwrap();
    with_chain(&third.inner, chain)
        .assemble_into(&mut w)
        .unwrap();
    let whole = w.finish(&key()).unwrap();
    let out = tmp.path().join("assembled");
    ArchiveReader::new(&whole.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &out.join("data"), running_as_root());

    // Without the parents the pages cannot be read, and say why.
    let err = open(&third.inner)
        .for_each_entry(|_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is needed to read it"), "{err}");
}
