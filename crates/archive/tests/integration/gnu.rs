//! Interoperability with GNU tar, zstd, gzip and OpenSSL.

use std::path::Path;
use std::process::Command;

use cairn_archive::*;
use cairn_manifest::Codec;
use cairn_testkit::{
    TreeOptions, assert_trees_equal, random_tree, require_tool, run_ok, running_as_root,
};

use super::common::*;

pub(crate) fn gnu_extract(tar: &Path, archive: &Path, dest: &Path, flag: &str) {
    std::fs::create_dir_all(dest).unwrap();
    // GNU tar warns about pre-1970 times; the warning is not a failure.
    run_ok(
        Command::new(tar)
            .arg(flag)
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(dest),
    );
}

#[test]
fn gnu_tar_extracts_cairn_archives_identically() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let Some(zstd) = require_tool("zstd") else {
        return;
    };
    let Some(gzip) = require_tool("gzip") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(
        &src,
        77,
        &TreeOptions::default().entries(80).max_file_size(200_000),
    )
    .unwrap();
    for (codec, flag, tool, file) in [
        (Codec::Zstd, "--zstd", &zstd, "a.tar.zst"),
        (Codec::Gzip, "-z", &gzip, "a.tar.gz"),
    ] {
        let done = pack_dir(&src, opts(codec, 64 * 1024, 2));
        let archive = tmp.path().join(file);
        std::fs::write(&archive, &done.inner).unwrap();
        // The compressors accept the concatenated frames and the footer.
        run_ok(Command::new(tool).arg("-t").arg(&archive));
        let dest = tmp.path().join(format!("gnu-{file}"));
        gnu_extract(&tar, &archive, &dest, flag);
        assert_trees_equal(&src, &dest.join("data"), running_as_root());
        // GNU tar lists the manifest and signature as the last two entries.
        let listing = run_ok(Command::new(&tar).arg(flag).arg("-tf").arg(&archive));
        let listing = String::from_utf8_lossy(&listing);
        let last: Vec<&str> = listing.lines().rev().take(2).collect();
        assert_eq!(last, vec![SIGNATURE_PATH, MANIFEST_PATH]);
    }
}

#[test]
fn openssl_verifies_the_manifest_signature() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    random_tree(&src, 3, &TreeOptions::default()).unwrap();
    let done = pack_dir(&src, WriterOptions::default().format(1));
    let archive = tmp.path().join("a.tar.zst");
    std::fs::write(&archive, &done.inner).unwrap();
    let pem = tmp.path().join("public.pem");
    key().public_key().save(&pem).unwrap();
    let dest = tmp.path().join("x");
    gnu_extract(&tar, &archive, &dest, "--zstd");
    let out = run_ok(
        Command::new(&openssl)
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(&pem)
            .arg("-in")
            .arg(dest.join(MANIFEST_PATH))
            .arg("-sigfile")
            .arg(dest.join(SIGNATURE_PATH)),
    );
    assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));
}

#[test]
fn gnu_tarballs_ingest_and_unpack_like_gnu_tar_extracts_them() {
    let Some(tar) = require_tool("tar") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    random_tree(&root.join("data"), 11, &TreeOptions::default().entries(60)).unwrap();
    random_tree(
        &root.join("config"),
        12,
        &TreeOptions::default().entries(10),
    )
    .unwrap();
    std::fs::write(root.join("loose.txt"), b"top-level file").unwrap();
    let cases: [(&str, &[&str]); 6] = [
        ("posix.tar", &["--format=posix"]),
        ("posix.tar.zst", &["--format=posix", "--zstd"]),
        ("posix.tar.gz", &["--format=posix", "-z"]),
        ("gnu.tar.gz", &["--format=gnu", "-z"]),
        ("ustar.tar", &["--format=ustar"]),
        ("dot.tar.zst", &["--format=posix", "--zstd"]),
    ];
    for (file, flags) in cases {
        let tarball = tmp.path().join(file);
        let mut cmd = Command::new(&tar);
        cmd.args(flags)
            .arg("-cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&root);
        if file.starts_with("dot") {
            cmd.arg("."); // entries named ./data/…, ./loose.txt
        } else {
            cmd.args(["data", "config", "loose.txt"]);
        }
        let made = cmd.output().unwrap();
        if file.starts_with("ustar") && !made.status.success() {
            // ustar cannot hold every odd name; GNU tar refuses them. Fine.
            continue;
        }
        assert!(
            made.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&made.stderr)
        );

        // What GNU tar itself extracts is the reference.
        let reference = tmp.path().join(format!("ref-{file}"));
        std::fs::create_dir(&reference).unwrap();
        run_ok(
            Command::new(&tar)
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&reference),
        );

        let ingested = ingest(
            std::fs::File::open(&tarball).unwrap(),
            Vec::new(),
            meta(),
            &key(),
            &IngestOptions::default(),
        )
        .unwrap();
        let names: Vec<_> = ingested
            .archive
            .manifest
            .components()
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        assert_eq!(names.len(), 3, "{file}: {names:?}");
        for n in ["data", "config", "root"] {
            assert!(names.contains(&n.to_owned()), "{file}: {names:?}");
        }
        let dest = tmp.path().join(format!("cairn-{file}"));
        ArchiveReader::new(&ingested.archive.inner[..])
            .unwrap()
            .unpack(&key().public_key(), &dest, &UnpackOptions::default())
            .unwrap();
        for c in ["data", "config"] {
            assert_trees_equal(&reference.join(c), &dest.join(c), running_as_root());
        }
        assert_eq!(
            std::fs::read(dest.join("root/loose.txt")).unwrap(),
            b"top-level file"
        );
    }
}
