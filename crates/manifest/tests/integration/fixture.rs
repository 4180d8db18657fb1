//! A valid manifest to start from.

use cairn_integrity::{Sha256Digest, SigningKey};
use cairn_manifest::*;

pub(crate) fn entry(path: &[u8], kind: EntryKind, frame: u64, pos: u64) -> Entry {
    Entry {
        path: EntryPath::parse(path).unwrap(),
        kind,
        size: 0,
        mode: 0o755,
        mtime: Mtime::new(1_700_000_000, 123_456_789),
        uid: 1000,
        gid: 1000,
        sha256: None,
        link: None,
        frame,
        pos,
        stored_in: None,
    }
}

pub(crate) fn file(path: &[u8], size: u64, frame: u64, pos: u64) -> Entry {
    Entry {
        size,
        mode: 0o644,
        sha256: Some(Sha256Digest::of(path)),
        ..entry(path, EntryKind::File, frame, pos)
    }
}

/// Two components, five entries over three frames.
pub(crate) fn sample(key: &SigningKey) -> Manifest {
    let target = TargetName::parse("web").unwrap();
    let mut hard = entry(b"data/hard", EntryKind::Hardlink, 300, 10);
    hard.link = Some(LinkTarget::parse(b"data/a.txt").unwrap());
    let mut sym = entry(b"data/link", EntryKind::Symlink, 300, 2048);
    sym.link = Some(LinkTarget::parse(b"/etc/passwd").unwrap());
    Manifest {
        format: FORMAT_TAG.to_owned(),
        version: FormatVersion::CURRENT,
        backup_id: BackupId::from_parts(1_700_000_000_000, 42),
        target: target.clone(),
        kind: BackupKind::Manual,
        label: Some("nightly".into()),
        description: None,
        created_at: "2026-11-22T10:00:00Z".parse().unwrap(),
        duration_ms: 1500,
        origin: Origin {
            target,
            origin_id: OriginId::parse("org_test").unwrap(),
            hostname: Some("host-a".into()),
            model: None,
            serial: None,
            software_version: "cairn/0.1.0".into(),
        },
        compression: Compression {
            codec: Codec::Zstd,
            level: 3,
            frame_size: 4096,
        },
        signer: key.key_id(),
        components: vec![
            Component {
                name: ComponentName::parse("data").unwrap(),
                kind: ComponentKind::Dir,
                optional: false,
                entries: 4,
                bytes: 5000,
            },
            Component {
                name: ComponentName::parse("db").unwrap(),
                kind: ComponentKind::Sqlite,
                optional: true,
                entries: 1,
                bytes: 100,
            },
        ],
        entries: vec![
            entry(b"data", EntryKind::Dir, 0, 0),
            file(b"data/a.txt", 5000, 0, 1024),
            hard,
            sym,
            file(b"db/app.db", 100, 500, 0),
        ],
        frames: vec![
            Frame {
                offset: 0,
                size: 300,
                raw_offset: 0,
                raw_size: 4096,
            },
            Frame {
                offset: 300,
                size: 200,
                raw_offset: 4096,
                raw_size: 4096,
            },
            Frame {
                offset: 500,
                size: 100,
                raw_offset: 8192,
                raw_size: 2048,
            },
        ],
        skipped: vec![Skipped {
            path: EntryPath::parse(b"data/socket").unwrap(),
            reason: SkipReason::Socket,
        }],
        warnings: vec![],
        source: None,
    }
}
