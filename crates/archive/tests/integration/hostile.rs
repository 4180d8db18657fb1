//! Hostile archives never write outside the destination, and fail cleanly.

use std::io::Write;
use std::path::Path;

use cairn_archive::*;

use super::common::*;

/// A raw ustar header, checksum included, with no sanity checks at all.
fn header(path: &[u8], typ: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..path.len().min(100)].copy_from_slice(&path[..path.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    let size_field = format!("{size:011o}\0");
    h[124..136].copy_from_slice(size_field.as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typ;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn entry(path: &[u8], typ: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut out = header(path, typ, data.len() as u64, link);
    out.extend_from_slice(data);
    out.resize(out.len() + (512 - data.len() % 512) % 512, 0);
    out
}

fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} {k}=").as_bytes());
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    entry(b"@PaxHeader", b'x', &body, b"")
}

fn end() -> Vec<u8> {
    vec![0u8; 1024]
}

fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(tar, 3).unwrap()
}

/// Unpacks `archive` next to an `outside` directory holding a victim file, and
/// checks that the attempt failed with one of `kinds` and changed nothing.
fn refused(archive: &[u8], read: &ReadOptions, kinds: &[ErrorKind]) -> Error {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"original").unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dest = work.join("dest");
    let err = ArchiveReader::with_options(archive, read.clone())
        .and_then(|r| r.unpack(&key().public_key(), &dest, &UnpackOptions::default()))
        .expect_err("hostile archive accepted");
    assert!(
        kinds.contains(&err.kind()),
        "unexpected {:?}: {err}",
        err.kind()
    );
    assert!(!dest.exists(), "destination created");
    assert!(staging_leftovers(&work).is_empty(), "staging left behind");
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"original");
    assert_eq!(listing(&outside), vec!["victim".to_owned()]);
    assert_eq!(
        listing(tmp.path()),
        vec!["outside".to_owned(), "work".to_owned()]
    );
    // Verification alone refuses it too.
    assert!(
        ArchiveReader::with_options(archive, read.clone())
            .and_then(|r| r.verify(&key().public_key()))
            .is_err()
    );
    err
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn plain(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut tar: Vec<u8> = entries.concat();
    tar.extend_from_slice(&end());
    zstd(&tar)
}

const UNSAFE: &[ErrorKind] = &[ErrorKind::Unsafe];

#[test]
fn traversal_and_absolute_paths() {
    let o = ReadOptions::default();
    for path in [
        &b"../outside/victim"[..],
        b"data/../../outside/victim",
        b"/tmp/evil",
        b"data/./x",
        b"data//x",
    ] {
        let err = refused(&plain(&[entry(path, b'0', b"pwned", b"")]), &o, UNSAFE);
        assert!(err.to_string().contains("unsafe entry"), "{err}");
    }
}

#[test]
fn pax_and_gnu_names_are_checked_too() {
    let o = ReadOptions::default();
    let via_pax = plain(&[[
        pax(&[("path", b"../outside/victim")]),
        entry(b"data/innocent", b'0', b"pwned", b""),
    ]
    .concat()]);
    refused(&via_pax, &o, UNSAFE);
    let via_gnu = plain(&[[
        entry(b"././@LongLink", b'L', b"../outside/victim\0", b""),
        entry(b"data/innocent", b'0', b"pwned", b""),
    ]
    .concat()]);
    refused(&via_gnu, &o, UNSAFE);
    let link_via_pax = plain(&[[
        pax(&[("linkpath", b"../../outside/victim")]),
        entry(b"data/h", b'1', b"", b"data/ok"),
    ]
    .concat()]);
    refused(&link_via_pax, &o, UNSAFE);
}

#[test]
fn nothing_is_written_through_a_symlink() {
    let o = ReadOptions::default();
    let tmp_outside = "/nonexistent-cairn-test-dir";
    // A link to a directory, then a file "inside" it.
    let a = plain(&[
        entry(b"data", b'5', b"", b""),
        entry(b"data/link", b'2', b"", tmp_outside.as_bytes()),
        entry(b"data/link/pwned", b'0', b"x", b""),
    ]);
    let err = refused(&a, &o, UNSAFE);
    assert!(err.to_string().contains("link"), "{err}");
    // A link, then a file at the same path (would follow the link on open).
    let b = plain(&[
        entry(b"data/link", b'2', b"", b"../../outside/victim"),
        entry(b"data/link", b'0', b"pwned", b""),
    ]);
    refused(&b, &o, UNSAFE);
    // A relative link climbing out, then a file below it.
    let c = plain(&[
        entry(b"data/up", b'2', b"", b"../.."),
        entry(b"data/up/outside/victim", b'0', b"pwned", b""),
    ]);
    refused(&c, &o, UNSAFE);
}

#[test]
fn hard_links_stay_inside() {
    let o = ReadOptions::default();
    for target in [
        &b"../../outside/victim"[..],
        b"/etc/passwd",
        b"data/later",
        b"data/sym",
        b"other/file",
    ] {
        let a = plain(&[
            entry(b"data/sym", b'2', b"", b"/etc/passwd"),
            entry(b"data/h", b'1', b"", target),
            entry(b"data/later", b'0', b"x", b""),
        ]);
        refused(&a, &o, UNSAFE);
    }
}

#[test]
fn devices_and_fifos_are_refused() {
    let o = ReadOptions::default();
    for typ in [b'3', b'4', b'6'] {
        refused(&plain(&[entry(b"data/dev", typ, b"", b"")]), &o, UNSAFE);
    }
}

#[test]
fn duplicates_are_refused() {
    let o = ReadOptions::default();
    refused(
        &plain(&[
            entry(b"data/f", b'0', b"one", b""),
            entry(b"data/f", b'0', b"two", b""),
        ]),
        &o,
        UNSAFE,
    );
    refused(
        &plain(&[
            entry(b"data/d", b'5', b"", b""),
            entry(b"data/d", b'5', b"", b""),
        ]),
        &o,
        UNSAFE,
    );
    // A file, then a link, where earlier entries made a folder: out of
    // canonical order, so only the check that remembers every folder sees it.
    for typ in [b'0', b'2'] {
        let err = refused(
            &plain(&[
                entry(b"data/z", b'0', b"z", b""),
                entry(b"data/d/f", b'0', b"one", b""),
                entry(b"data/d", typ, b"", if typ == b'2' { b"/etc" } else { b"" }),
            ]),
            &o,
            UNSAFE,
        );
        assert!(
            err.to_string().contains("earlier entries need a folder"),
            "{err}"
        );
    }
}

#[test]
fn huge_declared_sizes() {
    // Declares 1 TiB but holds 1 KiB: a limit stops it before any byte is written,
    // and without a limit the truncation is reported.
    let mut tar = pax(&[("size", b"1099511627776")]);
    tar.extend_from_slice(&header(b"data/huge", b'0', 0, b""));
    tar.extend_from_slice(&[7u8; 1024]);
    let a = zstd(&tar);
    let limited = ReadOptions::default().limits(Limits::default().max_entry_bytes(1 << 20));
    let err = refused(&a, &limited, &[ErrorKind::Limit]);
    assert!(err.to_string().contains("data/huge"), "{err}");
    refused(&a, &ReadOptions::default(), &[ErrorKind::Corrupt]);
}

#[test]
fn decompression_bomb_is_stopped_by_the_total_limit() {
    // 256 MiB of zeros compress to a few KiB.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(&header(b"data/bomb", b'0', 256 << 20, b""))
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    enc.write_all(&end()).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 100_000, "bomb is {} bytes", bomb.len());
    let opts = ReadOptions::default().limits(Limits::default().max_total_bytes(16 << 20));
    refused(&bomb, &opts, &[ErrorKind::Limit]);
}

#[test]
fn oversized_extension_headers_are_refused() {
    let big = vec![b'a'; 2 << 20];
    let a = plain(&[[pax(&[("comment", &big)]), entry(b"data/f", b'0', b"x", b"")].concat()]);
    refused(&a, &ReadOptions::default(), &[ErrorKind::Limit]);
}

#[test]
fn entry_floods_are_refused() {
    let entries: Vec<Vec<u8>> = (0..2000)
        .map(|i| entry(format!("data/d{i}").as_bytes(), b'5', b"", b""))
        .collect();
    let opts = ReadOptions::default().limits(Limits::default().max_entries(1000));
    refused(&plain(&entries), &opts, &[ErrorKind::Limit]);
}

#[test]
fn a_valid_looking_tar_without_manifest_is_refused_and_cleaned() {
    let a = plain(&[
        entry(b"data", b'5', b"", b""),
        entry(b"data/f", b'0', b"fine", b""),
    ]);
    let err = refused(&a, &ReadOptions::default(), &[ErrorKind::Corrupt]);
    assert!(err.to_string().contains("manifest"), "{err}");
}

#[test]
fn ingest_refuses_the_same_tricks() {
    let cases: Vec<Vec<u8>> = vec![
        plain(&[entry(b"../evil", b'0', b"x", b"")]),
        plain(&[entry(b"/abs/evil", b'0', b"x", b"")]),
        plain(&[
            entry(b"data/link", b'2', b"", b"/etc"),
            entry(b"data/link/x", b'0', b"x", b""),
        ]),
        plain(&[entry(b"data/h", b'1', b"", b"../../etc/passwd")]),
        plain(&[
            entry(b"data/f", b'0', b"x", b""),
            entry(b"other/h", b'1', b"", b"data/f"),
        ]),
    ];
    for (i, a) in cases.iter().enumerate() {
        let err = ingest(
            &a[..],
            Vec::new(),
            meta(),
            &key(),
            &IngestOptions::default(),
        )
        .expect_err(&format!("case {i} ingested"));
        assert_eq!(err.kind(), ErrorKind::Unsafe, "case {i}: {err}");
    }
    // Special files are not an attack in a foreign tarball: they are skipped and listed.
    let fifo = plain(&[
        entry(b"data/f", b'0', b"x", b""),
        entry(b"data/pipe", b'6', b"", b""),
    ]);
    let done = ingest(
        &fifo[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    )
    .unwrap();
    let m = &super::common::listing(&done.archive);
    assert_eq!(m.skipped.len(), 1);
    assert_eq!(m.skipped[0].path.to_string(), "data/pipe");
}
