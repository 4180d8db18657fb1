//! What a job does, and what it locks.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobKind {
    /// Capture a target and publish a new backup.
    Backup,
    /// Put a backup's components back onto the target (or into another directory).
    Restore,
    /// Check a backup's seal, manifest and content.
    Verify,
    /// Ingest an archive made elsewhere as a backup of the target.
    Upload,
    /// Apply the retention policy: soft-delete and purge.
    Prune,
    /// Restore the target's factory backup, or empty its components.
    Reset,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Backup,
        Self::Restore,
        Self::Verify,
        Self::Upload,
        Self::Prune,
        Self::Reset,
    ];

    /// Whether the job changes the target or its set of backups. At most one
    /// mutating job runs per target; a second is refused with a conflict.
    ///
    /// Only `verify` is not mutating: it reads one backup under a lease.
    pub fn is_mutating(self) -> bool {
        !matches!(self, Self::Verify)
    }

    /// Whether the target's configuration (schedule, retention) is locked
    /// while the job runs: backups and everything that rewrites the target's
    /// files (restore, reset).
    pub fn locks_config(self) -> bool {
        matches!(self, Self::Backup | Self::Restore | Self::Reset)
    }

    /// Whether the job puts files back onto a target, and so has a restore
    /// outcome and counts for the target's restore status.
    pub fn is_restore(self) -> bool {
        matches!(self, Self::Restore | Self::Reset)
    }

    /// The kind's name as serialized (`"backup"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Verify => "verify",
            Self::Upload => "upload",
            Self::Prune => "prune",
            Self::Reset => "reset",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks() {
        let mutating: Vec<_> = JobKind::ALL
            .into_iter()
            .filter(|k| k.is_mutating())
            .collect();
        assert_eq!(
            mutating,
            [
                JobKind::Backup,
                JobKind::Restore,
                JobKind::Upload,
                JobKind::Prune,
                JobKind::Reset
            ]
        );
        for kind in JobKind::ALL {
            // Whatever locks the configuration is also exclusive on the target.
            assert!(!kind.locks_config() || kind.is_mutating(), "{kind}");
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
    }
}
