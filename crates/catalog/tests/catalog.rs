//! The catalog on real SQLite files: schema and migrations, corrupt files,
//! backups, jobs, idempotency, schedules, threads and processes.

use std::sync::Arc;

use cairn_archive::{ArchiveMeta, ArchiveWriter, WriterOptions};
use cairn_catalog::{
    BackupFilter, BackupRecord, BackupStatus, Catalog, ErrorKind, JobCreated, MIGRATIONS,
    SCHEMA_VERSION, TargetSettings, Verification,
};
use cairn_integrity::SigningKey;
use cairn_job::{Event, Fingerprint, IdempotencyKey, Job, JobKind, JobState};
use cairn_manifest::{BackupId, BackupKind, ComponentName, OriginId, TargetName};
use cairn_retention::{Policy, ScheduleRules, ScheduleState};
use jiff::{SignedDuration, Timestamp};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + secs).unwrap()
}

fn record(target: &str, n: u64, at: Timestamp) -> BackupRecord {
    let id = BackupId::from_parts(1_795_000_000_000 + n, u128::from(n));
    BackupRecord {
        status: BackupStatus::Ready,
        duration_ms: Some(12),
        codec: Some("zstd".to_owned()),
        components: vec!["data".to_owned()],
        entries: 3,
        data_bytes: 100,
        archive_size: Some(1000),
        ..BackupRecord::creating(
            id,
            TargetName::parse(target).unwrap(),
            BackupKind::Manual,
            at,
        )
    }
}

fn schema_of(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_new_catalog_is_wal_and_current() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = Catalog::open(&path).unwrap();
    assert_eq!(catalog.schema_version().unwrap(), SCHEMA_VERSION);
    catalog.check().unwrap();
    drop(catalog);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn every_earlier_schema_migrates_to_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    drop(Catalog::open(&fresh).unwrap());
    let want = schema_of(&rusqlite::Connection::open(&fresh).unwrap());
    assert!(want.iter().any(|s| s.contains("CREATE TABLE backups")));
    // Version 0 is an empty database; version k has the first k migrations.
    for k in 0..=MIGRATIONS.len() {
        let path = dir.path().join(format!("v{k}.db"));
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS[..k].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap())
                    .unwrap();
            }
        }
        let catalog = Catalog::open(&path).unwrap();
        assert_eq!(
            catalog.schema_version().unwrap(),
            SCHEMA_VERSION,
            "from v{k}"
        );
        drop(catalog);
        assert_eq!(
            schema_of(&rusqlite::Connection::open(&path).unwrap()),
            want,
            "from v{k}"
        );
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Catalog::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooNew);
    assert!(err.to_string().contains("newer Cairn"), "{err}");
}

#[test]
fn a_corrupt_file_names_itself_and_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Catalog::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    // The way out, in the library's words (the CLI's hint names its command).
    assert!(
        text.contains("rebuild the catalog from the store"),
        "{text}"
    );

    // A real catalog with its pages damaged: the check says so.
    let path = dir.path().join("damaged.db");
    {
        let catalog = Catalog::open(&path).unwrap();
        for i in 0..300 {
            catalog
                .insert_backup(&record("app", i, t(i64::try_from(i).unwrap())))
                .unwrap();
        }
    }
    // Checkpointed into the main file on close; now smash a page in the middle.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    bytes[mid..mid + 4096].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    let outcome = Catalog::open(&path).and_then(|c| c.check());
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn backups_round_trip_filter_and_change() {
    let catalog = Catalog::in_memory().unwrap();
    let mut a = record("app", 1, t(10));
    a.label = Some("before-deploy".to_owned());
    a.kind = BackupKind::PreDeploy;
    let b = record("app", 2, t(20));
    let mut c = record("db", 3, t(30));
    c.status = BackupStatus::Failed;
    for r in [&a, &b, &c] {
        catalog.insert_backup(r).unwrap();
    }
    let err = catalog.insert_backup(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(catalog.get_backup(&a.id).unwrap().as_ref(), Some(&a));

    let ids = |f: &BackupFilter| -> Vec<BackupId> {
        catalog
            .list_backups(f, 100, None)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(&BackupFilter::default()), [c.id, b.id, a.id]);
    let app = BackupFilter {
        target: Some(TargetName::parse("app").unwrap()),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&app), [b.id, a.id]);
    let names = |ns: &[&str]| Some(ns.iter().map(|n| TargetName::parse(n).unwrap()).collect());
    let f = BackupFilter {
        targets: names(&["db", "other"]),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [c.id], "only the targets listed");
    let f = BackupFilter {
        targets: names(&["app", "db"]),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [c.id, b.id, a.id]);
    let f = BackupFilter {
        targets: names(&[]),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [], "an empty list matches none");
    let f = BackupFilter {
        targets: names(&["db"]),
        ..app.clone()
    };
    assert_eq!(ids(&f), [], "target and targets both narrow");
    let f = BackupFilter {
        kind: Some(BackupKind::PreDeploy),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [a.id]);
    let f = BackupFilter {
        status: Some(BackupStatus::Failed),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [c.id]);
    let f = BackupFilter {
        label: Some("before-deploy".to_owned()),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [a.id]);
    let f = BackupFilter {
        created_after: Some(t(20)),
        created_before: Some(t(30)),
        ..BackupFilter::default()
    };
    assert_eq!(ids(&f), [b.id], "after is inclusive, before exclusive");

    catalog.set_pinned(&a.id, true).unwrap();
    catalog.set_deleted(&b.id, Some(t(40))).unwrap();
    assert_eq!(ids(&app), [a.id], "soft-deleted backups are hidden");
    let with_deleted = BackupFilter {
        include_deleted: true,
        ..app.clone()
    };
    assert_eq!(ids(&with_deleted), [b.id, a.id]);
    catalog.set_deleted(&b.id, None).unwrap();
    assert_eq!(ids(&app), [b.id, a.id], "undeleted");
    let v = Verification {
        at: t(50),
        tier: "full".to_owned(),
        ok: true,
        message: "3 entries".to_owned(),
    };
    catalog.record_verification(&b.id, &v).unwrap();
    // The overview: per target, one query.
    let sums = catalog.target_summaries().unwrap();
    let names: Vec<_> = sums.iter().map(|s| s.target.to_string()).collect();
    assert_eq!(names, ["app", "db"]);
    assert_eq!(sums[0].backups, 2);
    assert_eq!(sums[0].last_ready, Some(t(20)), "the newest ready one");
    assert_eq!(sums[0].last_status, Some(BackupStatus::Ready));
    assert_eq!(sums[0].last_verification_ok, Some(true));
    assert_eq!(sums[1].last_status, Some(BackupStatus::Failed));
    assert_eq!(
        (sums[1].last_ready, sums[1].last_verification_ok),
        (None, None)
    );
    catalog
        .set_status(&c.id, BackupStatus::Ready, None)
        .unwrap();
    let b2 = catalog.get_backup(&b.id).unwrap().unwrap();
    assert_eq!(b2.verification, Some(v));
    assert!(catalog.get_backup(&a.id).unwrap().unwrap().pinned);

    let missing = BackupId::from_parts(1, 1);
    assert_eq!(
        catalog.set_pinned(&missing, true).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    catalog.remove_backup(&c.id).unwrap();
    assert_eq!(catalog.get_backup(&c.id).unwrap(), None);
}

#[test]
fn rebuilding_a_target_keeps_operator_state() {
    let catalog = Catalog::in_memory().unwrap();
    let app = TargetName::parse("app").unwrap();
    let (a, b, other) = (
        record("app", 1, t(1)),
        record("app", 2, t(2)),
        record("db", 3, t(3)),
    );
    for r in [&a, &b, &other] {
        catalog.insert_backup(r).unwrap();
    }
    catalog.set_pinned(&a.id, true).unwrap();
    // The store now holds a and a new backup c; b is gone.
    let c = record("app", 4, t(4));
    catalog
        .replace_target_backups(&app, &[a.clone(), c.clone()])
        .unwrap();
    let listed: Vec<BackupId> = catalog
        .target_backups(&app)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [c.id, a.id]);
    assert!(
        catalog.get_backup(&a.id).unwrap().unwrap().pinned,
        "pin survives"
    );
    assert!(
        catalog.get_backup(&other.id).unwrap().is_some(),
        "other targets untouched"
    );
    let wrong = catalog.replace_target_backups(&app, std::slice::from_ref(&other));
    assert!(wrong.is_err());
    assert_eq!(
        catalog.target_backups(&app).unwrap().len(),
        2,
        "a failed rebuild changes nothing"
    );
}

#[test]
fn records_from_a_real_archive() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"hello").unwrap();
    let key = SigningKey::from_seed(&[3; 32]);
    let meta = ArchiveMeta::new(
        TargetName::parse("app").unwrap(),
        OriginId::parse("org_test").unwrap(),
    )
    .label("nightly");
    let mut w = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default()).unwrap();
    w.append_dir(&ComponentName::parse("data").unwrap(), dir.path(), false)
        .unwrap();
    let done = w.finish(&key).unwrap();
    let r = BackupRecord::from_sealed(&done.manifest, &done.seal, "targets/app/backups/x.tar.zst");
    assert_eq!(r.id, done.manifest.backup_id());
    assert_eq!(r.label.as_deref(), Some("nightly"));
    assert_eq!(r.components, ["data"]);
    assert_eq!(r.archive_size, Some(done.size));
    assert_eq!(r.archive_sha256, Some(done.sha256.to_string()));
    assert_eq!(r.codec.as_deref(), Some("zstd"));
    assert_eq!(r.data_bytes, 5);
    assert_eq!(r.origin.as_deref(), Some("org_test"));
    let catalog = Catalog::in_memory().unwrap();
    catalog.insert_backup(&r).unwrap();
    assert_eq!(catalog.get_backup(&r.id).unwrap(), Some(r));
}

#[test]
fn jobs_and_crash_recovery() {
    let catalog = Catalog::in_memory().unwrap();
    let queued = Job::new("job_1", JobKind::Backup, "app", t(0));
    let running = Job::new("job_2", JobKind::Restore, "db", t(1))
        .apply(&Event::Start, t(2))
        .unwrap();
    let done = Job::new("job_3", JobKind::Verify, "app", t(3))
        .apply(&Event::Start, t(3))
        .unwrap()
        .apply(&Event::Succeed { result: None }, t(4))
        .unwrap();
    for j in [&queued, &running, &done] {
        catalog.put_job(j).unwrap();
    }
    assert_eq!(catalog.get_job("job_2").unwrap().as_ref(), Some(&running));
    assert_eq!(catalog.get_job("nope").unwrap(), None);
    let app: Vec<String> = catalog
        .list_jobs(Some("app"), &[], 10)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(app, ["job_3", "job_1"]);
    let active = catalog
        .list_jobs(None, &[JobState::Queued, JobState::Running], 10)
        .unwrap();
    assert_eq!(active.len(), 2);

    let recovered = catalog.interrupt_unfinished(t(100)).unwrap();
    assert_eq!(recovered.len(), 2);
    for id in ["job_1", "job_2"] {
        let j = catalog.get_job(id).unwrap().unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.error.unwrap().code, "interrupted");
    }
    assert_eq!(
        catalog.get_job("job_3").unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert!(catalog.interrupt_unfinished(t(101)).unwrap().is_empty());
}

#[test]
fn a_late_progress_save_never_overwrites_a_finished_job() {
    let catalog = Catalog::in_memory().unwrap();
    let running = Job::new("job_1", JobKind::Backup, "app", t(0))
        .apply(&Event::Start, t(1))
        .unwrap();
    catalog.put_job(&running).unwrap();
    let progressed = running
        .apply(
            &Event::Progress(cairn_job::ProgressUpdate {
                processed_bytes: Some(10),
                ..Default::default()
            }),
            t(2),
        )
        .unwrap();
    assert!(catalog.put_job_progress(&progressed).unwrap());
    assert_eq!(
        catalog
            .get_job("job_1")
            .unwrap()
            .unwrap()
            .progress
            .processed_bytes,
        10
    );
    let done = progressed
        .apply(&Event::Succeed { result: None }, t(3))
        .unwrap();
    catalog.put_job(&done).unwrap();
    // The progress save of t(2) arriving late is ignored.
    assert!(!catalog.put_job_progress(&progressed).unwrap());
    assert_eq!(catalog.get_job("job_1").unwrap().unwrap(), done);
    // An unknown job is not created by a progress save.
    let other = Job::new("job_2", JobKind::Backup, "app", t(0));
    assert!(!catalog.put_job_progress(&other).unwrap());
    assert_eq!(catalog.get_job("job_2").unwrap(), None);
}

#[test]
fn only_jobs_of_dead_owners_are_interrupted_and_cancels_cross_processes() {
    let catalog = Catalog::in_memory().unwrap();
    let start = |id: &str| {
        let j = Job::new(id, JobKind::Backup, "app", t(0))
            .apply(&Event::Start, t(1))
            .unwrap();
        catalog.put_job(&j).unwrap();
        j
    };
    start("job_alive");
    start("job_dead");
    start("job_orphan");
    catalog.set_job_owner("job_alive", "host 1", t(5)).unwrap();
    catalog.set_job_owner("job_dead", "host 2", t(5)).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let out = catalog
        .interrupt_dead(t(10), |job, owner, beat| {
            seen.borrow_mut()
                .push((job.id.clone(), owner.map(str::to_owned), beat));
            owner == Some("host 2") || owner.is_none()
        })
        .unwrap();
    let ids: Vec<_> = out.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"job_dead") && ids.contains(&"job_orphan"));
    assert!(seen.borrow().contains(&(
        "job_alive".to_owned(),
        Some("host 1".to_owned()),
        Some(t(5))
    )));
    assert_eq!(
        catalog.get_job("job_alive").unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(
        catalog.get_job("job_dead").unwrap().unwrap().state,
        JobState::Failed
    );

    // Cancel requests: recorded for a running job, refused for ended or unknown ones.
    assert!(!catalog.cancel_requested("job_alive").unwrap());
    assert!(catalog.request_cancel("job_alive", t(11)).unwrap());
    assert!(
        catalog.request_cancel("job_alive", t(12)).unwrap(),
        "asking twice is fine"
    );
    assert!(catalog.cancel_requested("job_alive").unwrap());
    assert!(!catalog.request_cancel("job_dead", t(11)).unwrap());
    assert!(!catalog.request_cancel("job_nope", t(11)).unwrap());
    assert!(!catalog.cancel_requested("job_dead").unwrap());
}

#[test]
fn idempotent_job_creation() {
    let catalog = Catalog::in_memory().unwrap();
    let key: IdempotencyKey = "req-1".parse().unwrap();
    let fp = Fingerprint::of(JobKind::Backup, "app", &serde_json::json!({"label": "x"})).unwrap();
    let other =
        Fingerprint::of(JobKind::Backup, "app", &serde_json::json!({"label": "y"})).unwrap();
    let ttl = SignedDuration::from_hours(24);
    let job = Job::new("job_1", JobKind::Backup, "app", t(0));
    let first = catalog
        .create_job_idempotent(&job, &key, &fp, ttl, t(0))
        .unwrap()
        .unwrap();
    assert_eq!(first, JobCreated::New(job.clone()));
    let retry = Job::new("job_2", JobKind::Backup, "app", t(5));
    let again = catalog
        .create_job_idempotent(&retry, &key, &fp, ttl, t(5))
        .unwrap()
        .unwrap();
    assert_eq!(again, JobCreated::Replay(job.clone()));
    assert_eq!(
        catalog.get_job("job_2").unwrap(),
        None,
        "the retry stored nothing"
    );
    let conflict = catalog
        .create_job_idempotent(&retry, &key, &other, ttl, t(6))
        .unwrap()
        .unwrap_err();
    assert_eq!(conflict.job_id, "job_1");
    // After the time to live, the key starts a new job.
    let later = t(0) + ttl;
    let fresh = catalog
        .create_job_idempotent(&retry, &key, &other, ttl, later)
        .unwrap()
        .unwrap();
    assert_eq!(fresh, JobCreated::New(retry));
    assert_eq!(
        catalog.expire_idempotency_keys(ttl, later + ttl).unwrap(),
        1
    );
}

#[test]
fn schedules_persist() {
    let catalog = Catalog::in_memory().unwrap();
    assert_eq!(catalog.schedule("app").unwrap(), ScheduleState::default());
    let off = ScheduleState::default().disable(t(0));
    catalog.put_schedule("app", &off, t(0)).unwrap();
    let back = catalog.schedule("app").unwrap();
    assert_eq!(back, off);
    let err = back.enable(&ScheduleRules::default(), t(3600)).unwrap_err();
    assert_eq!(err.until, t(72 * 3600));
}

#[test]
fn shared_between_threads_and_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = Arc::new(Catalog::open(&path).unwrap());
    // A second handle on the same file, as another process would have.
    let other = Arc::new(Catalog::open(&path).unwrap());
    let mut threads = Vec::new();
    for th in 0..4u64 {
        let c = if th % 2 == 0 {
            Arc::clone(&catalog)
        } else {
            Arc::clone(&other)
        };
        threads.push(std::thread::spawn(move || {
            for i in 0..50u64 {
                let n = th * 1000 + i;
                c.insert_backup(&record("app", n, t(i64::try_from(n).unwrap())))
                    .unwrap();
                c.list_backups(&BackupFilter::default(), 10, None).unwrap();
            }
        }));
    }
    for th in threads {
        th.join().unwrap();
    }
    let all = catalog
        .target_backups(&TargetName::parse("app").unwrap())
        .unwrap();
    assert_eq!(all.len(), 200);
}

#[test]
fn a_row_that_does_not_decode_is_reported_corrupt_and_a_rebuild_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let r = record("app", 1, t(1));
    {
        let catalog = Catalog::open(&path).unwrap();
        catalog.insert_backup(&r).unwrap();
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE backups SET status = 'melted'", [])
        .unwrap();
    let catalog = Catalog::open(&path).unwrap();
    for err in [
        catalog.get_backup(&r.id).unwrap_err(),
        catalog
            .list_backups(&BackupFilter::default(), 10, None)
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        // What SQLite said is the cause, once.
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("melted"), "{err}: {cause}");
        assert!(!err.to_string().contains("melted"), "{err}");
        assert!(
            err.to_string()
                .contains("rebuild the catalog from the store"),
            "{err}"
        );
    }
    let app = TargetName::parse("app").unwrap();
    catalog
        .replace_target_backups(&app, std::slice::from_ref(&r))
        .unwrap();
    assert_eq!(catalog.get_backup(&r.id).unwrap(), Some(r));
}

#[test]
fn job_lists_filter_by_state_in_the_query_and_stop_at_the_limit() {
    let catalog = Catalog::in_memory().unwrap();
    for i in 0..5 {
        let mut job = Job::new(format!("job_{i}"), JobKind::Backup, "app", t(i));
        if i % 2 == 0 {
            job = job.apply(&Event::Start, t(i)).unwrap();
        }
        catalog.put_job(&job).unwrap();
    }
    let running: Vec<String> = catalog
        .list_jobs(None, &[JobState::Running], 2)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(running, ["job_4", "job_2"]);
    assert_eq!(catalog.list_jobs(Some("app"), &[], 10).unwrap().len(), 5);
    assert!(catalog.list_jobs(Some("db"), &[], 10).unwrap().is_empty());
}

#[test]
fn target_settings_round_trip_and_a_damaged_row_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let catalog = Catalog::open(&path).unwrap();
    assert!(catalog.target_settings().unwrap().is_empty());
    let web = TargetSettings {
        retention: Some(Policy::default().with_keep_last(3)),
        every: Some(Some(std::time::Duration::from_secs(3600))),
    };
    let db = TargetSettings {
        retention: None,
        every: Some(None),
    };
    catalog.put_target_settings("web", &web, t(1)).unwrap();
    catalog.put_target_settings("db", &db, t(1)).unwrap();
    assert_eq!(
        catalog.target_settings().unwrap(),
        vec![("db".to_owned(), db), ("web".to_owned(), web.clone())]
    );
    // Replaced, not merged.
    catalog
        .put_target_settings("web", &TargetSettings::default(), t(2))
        .unwrap();
    assert_eq!(
        catalog.target_settings().unwrap()[1].1,
        TargetSettings::default()
    );
    drop(catalog);

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE target_settings SET retention = '{\"keep_last\": -1}' WHERE target = 'web'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Catalog::open(&path).unwrap().target_settings().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("retention of web"), "{err}");
}

#[test]
fn status_names_match_their_json() {
    let names: Vec<String> = BackupStatus::ALL
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let listed: Vec<&str> = BackupStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, listed);
    assert_eq!(
        listed,
        ["creating", "uploading", "ready", "restoring", "failed"]
    );
}

#[test]
fn a_backup_reads_restoring_while_a_restore_of_it_runs() {
    use cairn_job::Resource;
    let catalog = Catalog::in_memory().unwrap();
    let a = record("app", 1, t(10));
    let b = record("app", 2, t(20));
    catalog.insert_backup(&a).unwrap();
    catalog.insert_backup(&b).unwrap();
    let restore = Job::new("job_r", JobKind::Restore, "app", t(30))
        .with_resource(Resource::backup(a.id.to_string()))
        .apply(&Event::Start, t(30))
        .unwrap();
    catalog.put_job(&restore).unwrap();
    // A verify reading `b` does not make it `restoring`.
    let verify = Job::new("job_v", JobKind::Verify, "app", t(30))
        .with_resource(Resource::backup(b.id.to_string()))
        .apply(&Event::Start, t(30))
        .unwrap();
    catalog.put_job(&verify).unwrap();
    let status = |id: &BackupId| catalog.get_backup(id).unwrap().unwrap().status;
    assert_eq!(status(&a.id), BackupStatus::Restoring);
    assert_eq!(status(&b.id), BackupStatus::Ready);
    let only = |s: BackupStatus| -> Vec<BackupId> {
        let f = BackupFilter {
            status: Some(s),
            ..BackupFilter::default()
        };
        catalog
            .list_backups(&f, 10, None)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(only(BackupStatus::Restoring), [a.id]);
    assert_eq!(only(BackupStatus::Ready), [b.id]);
    assert!(
        catalog
            .set_status(&a.id, BackupStatus::Restoring, None)
            .is_err(),
        "restoring is not stored"
    );
    let done = restore
        .apply(&Event::Succeed { result: None }, t(40))
        .unwrap();
    catalog.put_job(&done).unwrap();
    assert_eq!(status(&a.id), BackupStatus::Ready);
}

#[test]
fn a_started_backup_is_completed_in_place_and_keeps_operator_state() {
    let catalog = Catalog::in_memory().unwrap();
    let ready = record("app", 1, t(10));
    let mut started =
        BackupRecord::creating(ready.id, ready.target.clone(), BackupKind::Manual, t(10));
    started.label = Some("v2".to_owned());
    catalog.insert_backup(&started).unwrap();
    catalog.set_pinned(&started.id, true).unwrap();
    catalog
        .set_status(&started.id, BackupStatus::Uploading, Some("sending"))
        .unwrap();
    let now = catalog.get_backup(&started.id).unwrap().unwrap();
    assert_eq!(now.status, BackupStatus::Uploading);
    assert_eq!(now.status_message.as_deref(), Some("sending"));
    catalog.complete_backup(&ready).unwrap();
    let done = catalog.get_backup(&ready.id).unwrap().unwrap();
    assert_eq!(done.status, BackupStatus::Ready);
    assert_eq!(done.archive_size, Some(1000));
    assert!(done.pinned, "the pin set while it was made is kept");
    let other = record("app", 9, t(10));
    assert_eq!(
        catalog.complete_backup(&other).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_schema_3_backup_in_progress_reads_as_creating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap())
                .unwrap();
        }
        conn.execute(
            "INSERT INTO backups (id, target, kind, status, created_at) VALUES (?1, 'app', 'manual', 'in_progress', 1)",
            [BackupId::from_parts(5, 5).to_string()],
        )
        .unwrap();
    }
    let catalog = Catalog::open(&path).unwrap();
    let r = catalog
        .get_backup(&BackupId::from_parts(5, 5))
        .unwrap()
        .unwrap();
    assert_eq!(r.status, BackupStatus::Creating);
    assert!(r.component_kinds.is_empty());
}

#[test]
fn processes_opening_a_new_catalog_at_once_migrate_it_once() {
    // Each thread opens its own connection, as separate processes do.
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Catalog::open(&path).map(|c| c.schema_version().unwrap())
                })
            })
            .collect();
        for t in threads {
            let version = t.join().unwrap();
            assert_eq!(version.unwrap(), SCHEMA_VERSION, "round {round}");
        }
    }
}

#[test]
fn a_dead_job_is_ended_once_and_the_signer_is_remembered() {
    let catalog = Catalog::in_memory().unwrap();
    let job = Job::new("job_1", JobKind::Backup, "app", t(0))
        .apply(&Event::Start, t(1))
        .unwrap();
    catalog.put_job(&job).unwrap();
    let unfinished = catalog.unfinished_jobs().unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].job, job);
    let ended = catalog
        .end_unfinished("job_1", &Event::Interrupted, t(5))
        .unwrap()
        .unwrap();
    assert_eq!(ended.state, JobState::Failed);
    assert!(
        catalog
            .end_unfinished("job_1", &Event::Interrupted, t(6))
            .unwrap()
            .is_none(),
        "a second recovery finds it ended"
    );
    assert!(catalog.unfinished_jobs().unwrap().is_empty());

    assert_eq!(catalog.recorded_signer().unwrap(), None);
    catalog.record_signer("k1", t(1)).unwrap();
    catalog.record_signer("k2", t(2)).unwrap();
    assert_eq!(catalog.recorded_signer().unwrap().as_deref(), Some("k2"));
}
