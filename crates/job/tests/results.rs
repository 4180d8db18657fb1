//! Typed job results read the records the catalog stored before they were
//! typed, and write the same fields back.

use cairn_job::{Job, JobKind, JobResult, Restored, VerifyTier};
use serde_json::{Value, json};

/// A succeeded job of `kind` whose stored `result` is `result`, as the
/// catalog holds it (the record of version 0.1 before results were typed).
fn stored(kind: &str, result: &Value) -> Value {
    json!({
        "id": "job_01", "kind": kind, "target": "web", "state": "succeeded",
        "created_at": "2026-11-30T10:00:00Z", "started_at": "2026-11-30T10:00:00Z",
        "finished_at": "2026-11-30T10:00:05Z", "updated_at": "2026-11-30T10:00:05Z",
        "timeout": 7200, "cancel_requested": false,
        "progress": {"phase": "finishing", "total_files": 3, "processed_files": 3,
            "total_bytes": 8205, "processed_bytes": 8205, "percent": 100,
            "bytes_per_second": 1641, "eta_seconds": 0},
        "error": null, "partial": false, "result": result
    })
}

fn verify_report() -> Value {
    json!({"backup_id": "bkp_01", "tier": "sample", "ok": true,
        "message": "2 of 3 files checked by range reads", "entries_checked": 2,
        "bytes_read": 4096, "duration_ms": 12})
}

fn backup() -> Value {
    json!({"backup_id": "bkp_01", "archive_key": "targets/web/backups/bkp_01.tar.zst",
        "size": 1234, "sha256": "ab".repeat(32), "entries": 3, "data_bytes": 8205,
        "components": ["site", "db"], "skipped": ["site/sock"], "verified": verify_report(),
        "pruned": ["bkp_00"]})
}

#[test]
fn every_kind_of_stored_result_reads_typed_and_writes_the_same_fields() {
    let mut upload = backup();
    let extra =
        json!({"source_format": "gzip", "source_size": 99, "source_sha256": "cd".repeat(32)});
    upload
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let plan = json!({"now": "2026-11-30T10:00:00Z", "decisions": [
        {"id": "bkp_01", "created_at": "2026-11-30T09:00:00Z", "action": "keep",
         "reasons": [{"rule": "newest_ready"}]}]});
    let cases = [
        ("backup", backup()),
        ("upload", upload),
        ("verify", verify_report()),
        (
            "prune",
            json!({"plan": plan, "deleted": [], "purged": ["bkp_00"], "dry_run": false}),
        ),
        (
            "restore",
            json!({"backup_id": "bkp_01", "target": "web", "components": ["site"],
            "kept": ["/srv/site.before-restore"], "post_hook_error": null,
            "outcome": "completed", "bytes_read": 4096}),
        ),
        (
            "restore",
            json!({"backup_id": "bkp_01", "target": "web", "components": ["site"],
            "to": "/tmp/look", "entries": 3, "bytes": 8205, "bytes_read": 5000}),
        ),
        (
            "restore",
            json!({"backup_id": "bkp_01", "target": "web", "components": ["site"],
            "dry_run": {"create": ["/srv/site/new"], "replace": [], "delete": ["/srv/site/old"],
            "unchanged": 2}, "bytes_read": 300}),
        ),
        (
            "reset",
            json!({"target": "web", "components": ["site"],
            "kept": ["/srv/site.before-restore"], "post_hook_error": "exit 1", "outcome": "completed"}),
        ),
    ];
    for (kind, result) in cases {
        let record = stored(kind, &result);
        let job: Job = serde_json::from_value(record.clone())
            .unwrap_or_else(|e| panic!("{kind}: {e}: {result}"));
        let typed = job.result.clone().unwrap();
        match (job.kind, &typed) {
            (JobKind::Backup, JobResult::Backup(b)) => {
                assert_eq!((b.size, b.entries, b.data_bytes), (1234, 3, 8205));
                assert_eq!(b.verified.as_ref().unwrap().tier, VerifyTier::Sample);
            }
            (JobKind::Upload, JobResult::Upload(u)) => {
                assert_eq!((u.backup.size, u.source_size), (1234, 99));
            }
            (JobKind::Verify, JobResult::Verify(v)) => assert!(v.ok),
            (JobKind::Prune, JobResult::Prune(p)) => assert_eq!(p.changed(), ["bkp_00"]),
            (JobKind::Restore | JobKind::Reset, JobResult::Restore(r)) => match &r.done {
                Restored::InPlace { kept, .. } => assert_eq!(kept.len(), 1),
                Restored::Into { entries, .. } => assert_eq!(*entries, 3),
                Restored::Preview { dry_run } => assert_eq!(dry_run.unchanged, 2),
                other => panic!("{other:?}"),
            },
            other => panic!("{kind} read as {other:?}"),
        }
        // Written back: the same fields, the same values (plus the fields
        // added since, with their defaults).
        let mut written = serde_json::to_value(&job).unwrap();
        let added = written.as_object_mut().unwrap();
        assert_eq!(added.remove("committed"), Some(json!(false)));
        assert_eq!(added.remove("resource"), Some(Value::Null));
        assert_eq!(written, record, "{kind}");
        assert_eq!(
            typed.backup_id(),
            result["backup_id"].as_str(),
            "{kind}: the backup it made or read"
        );
    }
}
