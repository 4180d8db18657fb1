//! The job state machine of Cairn: states, events, transitions, progress and
//! idempotency, with no I/O and no clock.
//!
//! A job is data ([`Job`]) that changes only through
//! [`Job::apply`]`(&event, now)`, which returns the next job or an
//! [`IllegalTransition`]. The engine's async runner feeds it events (start,
//! progress, succeed, fail, cancel request, cancelled, timeout, interrupted by
//! a restart) and stores each result in the catalog; the server returns the
//! same record, whose serde field names are stable.
//!
//! ```text
//! queued ──start──▶ running ──succeed──▶ succeeded
//!   │                 │  │
//!   │                 │  └──fail / timeout / interrupted──▶ failed
//!   │                 └──cancel_request, then cancelled──▶ cancelled
//!   ├──cancel_request──▶ cancelled
//!   └──fail / interrupted──▶ failed
//! ```
//!
//! - [`Progress`] never goes backwards, its percent stays in 0..=100 and
//!   reaches 100 only on success; rate and ETA are computed from the clock
//!   passed in.
//! - [`JobKind::is_mutating`] and [`JobKind::locks_config`] say which jobs are
//!   exclusive on a target and which lock its configuration.
//! - [`Job::restore_outcome`] and [`RestoreStatus::of`] derive the restore
//!   outcome and the per-target restore status.
//! - [`idempotency::check`] decides whether a keyed request starts a job,
//!   replays one, or conflicts.
//!
//! ```
//! use cairn_job::{Event, Job, JobKind, JobState, ProgressUpdate};
//! use jiff::Timestamp;
//!
//! let t0: Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
//! let job = Job::new("job_1", JobKind::Backup, "app", t0);
//! let job = job.apply(&Event::Start, t0)?;
//! let update = ProgressUpdate { total_bytes: Some(1000), processed_bytes: Some(400), ..Default::default() };
//! let job = job.apply(&Event::Progress(update), "2026-11-20T10:00:02Z".parse().unwrap())?;
//! assert_eq!((job.progress.percent, job.progress.bytes_per_second), (40, Some(200)));
//! let done = job.apply(&Event::Succeed { result: None }, "2026-11-20T10:00:05Z".parse().unwrap())?;
//! assert_eq!(done.state, JobState::Succeeded);
//! // Terminal states are final.
//! assert!(done.apply(&Event::CancelRequest, "2026-11-20T10:00:06Z".parse().unwrap()).is_err());
//! # Ok::<(), cairn_job::IllegalTransition>(())
//! ```

pub mod idempotency;
mod kind;
mod outcome;
mod progress;
mod restore;
mod state;

pub use idempotency::{Fingerprint, IdempotencyKey};
pub use kind::JobKind;
pub use outcome::{
    BackupResult, JobResult, PruneReport, RestorePreview, RestoreResult, Restored, UnknownTier,
    UploadResult, VerifyReport, VerifyTier,
};
pub use progress::{Phase, Progress, ProgressUpdate};
pub use restore::{RestoreOutcome, RestoreStatus, RestoreStatusKind};
pub use state::{
    Committed, DEFAULT_TIMEOUT, Event, IllegalTransition, Job, JobError, JobState, Resource,
    ResourceKind,
};
