//! Random event sequences: terminal states are final, progress never goes
//! backwards, percent stays in 0..=100, timestamps only move forward.

use cairn_job::{Event, Job, JobError, JobKind, JobState, Phase, ProgressUpdate};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

fn arb_update() -> impl Strategy<Value = ProgressUpdate> {
    (
        prop::option::of(prop::sample::select(vec![
            Phase::Preparing,
            Phase::Archiving,
            Phase::Verifying,
            Phase::Swapping,
        ])),
        prop::option::of(0u64..1000),
        prop::option::of(0u64..1000),
        prop::option::of(0u64..1 << 40),
        prop::option::of(0u64..1 << 40),
    )
        .prop_map(
            |(phase, total_files, processed_files, total_bytes, processed_bytes)| ProgressUpdate {
                phase,
                total_files,
                processed_files,
                total_bytes,
                processed_bytes,
            },
        )
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => Just(Event::Start),
        8 => arb_update().prop_map(Event::Progress),
        1 => Just(Event::Succeed { result: None }),
        1 => any::<bool>().prop_map(|partial| Event::Fail {
            error: JobError::new("x", "failed"),
            partial,
        }),
        1 => Just(Event::CancelRequest),
        1 => Just(Event::Cancelled),
        1 => Just(Event::Timeout),
        1 => Just(Event::Interrupted),
        1 => proptest::option::of("[a-z ]{0,12}").prop_map(|missed| {
            Event::InterruptedAfterCommit(cairn_job::Committed {
                done: "in place".to_owned(),
                missed,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_sequences_keep_the_invariants(
        kind in prop::sample::select(JobKind::ALL.to_vec()),
        steps in prop::collection::vec((arb_event(), -30i64..4000), 0..40),
    ) {
        let t0 = Timestamp::from_second(1_795_000_000).unwrap();
        let mut job = Job::new("job", kind, "app", t0);
        let mut now = t0;
        for (event, dt) in steps {
            now = now.checked_add(SignedDuration::from_secs(dt)).unwrap();
            match job.apply(&event, now) {
                Ok(next) => {
                    prop_assert!(!job.state.is_terminal(), "left terminal {}", job.state);
                    prop_assert!(next.progress.processed_bytes >= job.progress.processed_bytes);
                    prop_assert!(next.progress.processed_files >= job.progress.processed_files);
                    prop_assert!(next.progress.percent >= job.progress.percent);
                    prop_assert!(next.progress.percent <= 100);
                    prop_assert!(next.progress.percent < 100 || next.state == JobState::Succeeded);
                    prop_assert!(next.updated_at >= job.updated_at);
                    if let Some(total) = next.progress.total_bytes {
                        prop_assert!(total >= next.progress.processed_bytes);
                    }
                    if let Some(total) = next.progress.total_files {
                        prop_assert!(total >= next.progress.processed_files);
                    }
                    prop_assert_eq!(next.finished_at.is_some(), next.state.is_terminal());
                    prop_assert_eq!(next.error.is_some(), next.state == JobState::Failed);
                    prop_assert!(!next.partial || kind.is_restore());
                    if let Some(started) = next.started_at {
                        prop_assert!(started >= next.created_at);
                    }
                    job = next;
                }
                Err(err) => {
                    prop_assert_eq!(err.from, job.state);
                    prop_assert_eq!(err.event, event.name());
                }
            }
            // The record survives a round trip through its stored form.
            let json = serde_json::to_string(&job).unwrap();
            prop_assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job.clone());
        }
    }
}
