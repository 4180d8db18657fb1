//! Progress of a running job: counts, percent, rate and ETA.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The step a job is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Waiting to run.
    #[default]
    Queued,
    /// Taking leases, reading the manifest, running pre-hooks.
    Preparing,
    /// Snapshotting databases and reading files.
    Capturing,
    /// Writing and uploading the archive (capture, compression and upload stream together).
    Archiving,
    /// Publishing the seal and recording the backup.
    Sealing,
    /// Reading an archive from the store.
    Downloading,
    /// Checking digests and signatures.
    Verifying,
    /// Unpacking into the staging area.
    Staging,
    /// Swapping restored components into place.
    Swapping,
    /// Running hook commands.
    Hooks,
    /// Applying retention.
    Pruning,
    /// Ingesting an uploaded archive.
    Ingesting,
    /// Releasing leases and cleaning up.
    Finishing,
}

/// A progress report from the code running a job.
///
/// Every field is optional: a report changes only what it names. Processed
/// counts that go backwards are ignored (the larger value is kept), and totals
/// that are smaller than what was already processed are raised to it, so a
/// job's progress never goes backwards whatever the reports say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProgressUpdate {
    /// The new phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The files the job will process, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_files: Option<u64>,
    /// The files processed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_files: Option<u64>,
    /// The bytes the job will process, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// The bytes processed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_bytes: Option<u64>,
}

/// How far a job has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// The current step.
    pub phase: Phase,
    /// Files to process, if known.
    pub total_files: Option<u64>,
    /// Files processed.
    pub processed_files: u64,
    /// Bytes to process, if known.
    pub total_bytes: Option<u64>,
    /// Bytes processed.
    pub processed_bytes: u64,
    /// 0 to 100. Never decreases; reaches 100 only when the job succeeds.
    pub percent: u8,
    /// Mean bytes per second since the job started.
    pub bytes_per_second: Option<u64>,
    /// Seconds left at the mean rate, when the total is known.
    pub eta_seconds: Option<u64>,
}

impl Progress {
    /// Folds a report in, measured at `now` for a job started at `started_at`.
    pub(crate) fn apply(&mut self, update: &ProgressUpdate, started_at: Timestamp, now: Timestamp) {
        if let Some(phase) = update.phase {
            self.phase = phase;
        }
        if let Some(n) = update.processed_files {
            self.processed_files = self.processed_files.max(n);
        }
        if let Some(n) = update.processed_bytes {
            self.processed_bytes = self.processed_bytes.max(n);
        }
        if let Some(n) = update.total_files {
            self.total_files = Some(n);
        }
        if let Some(n) = update.total_bytes {
            self.total_bytes = Some(n);
        }
        // A total is an estimate: never below what is already done.
        self.total_files = self.total_files.map(|t| t.max(self.processed_files));
        self.total_bytes = self.total_bytes.map(|t| t.max(self.processed_bytes));

        let fraction = match (self.total_bytes, self.total_files) {
            (Some(total), _) if total > 0 => Some((self.processed_bytes, total)),
            (_, Some(total)) if total > 0 => Some((self.processed_files, total)),
            _ => None,
        };
        if let Some((done, total)) = fraction {
            let pct = u128::from(done) * 100 / u128::from(total);
            // 100 means finished: a running job stops at 99.
            let pct = u8::try_from(pct.min(99)).unwrap_or(99);
            self.percent = self.percent.max(pct);
        }

        if let Some(rate) = mean_rate(self.processed_bytes, started_at, now) {
            self.bytes_per_second = Some(rate);
            self.eta_seconds = match self.total_bytes {
                Some(total) if rate > 0 => Some((total - self.processed_bytes).div_ceil(rate)),
                _ => None,
            };
        }
    }

    /// Marks the work complete at `now`: 100 %, nothing left, the totals
    /// equal to what was processed (they were estimates), and the mean rate
    /// over the whole run.
    pub(crate) fn finish(&mut self, started_at: Timestamp, now: Timestamp) {
        self.percent = 100;
        if self.total_files.is_some() || self.processed_files > 0 {
            self.total_files = Some(self.processed_files);
        }
        if self.total_bytes.is_some() || self.processed_bytes > 0 {
            self.total_bytes = Some(self.processed_bytes);
        }
        self.eta_seconds = Some(0);
        self.phase = Phase::Finishing;
        self.bytes_per_second = mean_rate(self.processed_bytes, started_at, now);
    }

    /// The job ended without finishing its work (failed, cancelled): the
    /// counts stay what was processed, the rate is the mean over the run and
    /// no time is left to estimate.
    pub(crate) fn stop(&mut self, started_at: Timestamp, now: Timestamp) {
        self.eta_seconds = None;
        if let Some(rate) = mean_rate(self.processed_bytes, started_at, now) {
            self.bytes_per_second = Some(rate);
        }
    }
}

/// Bytes per second between `from` and `to`, once any time has passed.
fn mean_rate(bytes: u64, from: Timestamp, to: Timestamp) -> Option<u64> {
    let elapsed_ms = to.duration_since(from).as_millis();
    (elapsed_ms > 0).then(|| {
        let rate = u128::from(bytes) * 1000 / elapsed_ms.unsigned_abs();
        u64::try_from(rate).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn rate_eta_and_percent() {
        let start = ts("2026-11-20T10:00:00Z");
        let mut p = Progress::default();
        p.apply(
            &ProgressUpdate {
                phase: Some(Phase::Archiving),
                total_bytes: Some(1000),
                total_files: Some(10),
                processed_bytes: Some(250),
                processed_files: Some(2),
            },
            start,
            ts("2026-11-20T10:00:05Z"),
        );
        assert_eq!(p.phase, Phase::Archiving);
        assert_eq!(p.percent, 25, "bytes take precedence over files");
        assert_eq!(p.bytes_per_second, Some(50));
        assert_eq!(p.eta_seconds, Some(15));
    }

    #[test]
    fn never_backwards_and_never_100_while_running() {
        let start = ts("2026-11-20T10:00:00Z");
        let now = ts("2026-11-20T10:00:01Z");
        let mut p = Progress::default();
        p.apply(
            &ProgressUpdate {
                total_bytes: Some(100),
                processed_bytes: Some(60),
                ..ProgressUpdate::default()
            },
            start,
            now,
        );
        assert_eq!(p.percent, 60);
        // The total grows: the percent does not fall.
        p.apply(
            &ProgressUpdate {
                total_bytes: Some(1000),
                processed_bytes: Some(10),
                ..ProgressUpdate::default()
            },
            start,
            now,
        );
        assert_eq!((p.percent, p.processed_bytes), (60, 60));
        // Processed beyond the total: the total follows, percent stops at 99.
        p.apply(
            &ProgressUpdate {
                processed_bytes: Some(5000),
                ..ProgressUpdate::default()
            },
            start,
            now,
        );
        assert_eq!((p.percent, p.total_bytes), (99, Some(5000)));
        p.finish(start, ts("2026-11-20T10:00:10Z"));
        assert_eq!(p.percent, 100);
        assert_eq!(p.bytes_per_second, Some(500), "the mean over the whole run");
    }

    #[test]
    fn files_when_bytes_unknown_and_nothing_when_both_unknown() {
        let start = ts("2026-11-20T10:00:00Z");
        let mut p = Progress::default();
        p.apply(
            &ProgressUpdate {
                processed_files: Some(3),
                ..ProgressUpdate::default()
            },
            start,
            start,
        );
        assert_eq!(p.percent, 0);
        assert_eq!(p.bytes_per_second, None, "no time has passed");
        p.apply(
            &ProgressUpdate {
                total_files: Some(4),
                ..ProgressUpdate::default()
            },
            start,
            start,
        );
        assert_eq!(p.percent, 75);
    }
}
