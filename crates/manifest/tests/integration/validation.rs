//! Every contradiction a manifest can hold is refused, naming it.

use cairn_integrity::SigningKey;
use cairn_manifest::*;

use super::fixture::{entry, file, sample};

fn refused(change: impl FnOnce(&mut Manifest), needle: &str) {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut m = sample(&key);
    m.validate().expect("fixture is valid");
    change(&mut m);
    let err = m.validate().expect_err(needle);
    assert!(
        err.to_string().contains(needle),
        "expected {needle:?} in {err}"
    );
    // Signing checks the same rules.
    assert!(SignedManifest::sign(m, &key).is_err());
}

#[test]
fn contradictions() {
    refused(|m| m.format = "other".into(), "format");
    refused(
        |m| m.version = FormatVersion { major: 2, minor: 0 },
        "version 2.0 is not supported",
    );
    refused(
        |m| m.origin.target = TargetName::parse("other").unwrap(),
        "origin target",
    );
    refused(|m| m.label = Some("x".repeat(300)), "label");
    refused(
        |m| m.components.push(m.components[0].clone()),
        "listed twice",
    );
    refused(|m| m.components[0].entries = 3, "lists 3 entries");
    refused(|m| m.components[1].bytes = 99, "99 bytes");
    refused(
        |m| m.entries.push(file(b"other/x", 1, 500, 10)),
        "not under a listed component",
    );
    refused(
        |m| {
            let dup = m.entries[1].clone();
            m.entries.insert(2, dup);
        },
        "listed twice",
    );
    refused(|m| m.entries[1].mode = 0o17777, "mode");
    refused(|m| m.entries[1].sha256 = None, "needs a sha256");
    refused(|m| m.entries[0].size = 1, "has data");
    refused(|m| m.entries[3].link = None, "needs a target");
    refused(
        |m| m.entries[2].link = Some(LinkTarget::parse(b"data/missing").unwrap()),
        "earlier regular file",
    );
    refused(
        |m| m.entries[2].link = Some(LinkTarget::parse(b"db/app.db").unwrap()),
        "earlier regular file",
    );
    refused(|m| m.entries[0] = file(b"data", 0, 0, 0), "not a directory");
    refused(|m| m.entries[1].frame = 7, "no frame at offset 7");
    refused(|m| m.entries[1].pos = 4096, "past the end");
    refused(|m| m.entries.swap(1, 0), "not after the previous entry");
    refused(|m| m.frames[1].offset = 301, "does not follow");
    refused(|m| m.frames[2].raw_size = 0, "empty");
}

#[test]
fn nothing_below_a_link_or_file() {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut m = sample(&key);
    // data/link is a symlink; data/link/x would be written through it.
    m.entries.push(file(b"data/link/x", 1, 500, 10));
    m.components[0].entries += 1;
    m.components[0].bytes += 1;
    let err = m.validate().unwrap_err();
    assert!(err.to_string().contains("below a file or link"), "{err}");
}

#[test]
fn hard_link_across_components_is_refused() {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut m = sample(&key);
    let mut cross = entry(b"db/hard", EntryKind::Hardlink, 500, 512);
    cross.link = Some(LinkTarget::parse(b"data/a.txt").unwrap());
    m.entries.push(cross);
    m.components[1].entries = 2;
    let err = m.validate().unwrap_err();
    assert!(err.to_string().contains("crosses components"), "{err}");
}

#[test]
fn empty_manifest_is_valid() {
    let key = SigningKey::from_seed(&[1; 32]);
    let mut m = sample(&key);
    m.components.clear();
    m.entries.clear();
    m.frames.clear();
    m.skipped.clear();
    m.validate().unwrap();
}
