//! Large files of incremental archives stored by segments (feature
//! `segments`): unchanged segments refer to the chain, changed ones are zstd
//! patches against the parent's segment, and every read path rebuilds them.

use std::io::Cursor;
use std::path::Path;

use cairn_archive::*;
use cairn_manifest::v2::Step;
use cairn_manifest::{BackupId, Codec, ComponentKind, EntryPath};
use cairn_testkit::{assert_trees_equal, running_as_root};

use super::common::*;

type Archive = SeekableArchive<SeekSource<Cursor<Vec<u8>>>>;

const SEG: u64 = 64 * 1024;

/// An archive opened with its chain (`chain[0]`, then its parents).
fn chained(chain: &[&[u8]]) -> Archive {
    with_chain(chain[0], &chain[1..])
}

/// Backup number `seq` of `src` and `db`, incremental to the newest of
/// `chain` (nearest first) when it is not empty.
fn backup(src: &Path, db: &Path, seq: u32, chain: &[&[u8]]) -> Finished<Vec<u8>> {
    backup_by(src, db, seq, chain, SEG)
}

/// [`backup`] with segments of `seg` bytes asked for.
fn backup_by(src: &Path, db: &Path, seq: u32, chain: &[&[u8]], seg: u64) -> Finished<Vec<u8>> {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + i64::from(seq));
    let meta = meta()
        .backup_id(BackupId::from_parts(
            1_790_000_000_000 + u64::from(seq),
            seq.into(),
        ))
        .created_at(at);
    let options = opts(Codec::Zstd, 64 * 1024, 2).format(2).segment_size(seg);
    let mut w = ArchiveWriter::new(Vec::new(), meta, options).unwrap();
    if !chain.is_empty() {
        w.set_parent(Parent::new(chained(chain)).unwrap()).unwrap();
    }
    w.append_dir(&name("data"), src, false).unwrap();
    w.append_file(&name("db"), ComponentKind::File, db, false)
        .unwrap();
    w.finish(&key()).unwrap()
}

fn root(done: &Finished<Vec<u8>>) -> cairn_manifest::Root {
    done.manifest.v2().unwrap().manifest().clone()
}

/// The page entry at `path`.
fn entry(a: &mut Archive, path: &str) -> cairn_manifest::PageEntry {
    let pages = a.manifest().v2().unwrap().manifest().pages.len();
    (0..pages)
        .flat_map(|i| PageSource::page(a, i).unwrap().entries)
        .find(|e| e.path.as_bytes() == path.as_bytes())
        .unwrap()
}

fn restore_and_compare(chain: &[&[u8]], src: &Path, db: &Path, out: &Path) {
    chained(chain)
        .unpack(out, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(src, &out.join("data"), running_as_root());
    assert!(
        std::fs::read(out.join("db/app.db")).unwrap() == std::fs::read(db).unwrap(),
        "the large file is restored byte for byte"
    );
    let mut a = chained(chain);
    a.verify_full(&key().public_key()).unwrap();
    let mut body = Vec::new();
    a.read_file(&EntryPath::parse(b"db/app.db").unwrap(), &mut body)
        .unwrap();
    assert!(body == std::fs::read(db).unwrap());
}

/// Flips a byte every `step` bytes of `data` from `from` to `to`.
fn scribble(data: &mut [u8], from: usize, to: usize, step: usize) {
    for i in (from..to.min(data.len())).step_by(step) {
        data[i] ^= 0xa5;
    }
}

#[test]
fn a_changed_large_file_is_stored_as_patches_and_restores_through_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("small"), b"small\n").unwrap();
    let db = tmp.path().join("app.db");
    // Five segments, the last one partial.
    let mut body = noise(300 * 1024, 1);
    std::fs::write(&db, &body).unwrap();
    let full = backup(&src, &db, 1, &[]);
    assert!(root(&full).features.is_empty());

    // A few bytes of segment 1 change and the file grows by two segments.
    scribble(&mut body, 70_000, 80_000, 4096);
    body.extend(noise(100 * 1024, 2));
    std::fs::write(&db, &body).unwrap();
    let one = backup(&src, &db, 2, &[&full.inner]);
    let r1 = root(&one);
    assert_eq!(
        r1.features,
        vec![
            "parents".to_owned(),
            "segments".to_owned(),
            "parent_pages".to_owned()
        ]
    );
    assert_eq!(r1.segment_size, Some(SEG));
    assert!(r1.blob_bytes > 0);
    let e = entry(&mut chained(&[&one.inner, &full.inner]), "db/app.db");
    let parts = e.parts.clone().expect("stored by segments");
    assert_eq!(parts.len(), 7);
    // Segments 0, 2 and 3 are the parent's bytes; 1 and 4 patches against
    // them; 5 and 6 new (whole).
    for i in [0, 2, 3] {
        assert!(
            matches!(parts[i][..], [Step::Data { data_in: 0, .. }]),
            "segment {i}: {:?}",
            parts[i]
        );
    }
    for i in [1, 4] {
        assert!(
            matches!(
                parts[i][..],
                [
                    Step::Data { data_in: 0, .. },
                    Step::Blob { data_in: None, .. }
                ]
            ),
            "segment {i}: {:?}",
            parts[i]
        );
    }
    for i in [5, 6] {
        assert!(matches!(parts[i][..], [Step::Blob { data_in: None, .. }]));
    }
    // What is stored is the patches and the new segments, not the file.
    assert!(
        r1.blob_bytes < 120 * 1024,
        "{} bytes of blobs for 2 changed and 2 new segments",
        r1.blob_bytes
    );
    // Reused bytes are those not read: the small file's (the large file
    // was read, to compare its segments).
    assert_eq!(one.reused_bytes, 6);
    restore_and_compare(
        &[&one.inner, &full.inner],
        &src,
        &db,
        &tmp.path().join("o1"),
    );

    // Segment 3 changes: its recipe starts at the full backup, the others
    // are copied from the parent's recipes.
    scribble(&mut body, 200_000, 210_000, 3000);
    std::fs::write(&db, &body).unwrap();
    let two = backup(&src, &db, 3, &[&one.inner, &full.inner]);
    let chain2: &[&[u8]] = &[&two.inner, &one.inner, &full.inner];
    let parts2 = entry(&mut chained(chain2), "db/app.db").parts.unwrap();
    assert!(matches!(
        parts2[1][..],
        [
            Step::Data { data_in: 1, .. },
            Step::Blob {
                data_in: Some(0),
                ..
            }
        ]
    ));
    assert!(matches!(
        parts2[3][..],
        [
            Step::Data { data_in: 1, .. },
            Step::Blob { data_in: None, .. }
        ]
    ));
    assert!(matches!(
        parts2[5][..],
        [Step::Blob {
            data_in: Some(0),
            ..
        }]
    ));
    restore_and_compare(chain2, &src, &db, &tmp.path().join("o2"));

    // Segment 1 changes again: a patch on a patch, three steps.
    scribble(&mut body, 66_000, 67_000, 100);
    std::fs::write(&db, &body).unwrap();
    let three = backup(&src, &db, 4, chain2);
    let chain3: &[&[u8]] = &[&three.inner, &two.inner, &one.inner, &full.inner];
    let parts3 = entry(&mut chained(chain3), "db/app.db").parts.unwrap();
    assert!(matches!(
        parts3[1][..],
        [
            Step::Data { data_in: 2, .. },
            Step::Blob {
                data_in: Some(1),
                ..
            },
            Step::Blob { data_in: None, .. }
        ]
    ));
    restore_and_compare(chain3, &src, &db, &tmp.path().join("o3"));

    // Unchanged: the entry copies its parent's recipes and stores nothing.
    let four = backup(&src, &db, 5, chain3);
    let chain4: &[&[u8]] = &[
        &four.inner,
        &three.inner,
        &two.inner,
        &one.inner,
        &full.inner,
    ];
    assert_eq!(root(&four).blob_bytes, 0);
    assert_eq!(four.reused_files, 2);
    let parts4 = entry(&mut chained(chain4), "db/app.db").parts.unwrap();
    assert_eq!(parts4[1].len(), 3);
    restore_and_compare(chain4, &src, &db, &tmp.path().join("o4"));

    // The assembled archive holds the file whole and GNU tar extracts it.
    let mut a = chained(chain4);
    let r4 = root(&four);
    let same = meta().backup_id(r4.backup_id).created_at(r4.created_at);
    let mut w = ArchiveWriter::new(Vec::new(), same, WriterOptions::default()).unwrap();
    a.assemble_into(&mut w).unwrap();
    let whole = w.finish(&key()).unwrap();
    assert!(root(&whole).features.is_empty());
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
    assert!(std::fs::read(out.join("db/app.db")).unwrap() == body);
}

#[test]
fn a_chain_keeps_its_segment_size_when_another_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let db = tmp.path().join("app.db");
    let mut body = noise(600 * 1024, 3);
    std::fs::write(&db, &body).unwrap();
    let full = backup(&src, &db, 1, &[]);
    scribble(&mut body, 10_000, 20_000, 4096);
    std::fs::write(&db, &body).unwrap();
    let one = backup(&src, &db, 2, &[&full.inner]);
    assert_eq!(root(&one).segment_size, Some(SEG));
    // The next backup asks for segments twice as large: the chain keeps
    // its own, and the file is still stored by patches, not whole.
    scribble(&mut body, 200_000, 210_000, 4096);
    std::fs::write(&db, &body).unwrap();
    let two = backup_by(&src, &db, 3, &[&one.inner, &full.inner], 2 * SEG);
    let r2 = root(&two);
    assert_eq!(r2.segment_size, Some(SEG));
    let chain: &[&[u8]] = &[&two.inner, &one.inner, &full.inner];
    let parts = entry(&mut chained(chain), "db/app.db").parts.unwrap();
    assert_eq!(parts.len(), 10);
    assert!(
        r2.blob_bytes < 64 * 1024,
        "two changed segments are patches ({} bytes of blobs)",
        r2.blob_bytes
    );
    restore_and_compare(chain, &src, &db, &tmp.path().join("out"));
}

#[test]
fn a_damaged_blob_or_parent_segment_fails_the_restore_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("small"), b"small\n").unwrap();
    let db = tmp.path().join("app.db");
    let mut body = noise(200 * 1024, 3);
    std::fs::write(&db, &body).unwrap();
    let full = backup(&src, &db, 1, &[]);
    scribble(&mut body, 10_000, 150_000, 5000);
    std::fs::write(&db, &body).unwrap();
    let child = backup(&src, &db, 2, &[&full.inner]);
    let r = root(&child);
    assert!(r.blob_bytes > 0);

    // A flipped byte inside the child's blob region.
    let mut bad = child.inner.clone();
    let mid = (r.blobs_offset() + r.blob_bytes / 2) as usize;
    bad[mid] ^= 0x40;
    let out = tmp.path().join("a");
    let err = chained(&[&bad, &full.inner])
        .unpack(&out, &UnpackOptions::default())
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Corrupt | ErrorKind::Verification),
        "{err}"
    );
    assert!(!out.exists());
    assert!(staging_leftovers(tmp.path()).is_empty());
    // Stream verification of the child alone refuses it too (its blobs
    // are checked in place, its reused data needs the parent).
    ArchiveReader::new(&bad[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap_err();

    // A blob whose skippable frame has another magic: verified as a stream
    // (its own entries) the region is not where the root places it; read by
    // range, the blob is not where its entry says.
    let mut other = child.inner.clone();
    other[r.blobs_offset() as usize] = 0x50;
    let err = chained(&[&other, &full.inner])
        .verify_full(&key().public_key())
        .unwrap_err()
        .to_string();
    assert!(err.contains("blobs are not where"), "{err}");
    let mut a = chained(&[&other, &full.inner]);
    let err = a
        .read_file(&EntryPath::parse(b"db/app.db").unwrap(), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blob is not where its entry places it"),
        "{err}"
    );

    // A damaged data frame of the parent, which the segments' bases are
    // in: the child fails, naming the parent.
    let pr = root(&full);
    let frame = pr.frames[pr.frames.len() / 2];
    let mut bad_parent = full.inner.clone();
    bad_parent[(frame.offset + frame.size / 2) as usize] ^= 0x40;
    let err = chained(&[&child.inner, &bad_parent])
        .verify_full(&key().public_key())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains(&pr.backup_id.to_string()), "{err}");
}

#[test]
fn a_parent_whose_segments_cannot_be_read_makes_them_whole_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    let mut body = noise(200 * 1024, 4);
    std::fs::write(&db, &body).unwrap();
    let pack = |seq: u32, parent: Option<Archive>| {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60 + i64::from(seq));
        let meta = meta()
            .backup_id(BackupId::from_parts(
                1_790_000_000_000 + u64::from(seq),
                seq.into(),
            ))
            .created_at(at);
        let options = opts(Codec::Zstd, 64 * 1024, 2).format(2).segment_size(SEG);
        let mut w = ArchiveWriter::new(Vec::new(), meta, options).unwrap();
        if let Some(p) = parent {
            w.set_parent(Parent::new(p).unwrap()).unwrap();
        }
        w.append_file(&name("db"), ComponentKind::File, &db, false)
            .unwrap();
        w.finish(&key()).unwrap()
    };
    let full = pack(1, None);
    scribble(&mut body, 10_000, 20_000, 1000);
    std::fs::write(&db, &body).unwrap();
    let one = pack(2, Some(chained(&[&full.inner])));
    // The parent's segments are in the full backup, which is not attached:
    // the file is stored whole, with a warning naming why.
    scribble(&mut body, 150_000, 160_000, 1000);
    std::fs::write(&db, &body).unwrap();
    let two = pack(3, Some(seekable(&one.inner)));
    let r = root(&two);
    let warned = r
        .warnings
        .iter()
        .find(|w| w.path.as_bytes() == b"db/app.db")
        .expect("a warning for the file");
    assert!(
        warned.message.contains("stored whole"),
        "{}",
        warned.message
    );
    let parts = entry(
        &mut chained(&[&two.inner, &one.inner, &full.inner]),
        "db/app.db",
    )
    .parts
    .unwrap();
    assert!(
        parts
            .iter()
            .all(|p| matches!(p[..], [Step::Blob { data_in: None, .. }])),
        "{parts:?}"
    );
    let out = tmp.path().join("out");
    chained(&[&two.inner, &one.inner, &full.inner])
        .unpack(&out, &UnpackOptions::default())
        .unwrap();
    assert!(std::fs::read(out.join("db/app.db")).unwrap() == body);
}
