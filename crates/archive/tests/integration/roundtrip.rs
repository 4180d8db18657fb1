//! Random trees survive pack → unpack exactly, by every read path.

use std::io::Read;

use cairn_archive::*;
use cairn_manifest::{Codec, EntryKind};
use cairn_testkit::{RandomReader, TreeOptions, assert_trees_equal, random_tree};
use proptest::prelude::*;

use super::common::*;

fn check_round_trip(seed: u64, codec: Codec, frame_size: usize, threads: usize, format: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(
        &src,
        seed,
        &TreeOptions::default().entries(60).max_file_size(200_000),
    )
    .unwrap();
    let done = pack_dir(&src, opts(codec, frame_size, threads).format(format));
    assert_eq!(done.manifest.v2().is_some(), format == 2);
    let public = key().public_key();
    let owners = cairn_testkit::running_as_root();

    // 1. Streaming unpack, fed through short reads.
    let dest = tmp.path().join("stream");
    ArchiveReader::with_options(
        RandomReader::new(&done.inner[..], seed, 70_000),
        ReadOptions::default().threads(threads),
    )
    .unwrap()
    .unpack(&public, &dest, &UnpackOptions::default())
    .unwrap();
    assert_trees_equal(&src, &dest.join("data"), owners);

    // 2. Seek unpack equals the streaming one.
    let seek_dest = tmp.path().join("seek");
    seekable(&done.inner)
        .unpack(&seek_dest, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&dest.join("data"), &seek_dest.join("data"), owners);

    // 3. Every file read alone equals the file on disk.
    let mut a = seekable(&done.inner);
    let mut files = Vec::new();
    a.for_each_entry(|e| {
        if e.kind == EntryKind::File {
            files.push(e.path.clone());
        }
        Ok(())
    })
    .unwrap();
    for path in files {
        let mut content = Vec::new();
        a.read_file(&path, &mut content).unwrap();
        let on_disk = std::fs::read(dest.join(path.to_path())).unwrap();
        assert_eq!(content, on_disk, "{path}");
    }

    // 4. Full verification, streaming and seekable, agree with the writer.
    let v = ArchiveReader::new(&done.inner[..])
        .unwrap()
        .verify(&public)
        .unwrap();
    assert_eq!((v.size, v.sha256), (done.size, Some(done.sha256)));
    v.check_seal(&done.seal).unwrap();
    let full = seekable(&done.inner).verify_full(&public).unwrap();
    assert_eq!(full.sha256, Some(done.sha256));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_trees_round_trip(
        seed in any::<u64>(),
        gzip in any::<bool>(),
        frame_kib in prop_oneof![Just(64usize), Just(100), Just(4096)],
        threads in 1usize..4,
        v2 in any::<bool>(),
    ) {
        let codec = if gzip { Codec::Gzip } else { Codec::Zstd };
        check_round_trip(seed, codec, frame_kib * 1024, threads, if v2 { 2 } else { 1 });
    }
}

#[test]
fn frames_are_independent_of_threads_and_decode_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(
        &src,
        5,
        &TreeOptions::default().entries(80).max_file_size(300_000),
    )
    .unwrap();
    let one = pack_dir(&src, opts(Codec::Zstd, 64 * 1024, 1));
    let four = pack_dir(&src, opts(Codec::Zstd, 64 * 1024, 4));
    let m1 = one.manifest.v1().unwrap().manifest();
    // Same data region byte for byte (the manifest differs only in its duration).
    let end = m1.data_compressed_end() as usize;
    assert_eq!(one.inner[..end], four.inner[..end]);
    assert_eq!(m1.frames, four.manifest.v1().unwrap().manifest().frames);
    assert!(
        m1.frames.len() > 3,
        "want several frames, got {}",
        m1.frames.len()
    );
    // Each frame is a complete zstd frame of the size the index says.
    for f in &m1.frames {
        let bytes = &one.inner[f.offset as usize..(f.offset + f.size) as usize];
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len() as u64, f.raw_size);
        assert!(f.raw_size <= 64 * 1024);
    }
}

#[test]
fn large_file_spans_frames_and_small_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let big: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(src.join("a-big"), &big).unwrap();
    for i in 0..50 {
        std::fs::write(src.join(format!("small-{i:02}")), vec![b'x'; 3000]).unwrap();
    }
    let done = pack_dir(&src, opts(Codec::Zstd, 64 * 1024, 2));
    let m = done.manifest.v1().unwrap().manifest();
    let big_index = m
        .entries
        .iter()
        .position(|e| e.path.file_name() == b"a-big")
        .unwrap();
    let span = m.span(big_index);
    assert!(
        span.compressed.end - span.compressed.start > 10 * 1024,
        "big file spans frames"
    );
    for (i, e) in m.entries.iter().enumerate() {
        if e.path.file_name().starts_with(b"small") {
            let s = m.span(i);
            let first = m.frame_holding(m.raw_offset(i)).unwrap();
            let last = m.frame_holding(m.raw_offset(i) + s.raw_len - 1).unwrap();
            assert_eq!(first, last, "{} split across frames", e.path);
        }
    }
    let mut out = Vec::new();
    seekable(&done.inner)
        .read_file(&m.entries[big_index].path, &mut out)
        .unwrap();
    assert_eq!(out, big);
}

#[test]
fn empty_directory_and_empty_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("empty/inner")).unwrap();
    std::fs::write(src.join("zero"), b"").unwrap();
    let done = pack_dir(&src, WriterOptions::default().format(1));
    let dest = tmp.path().join("out");
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &dest, &UnpackOptions::default())
        .unwrap();
    assert_trees_equal(&src, &dest.join("data"), false);
}

#[test]
fn empty_archive_round_trips() {
    let w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(1)).unwrap();
    let done = w.finish(&key()).unwrap();
    let v = ArchiveReader::new(&done.inner[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap();
    assert!(v.manifest.v1().unwrap().manifest().entries.is_empty());
    seekable(&done.inner)
        .verify_full(&key().public_key())
        .unwrap();
}

#[test]
fn selected_components_only() {
    let tmp = tempfile::tempdir().unwrap();
    for c in ["a", "b", "c"] {
        let d = tmp.path().join(c);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("f"), c).unwrap();
    }
    let mut w = ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(1)).unwrap();
    for c in ["a", "b", "c"] {
        w.append_dir(&name(c), &tmp.path().join(c), c == "c")
            .unwrap();
    }
    let done = w.finish(&key()).unwrap();
    assert!(done.manifest.v1().unwrap().manifest().components[2].optional);
    let only_b = UnpackOptions::default().components([name("b")]);
    for (i, streaming) in [true, false].into_iter().enumerate() {
        let dest = tmp.path().join(format!("out{i}"));
        if streaming {
            ArchiveReader::new(&done.inner[..])
                .unwrap()
                .unpack(&key().public_key(), &dest, &only_b)
                .unwrap();
        } else {
            seekable(&done.inner).unpack(&dest, &only_b).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b"]);
        assert_eq!(std::fs::read(dest.join("b/f")).unwrap(), b"b");
    }
    let err = seekable(&done.inner)
        .unpack(
            &tmp.path().join("x"),
            &UnpackOptions::default().components([name("zz")]),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn commit_refuses_a_non_empty_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"new").unwrap();
    let done = pack_dir(&src, WriterOptions::default().format(1));
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep"), b"old").unwrap();
    let err = ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &dest, &UnpackOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(std::fs::read(dest.join("keep")).unwrap(), b"old");
    assert!(staging_leftovers(tmp.path()).is_empty());
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ArchiveReader::new(&done.inner[..])
        .unwrap()
        .unpack(&key().public_key(), &empty, &UnpackOptions::default())
        .unwrap();
    assert_eq!(std::fs::read(empty.join("data/f")).unwrap(), b"new");
}

#[test]
fn short_writes_produce_the_same_archive() {
    // Streaming into an output that accepts a few bytes at a time gives the very
    // bytes written in one go (the manifest differs only by its duration, so the
    // data regions and the frame index are compared).
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(
        &src,
        21,
        &TreeOptions::default().entries(50).max_file_size(150_000),
    )
    .unwrap();
    let one_shot = pack_dir(&src, opts(Codec::Zstd, 64 * 1024, 2));
    let mut w = ArchiveWriter::new(
        cairn_testkit::ShortWriter::new(Vec::new(), 9, 777),
        meta(),
        opts(Codec::Zstd, 64 * 1024, 2),
    )
    .unwrap();
    w.append_dir(&name("data"), &src, false).unwrap();
    let streamed = w.finish(&key()).unwrap();
    let bytes = streamed.inner.into_inner();
    assert_eq!(bytes.len() as u64, streamed.size);
    assert_eq!(cairn_integrity::Sha256Digest::of(&bytes), streamed.sha256);
    let end = one_shot
        .manifest
        .v1()
        .unwrap()
        .manifest()
        .data_compressed_end() as usize;
    assert_eq!(bytes[..end], one_shot.inner[..end]);
    assert_eq!(
        streamed.manifest.v1().unwrap().manifest().entries,
        one_shot.manifest.v1().unwrap().manifest().entries
    );
    ArchiveReader::new(&bytes[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap();
}
