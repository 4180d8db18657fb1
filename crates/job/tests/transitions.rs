//! Every legal and illegal transition, and the serde forms.

use cairn_job::{
    Committed, Event, IllegalTransition, Job, JobError, JobKind, JobState, Phase, ProgressUpdate,
    Resource, RestoreOutcome, RestoreStatus, RestoreStatusKind,
};
use jiff::{SignedDuration, Timestamp};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + secs).unwrap()
}

fn fail(partial: bool) -> Event {
    Event::Fail {
        error: JobError::new("storage", "the bucket is gone"),
        partial,
    }
}

fn progress() -> Event {
    Event::Progress(ProgressUpdate {
        processed_bytes: Some(10),
        total_bytes: Some(100),
        ..ProgressUpdate::default()
    })
}

/// A job of `kind` brought to `state` (with a cancel requested if `cancel`).
fn job_in(kind: JobKind, state: JobState, cancel: bool) -> Job {
    let queued = Job::new("job_1", kind, "app", t(0));
    let running = || {
        let j = queued.apply(&Event::Start, t(1)).unwrap();
        if cancel {
            j.apply(&Event::CancelRequest, t(2)).unwrap()
        } else {
            j
        }
    };
    match state {
        JobState::Queued => queued.clone(),
        JobState::Running => running(),
        JobState::Succeeded => running()
            .apply(&Event::Succeed { result: None }, t(3))
            .unwrap(),
        JobState::Failed => running().apply(&fail(false), t(3)).unwrap(),
        JobState::Cancelled => queued.apply(&Event::CancelRequest, t(3)).unwrap(),
        _ => unreachable!(),
    }
}

fn events() -> Vec<Event> {
    vec![
        Event::Start,
        progress(),
        Event::Succeed { result: None },
        fail(false),
        fail(true),
        Event::CancelRequest,
        Event::Cancelled,
        Event::Timeout,
        Event::Interrupted,
        after_commit(None),
        after_commit(Some("the post-restore hook")),
    ]
}

fn after_commit(missed: Option<&str>) -> Event {
    Event::InterruptedAfterCommit(Committed {
        done: "the restore of bkp_1 is in place".to_owned(),
        missed: missed.map(str::to_owned),
    })
}

/// The expected next state, or `None` if the event is illegal.
fn expected(
    kind: JobKind,
    from: JobState,
    cancel: bool,
    event: &Event,
    overdue: bool,
) -> Option<JobState> {
    use JobState::*;
    match (from, event) {
        (Succeeded | Failed | Cancelled, _) => None,
        (Queued, Event::Start) => Some(Running),
        (Queued, Event::Fail { partial: false, .. } | Event::Interrupted) => Some(Failed),
        (Queued, Event::CancelRequest) => Some(Cancelled),
        (Queued, _) => None,
        (Running, Event::Start) => None,
        (Running, Event::Progress(_) | Event::CancelRequest) => Some(Running),
        (Running, Event::Succeed { .. }) => Some(Succeeded),
        (Running, Event::Fail { partial, .. }) => (!partial || kind.is_restore()).then_some(Failed),
        (Running, Event::Cancelled) => cancel.then_some(Cancelled),
        (Running, Event::Timeout) => overdue.then_some(Failed),
        (Running, Event::Interrupted | Event::InterruptedAfterCommit(_)) => Some(Failed),
        _ => unreachable!(),
    }
}

#[test]
fn every_transition() {
    let mut checked = 0;
    for kind in [JobKind::Backup, JobKind::Restore] {
        for from in JobState::ALL {
            for cancel in [false, true] {
                if cancel && from != JobState::Running {
                    continue;
                }
                let job = job_in(kind, from, cancel);
                for event in events() {
                    for (now, overdue) in [(t(60), false), (t(3 * 3600), true)] {
                        let want = expected(kind, from, cancel, &event, overdue);
                        let got = job.apply(&event, now);
                        match (want, &got) {
                            (Some(state), Ok(next)) => {
                                assert_eq!(next.state, state, "{kind} {from} {}", event.name());
                                assert_eq!(next.updated_at, now);
                                assert_eq!(next.finished_at.is_some(), state.is_terminal());
                            }
                            (
                                None,
                                Err(IllegalTransition {
                                    from: f, event: e, ..
                                }),
                            ) => {
                                assert_eq!((*f, *e), (from, event.name()));
                            }
                            _ => panic!(
                                "{kind} {from} (cancel {cancel}) + {} at overdue={overdue}: want {want:?}, got {got:?}",
                                event.name()
                            ),
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 6 * events().len() * 2);
}

#[test]
fn illegal_transitions_say_why() {
    let done = job_in(JobKind::Backup, JobState::Succeeded, false);
    let err = done.apply(&Event::CancelRequest, t(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job is succeeded: `cancel_request` is not allowed (the job has ended)"
    );
    let running = job_in(JobKind::Backup, JobState::Running, false);
    let err = running.apply(&Event::Timeout, t(10)).unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
}

#[test]
fn cancel_of_a_running_job_is_cooperative() {
    let running = job_in(JobKind::Backup, JobState::Running, false);
    let flagged = running.apply(&Event::CancelRequest, t(5)).unwrap();
    assert_eq!(flagged.state, JobState::Running);
    assert!(flagged.cancel_requested);
    // Asking twice changes nothing but the time.
    let twice = flagged.apply(&Event::CancelRequest, t(6)).unwrap();
    assert_eq!(
        (twice.state, twice.cancel_requested),
        (JobState::Running, true)
    );
    let stopped = twice.apply(&Event::Cancelled, t(7)).unwrap();
    assert_eq!(stopped.state, JobState::Cancelled);
    assert_eq!(stopped.finished_at, Some(t(7)));
    // A job that finished before seeing the request still succeeded.
    let done = twice.apply(&Event::Succeed { result: None }, t(7)).unwrap();
    assert_eq!(done.state, JobState::Succeeded);
}

#[test]
fn timeouts_and_interruptions_explain_themselves() {
    let job = Job::new("job_2", JobKind::Verify, "app", t(0))
        .with_timeout(SignedDuration::from_mins(5))
        .apply(&Event::Start, t(10))
        .unwrap();
    assert_eq!(job.deadline(), Some(t(310)));
    assert!(!job.is_overdue(t(309)));
    assert!(job.is_overdue(t(310)));
    assert!(job.apply(&Event::Timeout, t(309)).is_err());
    let timed_out = job.apply(&Event::Timeout, t(310)).unwrap();
    let error = timed_out.error.unwrap();
    assert_eq!(error.code, "timeout");
    assert_eq!(error.message, "the job ran longer than 5m");

    let interrupted = job.apply(&Event::Interrupted, t(20)).unwrap();
    let error = interrupted.error.unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(error.message.contains("running"), "{}", error.message);
}

#[test]
fn a_clock_that_steps_back_does_not_move_timestamps_back() {
    let job = job_in(JobKind::Backup, JobState::Running, false);
    let next = job.apply(&progress(), t(-100)).unwrap();
    assert_eq!(next.updated_at, job.updated_at);
}

#[test]
fn success_completes_progress_and_keeps_the_result() {
    let job = job_in(JobKind::Backup, JobState::Running, false)
        .apply(&progress(), t(2))
        .unwrap();
    assert_eq!(job.progress.percent, 10);
    let mut made = cairn_job::BackupResult::default();
    made.backup_id = "bkp_01".to_owned();
    let result = cairn_job::JobResult::Backup(made);
    let done = job
        .apply(
            &Event::Succeed {
                result: Some(Box::new(result.clone())),
            },
            t(4),
        )
        .unwrap();
    assert_eq!(done.progress.percent, 100);
    assert_eq!(done.progress.phase, Phase::Finishing);
    assert_eq!(done.result, Some(result));
}

#[test]
fn restore_outcomes_and_status() {
    assert_eq!(RestoreStatus::of(None).status, RestoreStatusKind::NotRun);
    let backup_job = job_in(JobKind::Backup, JobState::Succeeded, false);
    assert_eq!(backup_job.restore_outcome(), None);
    assert_eq!(
        RestoreStatus::of(Some(&backup_job)).status,
        RestoreStatusKind::NotRun
    );

    let cases = [
        (JobState::Queued, false, None, RestoreStatusKind::Started),
        (JobState::Running, false, None, RestoreStatusKind::Started),
        (
            JobState::Succeeded,
            false,
            Some(RestoreOutcome::Completed),
            RestoreStatusKind::Completed,
        ),
        (JobState::Failed, false, None, RestoreStatusKind::Failed),
        (
            JobState::Failed,
            true,
            Some(RestoreOutcome::CompletedWithErrors),
            RestoreStatusKind::CompletedWithErrors,
        ),
        (JobState::Cancelled, false, None, RestoreStatusKind::Failed),
    ];
    for kind in [JobKind::Restore, JobKind::Reset] {
        for (state, partial, outcome, status) in cases {
            let job = if partial {
                job_in(kind, JobState::Running, false)
                    .apply(&fail(true), t(9))
                    .unwrap()
            } else {
                job_in(kind, state, false)
            };
            assert_eq!(job.restore_outcome(), outcome, "{kind} {state}");
            let s = RestoreStatus::of(Some(&job));
            assert_eq!(s.status, status, "{kind} {state} {partial}");
            assert!(s.status_message.contains("job_1"), "{}", s.status_message);
            assert!(s.last_restore_time.is_some());
        }
    }
    let failed = job_in(JobKind::Restore, JobState::Running, false)
        .apply(&fail(true), t(9))
        .unwrap();
    let status = RestoreStatus::of(Some(&failed));
    assert_eq!(status.last_restore_time, Some(t(9)));
    assert_eq!(
        status.status_message,
        "restore job_1 applied some components and failed: the bucket is gone"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["status"], "completed_with_errors");
}

#[test]
fn stable_serde_forms() {
    let job = job_in(JobKind::Restore, JobState::Running, true)
        .apply(&progress(), t(3))
        .unwrap();
    let json = serde_json::to_value(&job).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cancel_requested",
            "committed",
            "created_at",
            "error",
            "finished_at",
            "id",
            "kind",
            "partial",
            "progress",
            "resource",
            "result",
            "started_at",
            "state",
            "target",
            "timeout",
            "updated_at"
        ]
    );
    assert_eq!(json["state"], "running");
    assert_eq!(json["kind"], "restore");
    assert_eq!(json["timeout"], 7200);
    assert_eq!(json["progress"]["percent"], 10);
    assert_eq!(json["progress"]["phase"], "preparing");
    let mut pkeys: Vec<&str> = json["progress"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    pkeys.sort_unstable();
    assert_eq!(
        pkeys,
        [
            "bytes_per_second",
            "eta_seconds",
            "percent",
            "phase",
            "processed_bytes",
            "processed_files",
            "total_bytes",
            "total_files"
        ]
    );
    let back: Job = serde_json::from_value(json).unwrap();
    assert_eq!(back, job);

    let event: Event =
        serde_json::from_str(r#"{"event":"fail","error":{"code":"x","message":"y"}}"#).unwrap();
    assert_eq!(
        event,
        Event::Fail {
            error: JobError::new("x", "y"),
            partial: false
        }
    );
    let event: Event = serde_json::from_str(r#"{"event":"progress","processed_files":3}"#).unwrap();
    assert_eq!(
        event,
        Event::Progress(ProgressUpdate {
            processed_files: Some(3),
            ..ProgressUpdate::default()
        })
    );
    assert!(
        serde_json::from_str::<Job>(&serde_json::to_string(&job).unwrap().replace("7200", "0"))
            .is_err()
    );
}

#[test]
fn a_finished_job_keeps_its_final_counts_and_mean_rate() {
    let job = job_in(JobKind::Backup, JobState::Running, false)
        .apply(
            &Event::Progress(ProgressUpdate {
                total_bytes: Some(1000),
                total_files: Some(4),
                processed_bytes: Some(400),
                processed_files: Some(1),
                ..ProgressUpdate::default()
            }),
            t(2),
        )
        .unwrap()
        .apply(
            &Event::Progress(ProgressUpdate {
                processed_bytes: Some(900),
                processed_files: Some(3),
                ..ProgressUpdate::default()
            }),
            t(3),
        )
        .unwrap();
    // Started at t(1): 900 bytes in 10 s.
    let done = job.apply(&Event::Succeed { result: None }, t(11)).unwrap();
    let p = done.progress;
    assert_eq!((p.processed_bytes, p.total_bytes), (900, Some(900)));
    assert_eq!((p.processed_files, p.total_files), (3, Some(3)));
    assert_eq!(
        (p.percent, p.bytes_per_second, p.eta_seconds),
        (100, Some(90), Some(0))
    );

    let failed = job.apply(&fail(false), t(11)).unwrap();
    let p = failed.progress;
    assert_eq!((p.processed_bytes, p.total_bytes), (900, Some(1000)));
    assert_eq!((p.bytes_per_second, p.eta_seconds), (Some(90), None));

    // A job that never counted anything keeps no totals.
    let prune = job_in(JobKind::Prune, JobState::Running, false)
        .apply(&Event::Succeed { result: None }, t(5))
        .unwrap();
    assert_eq!(prune.progress.total_bytes, None);
}

#[test]
fn a_restore_interrupted_after_its_commit_completed() {
    let running =
        job_in(JobKind::Restore, JobState::Running, false).with_resource(Resource::backup("bkp_1"));
    let done = running.apply(&after_commit(None), t(5)).unwrap();
    assert_eq!(done.state, JobState::Failed);
    assert!(done.committed && !done.partial);
    assert_eq!(done.restore_outcome(), Some(RestoreOutcome::Completed));
    let error = done.error.clone().unwrap();
    assert_eq!(error.code, "interrupted");
    assert!(
        error
            .message
            .contains("after its commit point: the restore of bkp_1 is in place"),
        "{}",
        error.message
    );
    let status = RestoreStatus::of(Some(&done));
    assert_eq!(status.status, RestoreStatusKind::Completed);
    assert!(
        status.status_message.contains("commit point"),
        "{}",
        status.status_message
    );

    let hookless = running
        .apply(&after_commit(Some("the post-restore hook")), t(5))
        .unwrap();
    assert!(hookless.committed && hookless.partial);
    assert_eq!(
        RestoreStatus::of(Some(&hookless)).status,
        RestoreStatusKind::CompletedWithErrors
    );
    assert!(
        hookless
            .error
            .unwrap()
            .message
            .ends_with("the post-restore hook did not run"),
    );

    // A backup past its commit point is not a partial restore.
    let backup = job_in(JobKind::Backup, JobState::Running, false)
        .apply(&after_commit(Some("retention")), t(5))
        .unwrap();
    assert!(backup.committed && !backup.partial);
    assert_eq!(backup.restore_outcome(), None);

    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(
        json["resource"],
        serde_json::json!({"type": "backup", "id": "bkp_1"})
    );
    assert_eq!(json["committed"], true);
    // A record stored before these fields existed reads with their defaults.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("committed");
    old.as_object_mut().unwrap().remove("resource");
    let back: Job = serde_json::from_value(old).unwrap();
    assert!(!back.committed && back.resource.is_none());
}
