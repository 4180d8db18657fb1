//! Retention planning over N backups, and job transitions.
//!
//! `cargo bench -p cairn-benches --bench retention`. A server with 100k
//! backups in its catalog plans after every backup: this must stay cheap.

use std::hint::black_box;

use cairn_job::{Event, Job, JobKind, ProgressUpdate};
use cairn_retention::{Backup, Period, Policy};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};

/// `n` hourly backups ending at 2026-11-20, every 50th pinned.
fn history(n: usize) -> Vec<Backup> {
    let end = Timestamp::from_second(1_795_132_800).expect("in range");
    (0..n)
        .map(|i| {
            let hours = i64::try_from(i).expect("small");
            let at = end
                .checked_sub(SignedDuration::from_hours(hours))
                .expect("in range");
            let mut b = Backup::ready(format!("bkp_{i:08}"), at);
            b.pinned = i % 50 == 0;
            b
        })
        .collect()
}

fn bench_plan(c: &mut Criterion) {
    let gfs = Policy::default()
        .with_keep_last(10)
        .with_keep_period(Period::Hourly, 24)
        .with_keep_period(Period::Daily, 7)
        .with_keep_period(Period::Weekly, 4)
        .with_keep_period(Period::Monthly, 12)
        .with_keep_period(Period::Yearly, 5)
        .with_timezone("Europe/Paris")
        .expect("known zone");
    let now = Timestamp::from_second(1_795_136_400).expect("in range");
    let mut group = c.benchmark_group("retention-plan");
    for n in [1_000, 10_000, 100_000] {
        let backups = history(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("gfs-paris", n), &backups, |b, h| {
            b.iter(|| black_box(gfs.plan(h, now).expect("unique ids")));
        });
    }
    group.finish();
}

fn bench_job(c: &mut Criterion) {
    let t0 = Timestamp::from_second(1_795_000_000).expect("in range");
    let job = Job::new("job_1", JobKind::Backup, "app", t0)
        .apply(&Event::Start, t0)
        .expect("legal");
    let update = Event::Progress(ProgressUpdate {
        processed_bytes: Some(1 << 30),
        total_bytes: Some(4 << 30),
        processed_files: Some(1000),
        ..ProgressUpdate::default()
    });
    let later = t0
        .checked_add(SignedDuration::from_secs(30))
        .expect("in range");
    c.bench_function("job-progress-apply", |b| {
        b.iter(|| black_box(job.apply(&update, later).expect("legal")));
    });
}

criterion_group!(benches, bench_plan, bench_job);
criterion_main!(benches);
