//! Benchmarks for Cairn live under `benches/`; `src/bin/gen-dataset.rs` makes
//! the end-to-end dataset, `src/bin/seed-catalog.rs` a catalog of many
//! backup records (for the catalog and server benchmarks).

use cairn_catalog::{BackupRecord, BackupStatus};
use cairn_manifest::{BackupId, BackupKind, TargetName};
use jiff::Timestamp;

/// The `n`th synthetic backup record of `target`: one a second from
/// November 2023, a tenth of them manual, a hundredth labelled, sizes of a
/// 1 GiB service. Its archive does not exist: for listing, not restoring.
///
/// # Panics
///
/// If `target` is not a valid name or `n` is beyond a billion.
pub fn catalog_record(n: u64, target: &str) -> BackupRecord {
    let second = 1_700_000_000 + i64::try_from(n).expect("n is small");
    let id = BackupId::from_parts(1_700_000_000_000 + n * 1000, u128::from(n));
    let kind = if n.is_multiple_of(10) {
        BackupKind::Manual
    } else {
        BackupKind::Scheduled
    };
    let at = Timestamp::from_second(second).expect("in range");
    BackupRecord {
        status: BackupStatus::Ready,
        label: (n.is_multiple_of(100)).then(|| format!("release-{n}")),
        duration_ms: Some(1200),
        origin: Some("org_bench".to_owned()),
        signer: Some("0123456789abcdef0123456789abcdef".to_owned()),
        codec: Some("zstd".to_owned()),
        components: vec!["data".to_owned(), "db".to_owned()],
        entries: 1500,
        data_bytes: 1 << 30,
        archive_key: Some(format!("targets/{target}/backups/x{n}.tar.zst")),
        archive_size: Some(300 << 20),
        archive_sha256: Some("ab".repeat(32)),
        manifest_sha256: Some("cd".repeat(32)),
        manifest_offset: Some(300 << 20),
        manifest_length: Some(400_000),
        ..BackupRecord::creating(
            id,
            TargetName::parse(target).expect("a valid target name"),
            kind,
            at,
        )
    }
}
