//! Ingest specifics beyond GNU interop (see gnu.rs).

use std::process::Command;

use cairn_archive::*;
use cairn_manifest::BackupKind;
use cairn_testkit::{require_tool, run_ok};

use super::common::*;

/// Ingests the tarball at `path` with the test key and default options.
fn ingest_file(path: &std::path::Path) -> Result<Ingested<Vec<u8>>> {
    ingest(
        std::fs::File::open(path).unwrap(),
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    )
}

#[test]
fn a_cairn_archive_ingests_with_a_fresh_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"payload").unwrap();
    let original = pack_dir(&src, WriterOptions::default());
    let again = ingest(
        &original.inner[..],
        Vec::new(),
        meta().kind(BackupKind::Uploaded),
        &key(),
        &IngestOptions::default(),
    )
    .unwrap();
    let m = again.archive.manifest.manifest();
    assert_eq!(m.kind, BackupKind::Uploaded);
    assert_eq!(again.source_size, original.size);
    assert_eq!(again.source_sha256, original.sha256);
    // The old .cairn entries are not carried over as data.
    assert!(m.entries.iter().all(|e| e.path.first() == b"data"));
    assert_eq!(
        m.entries.iter().map(|e| &e.sha256).collect::<Vec<_>>(),
        original
            .manifest
            .manifest()
            .entries
            .iter()
            .map(|e| &e.sha256)
            .collect::<Vec<_>>()
    );
    ArchiveReader::new(&again.archive.inner[..])
        .unwrap()
        .verify(&key().public_key())
        .unwrap();
}

#[test]
fn folder_names_must_be_component_names() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("Has Upper")).unwrap();
    std::fs::write(root.join("Has Upper/x"), b"x").unwrap();
    let tarball = tmp.path().join("bad.tar");
    run_ok(
        Command::new(&tar)
            .arg("-cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&root)
            .arg("Has Upper"),
    );
    let err = ingest_file(&tarball).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("Has Upper"), "{err}");
}

#[test]
fn sparse_files_are_unsupported() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    let f = std::fs::File::create(root.join("data/sparse")).unwrap();
    f.set_len(50 << 20).unwrap();
    for format in ["gnu", "posix"] {
        let tarball = tmp.path().join(format!("sparse-{format}.tar"));
        run_ok(
            Command::new(&tar)
                .arg(format!("--format={format}"))
                .arg("--sparse")
                .arg("-cf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root)
                .arg("data"),
        );
        let err = ingest_file(&tarball).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{format}: {err}");
    }
}

#[test]
fn garbage_is_not_an_archive() {
    for input in [
        &b""[..],
        b"hello, not an archive at all",
        &[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..],
    ] {
        let err = ingest(input, Vec::new(), meta(), &key(), &IngestOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
}
