//! Restore outcomes and the per-target restore status.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Job, JobState};

/// How a finished restore ended, when it changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// Every selected component was restored.
    Completed,
    /// Some components were applied and the failure could not roll all of them back.
    CompletedWithErrors,
}

/// The restore status of a target, as SPEC §7 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatusKind {
    /// The target was never restored.
    NotRun,
    /// A restore is queued or running.
    Started,
    /// The last restore failed (or was cancelled) and left the target as it was.
    Failed,
    /// The last restore completed.
    Completed,
    /// The last restore applied some components and failed on others.
    CompletedWithErrors,
}

/// The last restore of a target: when, how it ended, and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStatus {
    /// When the last restore finished (or started, while it runs); `None` if never.
    pub last_restore_time: Option<Timestamp>,
    /// How it ended.
    pub status: RestoreStatusKind,
    /// A sentence for operators.
    pub status_message: String,
}

impl Job {
    /// The outcome of a finished restore or reset job, `None` for other kinds,
    /// for unfinished jobs, and for restores that failed without changing anything.
    pub fn restore_outcome(&self) -> Option<RestoreOutcome> {
        if !self.kind.is_restore() {
            return None;
        }
        match self.state {
            JobState::Succeeded => Some(RestoreOutcome::Completed),
            JobState::Failed if self.partial => Some(RestoreOutcome::CompletedWithErrors),
            JobState::Failed if self.committed => Some(RestoreOutcome::Completed),
            _ => None,
        }
    }
}

impl RestoreStatus {
    /// The status of a target whose latest restore or reset job is `last`
    /// (`None` if it never had one).
    pub fn of(last: Option<&Job>) -> Self {
        let Some(job) = last.filter(|j| j.kind.is_restore()) else {
            return Self {
                last_restore_time: None,
                status: RestoreStatusKind::NotRun,
                status_message: "never restored".to_owned(),
            };
        };
        let error = || {
            job.error
                .as_ref()
                .map_or_else(String::new, |e| format!(": {}", e.message))
        };
        let (status, status_message) = match job.state {
            JobState::Queued => (
                RestoreStatusKind::Started,
                format!("{} {} queued", job.kind, job.id),
            ),
            JobState::Running => (
                RestoreStatusKind::Started,
                format!("{} {} running", job.kind, job.id),
            ),
            JobState::Succeeded => (
                RestoreStatusKind::Completed,
                format!("{} {} completed", job.kind, job.id),
            ),
            JobState::Failed if job.partial => (
                RestoreStatusKind::CompletedWithErrors,
                format!(
                    "{} {} applied some components and failed{}",
                    job.kind,
                    job.id,
                    error()
                ),
            ),
            JobState::Failed if job.committed => (
                RestoreStatusKind::Completed,
                format!("{} {} completed{}", job.kind, job.id, error()),
            ),
            JobState::Failed => (
                RestoreStatusKind::Failed,
                format!("{} {} failed, nothing changed{}", job.kind, job.id, error()),
            ),
            JobState::Cancelled => (
                RestoreStatusKind::Failed,
                format!("{} {} cancelled, nothing changed", job.kind, job.id),
            ),
        };
        Self {
            last_restore_time: Some(job.finished_at.or(job.started_at).unwrap_or(job.created_at)),
            status,
            status_message,
        }
    }
}
