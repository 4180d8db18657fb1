//! The job record and its transitions.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::kind::JobKind;
use crate::outcome::JobResult;
use crate::progress::{Progress, ProgressUpdate};

/// How long a job may run before it times out, unless told otherwise.
pub const DEFAULT_TIMEOUT: SignedDuration = SignedDuration::from_hours(2);

/// Where a job is in its life.
///
/// ```text
/// queued ──start──▶ running ──succeed──▶ succeeded
///   │                 │  │
///   │                 │  └──fail / timeout / interrupted──▶ failed
///   │                 └──cancel (requested), then cancelled──▶ cancelled
///   ├──cancel──▶ cancelled
///   └──fail / timeout / interrupted──▶ failed
/// ```
///
/// `succeeded`, `failed` and `cancelled` are terminal: no event leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error, timed out, or interrupted by a restart.
    Failed,
    /// Stopped on request before finishing; left nothing partial behind.
    Cancelled,
}

impl JobState {
    /// Every state.
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether no event can leave this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state's name as serialized (`"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed: a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// A stable code: `timeout`, `interrupted`, or one chosen by the code
    /// running the job (`verification_failed`, `storage`, …).
    pub code: String,
    /// What happened, for an operator.
    pub message: String,
}

impl JobError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The runner picked the job up.
    Start,
    /// The runner reports progress.
    Progress(ProgressUpdate),
    /// The work is done.
    Succeed {
        /// What the job produced (a backup id, a verification report, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Box<JobResult>>,
    },
    /// The work failed.
    Fail {
        /// Why.
        error: JobError,
        /// For a restore: some components were applied and could not all be
        /// rolled back, so the outcome is `completed_with_errors`.
        #[serde(default)]
        partial: bool,
    },
    /// Someone asked to cancel. A queued job is cancelled at once; a running
    /// one is flagged and stops at its next checkpoint.
    CancelRequest,
    /// The runner stopped after a cancel request and cleaned up.
    Cancelled,
    /// The job passed its deadline.
    Timeout,
    /// The process running the job ended (crash, restart) before it finished.
    Interrupted,
    /// The process running the job ended after the job's commit point (a
    /// backup's seal published, a restore's renames all done) but before the
    /// job recorded its end: start-up recovery found the work in place.
    InterruptedAfterCommit(Committed),
}

/// What recovery found in place after a job's process ended past its commit
/// point ([`Event::InterruptedAfterCommit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// What is in place, for the job's error message (`"backup bkp_… is
    /// sealed and ready"`).
    pub done: String,
    /// What the job still had to do and did not (`"the post-restore hook"`).
    /// For a restore or reset, something missing makes the outcome
    /// `completed_with_errors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<String>,
}

impl Event {
    /// The event's name as serialized (`"cancel_request"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Progress(_) => "progress",
            Self::Succeed { .. } => "succeed",
            Self::Fail { .. } => "fail",
            Self::CancelRequest => "cancel_request",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
            Self::InterruptedAfterCommit(_) => "interrupted_after_commit",
        }
    }
}

/// An event that does not apply to the job's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job is {from}: `{event}` is not allowed ({why})")]
pub struct IllegalTransition {
    /// The job's state.
    pub from: JobState,
    /// The event's name.
    pub event: &'static str,
    /// Why not.
    pub why: &'static str,
}

/// A job: what it is, where it stands, how far it got and how it ended.
///
/// This is the record the catalog stores and the server returns; its field
/// names are stable. It changes only through [`Job::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id, chosen by its creator.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// The target it works on.
    pub target: String,
    /// Where it stands.
    pub state: JobState,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// When anything last changed.
    pub updated_at: Timestamp,
    /// How long it may run once started.
    #[serde(with = "seconds")]
    pub timeout: SignedDuration,
    /// Whether a cancel was requested while it ran.
    pub cancel_requested: bool,
    /// How far it got.
    pub progress: Progress,
    /// Why it failed.
    pub error: Option<JobError>,
    /// For a restore that failed after applying some components.
    pub partial: bool,
    /// For a restore whose process stopped after every component was in
    /// place ([`Event::InterruptedAfterCommit`]): the job failed, the restore
    /// did not.
    #[serde(default)]
    pub committed: bool,
    /// The backup the job makes (backup, upload) or reads (restore, verify,
    /// reset), known from the start.
    #[serde(default)]
    pub resource: Option<Resource>,
    /// What it produced.
    pub result: Option<JobResult>,
}

/// What a job works on: `{"type": "backup", "id": "bkp_…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// The kind of thing (`backup`).
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    /// Its id.
    pub id: String,
}

impl Resource {
    /// A backup.
    pub fn backup(id: impl Into<String>) -> Self {
        Self {
            kind: ResourceKind::Backup,
            id: id.into(),
        }
    }
}

/// The kinds of [`Resource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResourceKind {
    /// A backup.
    Backup,
}

mod seconds {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let secs = i64::deserialize(d)?;
        if secs <= 0 {
            return Err(serde::de::Error::custom("timeout must be positive"));
        }
        Ok(SignedDuration::from_secs(secs))
    }
}

impl Job {
    /// A queued job with the default timeout (2 hours).
    pub fn new(
        id: impl Into<String>,
        kind: JobKind,
        target: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: id.into(),
            kind,
            target: target.into(),
            state: JobState::Queued,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            timeout: DEFAULT_TIMEOUT,
            cancel_requested: false,
            progress: Progress::default(),
            error: None,
            partial: false,
            committed: false,
            resource: None,
            result: None,
        }
    }

    /// Sets what the job works on.
    #[must_use]
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the timeout, in whole seconds; less than one second counts as one.
    #[must_use]
    pub fn with_timeout(mut self, timeout: SignedDuration) -> Self {
        self.timeout = SignedDuration::from_secs(timeout.as_secs().max(1));
        self
    }

    /// When a running job times out.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.started_at
            .map(|at| at.checked_add(self.timeout).unwrap_or(Timestamp::MAX))
    }

    /// Whether a running job has passed its deadline at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.state == JobState::Running && self.deadline().is_some_and(|d| now >= d)
    }

    /// The job after `event` at `now`, or why the event does not apply.
    ///
    /// Pure: `self` is not changed, so an illegal event leaves the job as it
    /// was. Timestamps never run backwards: a `now` earlier than the job's last
    /// change is taken as that change's instant.
    ///
    /// # Errors
    ///
    /// [`IllegalTransition`] for an event the job's state does not allow (any event on a
    /// terminal state, `progress` on a queued job, ...).
    pub fn apply(&self, event: &Event, now: Timestamp) -> Result<Self, IllegalTransition> {
        let illegal = |why| IllegalTransition {
            from: self.state,
            event: event.name(),
            why,
        };
        if self.state.is_terminal() {
            return Err(illegal("the job has ended"));
        }
        let now = now.max(self.updated_at);
        let mut next = self.clone();
        next.updated_at = now;
        match (self.state, event) {
            (JobState::Queued, Event::Start) => {
                next.state = JobState::Running;
                next.started_at = Some(now);
                next.progress.phase = crate::Phase::Preparing;
            }
            (JobState::Running, Event::Start) => return Err(illegal("the job already runs")),
            (JobState::Running, Event::Progress(update)) => {
                let started = self.started_at.unwrap_or(self.created_at);
                next.progress.apply(update, started, now);
            }
            (JobState::Queued, Event::Progress(_)) => {
                return Err(illegal("the job has not started"));
            }
            // A cancel requested too late does not stop a job that finished:
            // its work is complete and consistent.
            (JobState::Running, Event::Succeed { result }) => {
                next.state = JobState::Succeeded;
                next.progress
                    .finish(self.started_at.unwrap_or(self.created_at), now);
                next.result = result.as_deref().cloned();
                next.finished_at = Some(now);
            }
            (JobState::Queued, Event::Succeed { .. }) => {
                return Err(illegal("the job has not started"));
            }
            (_, Event::Fail { error, partial }) => {
                if *partial && !(self.kind.is_restore() && self.state == JobState::Running) {
                    return Err(illegal("only a running restore can fail part way"));
                }
                next.state = JobState::Failed;
                next.error = Some(error.clone());
                next.partial = *partial;
                next.finished_at = Some(now);
            }
            (JobState::Queued, Event::CancelRequest) => {
                next.cancel_requested = true;
                next.state = JobState::Cancelled;
                next.finished_at = Some(now);
            }
            (JobState::Running, Event::CancelRequest) => next.cancel_requested = true,
            (JobState::Running, Event::Cancelled) => {
                if !self.cancel_requested {
                    return Err(illegal("no cancel was requested"));
                }
                next.state = JobState::Cancelled;
                next.finished_at = Some(now);
            }
            (JobState::Queued, Event::Cancelled) => {
                return Err(illegal("the job has not started"));
            }
            (JobState::Running, Event::Timeout) => {
                if !self.is_overdue(now) {
                    return Err(illegal("the deadline has not passed"));
                }
                next.state = JobState::Failed;
                next.error = Some(JobError::new(
                    "timeout",
                    format!("the job ran longer than {:#}", self.timeout),
                ));
                next.finished_at = Some(now);
            }
            (JobState::Queued, Event::Timeout) => {
                return Err(illegal("the job has not started"));
            }
            (_, Event::Interrupted) => {
                next.state = JobState::Failed;
                next.error = Some(JobError::new(
                    "interrupted",
                    format!(
                        "the process running the job stopped while it was {}",
                        self.state
                    ),
                ));
                next.finished_at = Some(now);
            }
            (JobState::Running, Event::InterruptedAfterCommit(c)) => {
                next.state = JobState::Failed;
                let missed = c
                    .missed
                    .as_ref()
                    .map(|m| format!("; {m} did not run"))
                    .unwrap_or_default();
                next.error = Some(JobError::new(
                    "interrupted",
                    format!(
                        "the process running the job stopped after its commit point: {}{missed}",
                        c.done
                    ),
                ));
                next.committed = true;
                next.partial = self.kind.is_restore() && c.missed.is_some();
                next.finished_at = Some(now);
            }
            (JobState::Queued, Event::InterruptedAfterCommit(_)) => {
                return Err(illegal("the job has not started"));
            }
            (JobState::Succeeded | JobState::Failed | JobState::Cancelled, _) => {
                unreachable!("terminal states return early")
            }
        }
        if next.state.is_terminal() && next.state != JobState::Succeeded {
            let started = self.started_at.unwrap_or(self.created_at);
            next.progress.stop(started, now);
        }
        Ok(next)
    }
}
