//! Catalog listing with 100k backups: the first page, a filtered first page,
//! and a deep page (90k rows in), each of 50 rows.
//!
//! `cargo bench -p cairn-benches --bench catalog`.

use std::hint::black_box;

use cairn_benches::catalog_record;
use cairn_catalog::{BackupFilter, BackupRecord, Catalog, Cursor};
use cairn_manifest::TargetName;
use criterion::{Criterion, criterion_group, criterion_main};

const ROWS: u64 = 100_000;
const TARGETS: [&str; 4] = ["app", "db", "files", "config"];

fn record(n: u64) -> BackupRecord {
    catalog_record(n, TARGETS[usize::try_from(n % 4).expect("small")])
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
