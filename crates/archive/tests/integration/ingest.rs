//! Ingest specifics beyond GNU interop (see gnu.rs).

use std::process::Command;

use cairn_archive::*;
use cairn_manifest::{BackupKind, ComponentKind};
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
    let m = &listing(&again.archive);
    assert_eq!(m.kind, BackupKind::Uploaded);
    assert_eq!(again.source_size, original.size);
    assert_eq!(again.source_sha256, original.sha256);
    // The old .cairn entries are not carried over as data.
    assert!(m.entries.iter().all(|e| e.path.first() == b"data"));
    assert_eq!(
        m.entries.iter().map(|e| &e.sha256).collect::<Vec<_>>(),
        listing(&original)
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

/// An archive with a dir, a file and an optional "sqlite" component (any
/// one file stands for a database here).
fn three_kinds(dir: &std::path::Path, format: u32) -> Finished<Vec<u8>> {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), b"<h1>v1</h1>").unwrap();
    std::fs::write(dir.join("app.toml"), b"port = 1").unwrap();
    std::fs::write(dir.join("shop.db"), b"not really a database").unwrap();
    let mut w =
        ArchiveWriter::new(Vec::new(), meta(), WriterOptions::default().format(format)).unwrap();
    w.append_dir(&name("site"), &dir.join("site"), false)
        .unwrap();
    w.append_file(
        &name("config"),
        ComponentKind::File,
        &dir.join("app.toml"),
        false,
    )
    .unwrap();
    w.append_file(
        &name("db"),
        ComponentKind::Sqlite,
        &dir.join("shop.db"),
        true,
    )
    .unwrap();
    w.finish(&key()).unwrap()
}

fn kinds(m: &cairn_manifest::Manifest) -> Vec<(String, ComponentKind, bool)> {
    m.components
        .iter()
        .map(|c| (c.name.to_string(), c.kind, c.optional))
        .collect()
}

#[test]
fn a_cairn_archive_uploaded_again_keeps_its_kinds_and_names_its_signer() {
    let tmp = tempfile::tempdir().unwrap();
    let original = three_kinds(tmp.path(), 2);
    let want = kinds(&listing(&original));
    let signer = *original.manifest.signer();
    for (trusted, expect) in [(vec![key().public_key()], true), (Vec::new(), false)] {
        let mut opts = IngestOptions::default();
        for k in trusted {
            opts = opts.trust(k);
        }
        let other = cairn_integrity::SigningKey::from_seed(&[9; 32]);
        let again = ingest(&original.inner[..], Vec::new(), meta(), &other, &opts).unwrap();
        let m = &listing_signed_by(&again.archive, &other.public_key());
        assert_eq!(kinds(m), want);
        let source = m.source.as_ref().expect("an upload records its source");
        assert_eq!(source.signer, Some(signer));
        assert_eq!(source.trusted, expect);
        assert_eq!(source.compression, "zstd");
        assert_eq!(source.sha256, original.sha256);
        // The new archive is whole and signed by the uploading key.
        ArchiveReader::new(&again.archive.inner[..])
            .unwrap()
            .verify(&other.public_key())
            .unwrap();
    }
}

#[test]
fn an_uploaded_manifest_whose_kinds_do_not_fit_its_content_is_refused() {
    // A forged manifest says `site` (a folder of files) is a file component.
    let tmp = tempfile::tempdir().unwrap();
    let original = three_kinds(tmp.path(), 1);
    let mut forged = original.manifest.v1().unwrap().manifest().clone();
    forged.components[0].kind = ComponentKind::File;
    let json = serde_json::to_vec(&forged).unwrap();
    let sig = key().sign(&json);
    let tar = gnu_like_tar(&[
        ("site/index.html", &b"<h1>v1</h1>"[..]),
        ("site/other.html", &b"x"[..]),
        (".cairn/manifest.json", &json[..]),
        (".cairn/manifest.sig", &sig.as_bytes()[..]),
    ]);
    let err = ingest(
        &tar[..],
        Vec::new(),
        meta(),
        &key(),
        &IngestOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("component site cannot be a file"),
        "{err}"
    );
}

#[test]
fn a_foreign_tarball_takes_the_target_s_kinds_where_its_folders_fit() {
    let tar = gnu_like_tar(&[
        ("db/shop.db", &b"one file"[..]),
        ("config/app.toml", &b"port = 1"[..]),
        ("config/extra.toml", &b"two files"[..]),
        ("uploads/a.png", &b"png"[..]),
    ]);
    let opts = IngestOptions::default()
        .component(name("db"), ComponentKind::Sqlite, false)
        .component(name("config"), ComponentKind::File, false)
        .component(name("uploads"), ComponentKind::Dir, true);
    let done = ingest(&tar[..], Vec::new(), meta(), &key(), &opts).unwrap();
    let m = &listing(&done.archive);
    assert_eq!(
        kinds(m),
        [
            ("db".to_owned(), ComponentKind::Sqlite, false),
            // Two files cannot be one `file` component: it stays a folder.
            ("config".to_owned(), ComponentKind::Dir, false),
            ("uploads".to_owned(), ComponentKind::Dir, true),
        ]
    );
    let source = m.source.as_ref().unwrap();
    assert_eq!((source.signer, source.trusted), (None, false));
    assert_eq!(source.compression, "none");
}

/// A plain tar of regular files (mode 0644), in order, with its end marker.
fn gnu_like_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}
