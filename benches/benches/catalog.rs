//! Catalog listing with 100k backups: the first page, a filtered first page,
//! and a deep page (90k rows in), each of 50 rows.
//!
//! `cargo bench -p cairn-benches --bench catalog`.

use std::hint::black_box;

use cairn_catalog::{BackupFilter, BackupRecord, BackupStatus, Catalog, Cursor};
use cairn_manifest::{BackupId, BackupKind, TargetName};
use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;

const ROWS: u64 = 100_000;
const TARGETS: [&str; 4] = ["app", "db", "files", "config"];

fn record(n: u64) -> BackupRecord {
    let target = TARGETS[usize::try_from(n % 4).expect("small")];
    BackupRecord {
        id: BackupId::from_parts(1_700_000_000_000 + n * 1000, u128::from(n)),
        target: TargetName::parse(target).expect("valid"),
        kind: if n.is_multiple_of(10) {
            BackupKind::Manual
        } else {
            BackupKind::Scheduled
        },
        status: BackupStatus::Ready,
        label: (n.is_multiple_of(100)).then(|| format!("release-{n}")),
        description: None,
        created_at: Timestamp::from_second(1_700_000_000 + i64::try_from(n).expect("small"))
            .expect("in range"),
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
        pinned: false,
        deleted_at: None,
        verification: None,
    }
}

fn bench_list(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::open(dir.path().join("catalog.db")).expect("catalog");
    for target in TARGETS {
        let rows: Vec<BackupRecord> = (0..ROWS)
            .filter(|n| TARGETS[usize::try_from(n % 4).expect("small")] == target)
            .map(record)
            .collect();
        catalog
            .replace_target_backups(&TargetName::parse(target).expect("valid"), &rows)
            .expect("bulk insert");
    }
    let all = BackupFilter::default();
    let app = BackupFilter {
        target: Some(TargetName::parse("app").expect("valid")),
        ..BackupFilter::default()
    };
    // The cursor 90k rows in.
    let mut deep: Option<Cursor> = None;
    for _ in 0..90 {
        deep = catalog
            .list_backups(&all, 1000, deep.as_ref())
            .expect("page")
            .next;
    }
    let deep = deep.expect("more rows");

    let mut group = c.benchmark_group("catalog-list-100k");
    group.bench_function("first-page-50", |b| {
        b.iter(|| black_box(catalog.list_backups(&all, 50, None).expect("page")));
    });
    group.bench_function("first-page-50-one-target", |b| {
        b.iter(|| black_box(catalog.list_backups(&app, 50, None).expect("page")));
    });
    group.bench_function("deep-page-50-at-90k", |b| {
        b.iter(|| black_box(catalog.list_backups(&all, 50, Some(&deep)).expect("page")));
    });
    group.finish();
}

criterion_group!(benches, bench_list);
criterion_main!(benches);
