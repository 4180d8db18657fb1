//! What a job produced, typed by kind ([`JobResult`]).
//!
//! The serialised forms are the job record's `result` as the catalog stores
//! it and the server returns it: an object of the kind's fields, without a
//! tag (the job's `kind` says which it is). Their field names are stable.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use cairn_retention::Plan;
use serde::{Deserialize, Serialize};

use crate::restore::RestoreOutcome;

/// What a finished job produced.
///
/// A reset produces a [`JobResult::Restore`] too: it restores the factory
/// backup, or empties the components (then `backup_id` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum JobResult {
    /// An upload: the new backup and what it was made from. (Listed before
    /// `Backup`, whose fields it has too: a stored result is read as the
    /// first kind its fields fit.)
    Upload(UploadResult),
    /// A backup: the new backup.
    Backup(BackupResult),
    /// A verification.
    Verify(VerifyReport),
    /// Retention applied (or planned, for a dry run).
    Prune(PruneReport),
    /// A restore or a factory reset.
    Restore(RestoreResult),
}

impl JobResult {
    /// The backup the job made (backup, upload) or read (restore, reset,
    /// verify).
    pub fn backup_id(&self) -> Option<&str> {
        match self {
            Self::Backup(b) => Some(&b.backup_id),
            Self::Upload(u) => Some(&u.backup.backup_id),
            Self::Verify(v) => Some(&v.backup_id),
            Self::Restore(r) => r.backup_id.as_deref(),
            Self::Prune(_) => None,
        }
    }

    /// The new backup of a backup or upload job.
    pub fn backup(&self) -> Option<&BackupResult> {
        match self {
            Self::Backup(b) => Some(b),
            Self::Upload(u) => Some(&u.backup),
            _ => None,
        }
    }

    /// An upload's result.
    pub fn upload(&self) -> Option<&UploadResult> {
        match self {
            Self::Upload(u) => Some(u),
            _ => None,
        }
    }

    /// A verification's report.
    pub fn verify(&self) -> Option<&VerifyReport> {
        match self {
            Self::Verify(v) => Some(v),
            _ => None,
        }
    }

    /// A restore's or a reset's result.
    pub fn restore(&self) -> Option<&RestoreResult> {
        match self {
            Self::Restore(r) => Some(r),
            _ => None,
        }
    }

    /// A prune's report.
    pub fn prune(&self) -> Option<&PruneReport> {
        match self {
            Self::Prune(p) => Some(p),
            _ => None,
        }
    }
}

/// A new backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupResult {
    /// Its id.
    pub backup_id: String,
    /// Its archive's key in the store.
    pub archive_key: Option<String>,
    /// The archive's size in bytes.
    pub size: u64,
    /// The archive's SHA-256, hex.
    pub sha256: String,
    /// How many entries its manifest lists.
    pub entries: u64,
    /// Bytes of file content.
    pub data_bytes: u64,
    /// Its components.
    pub components: Vec<String>,
    /// Paths found but not archived (sockets, vanished files, …).
    pub skipped: Vec<String>,
    /// The verification after writing, when the target asks for one.
    pub verified: Option<VerifyReport>,
    /// Backups retention deleted or purged after it.
    pub pruned: Vec<String>,
    /// For an incremental backup, the backup it builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// How many backups its chain holds before it (0, and absent: full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u64,
    /// Files not read because they are unchanged since the parent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_files: u64,
    /// Their bytes (stored in the chain already, not read or stored again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A new backup made from an uploaded archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UploadResult {
    /// The new backup.
    #[serde(flatten)]
    pub backup: BackupResult,
    /// How the uploaded file was compressed (`tar`, `gzip`, `zstd`).
    pub source_format: String,
    /// Its length in bytes.
    pub source_size: u64,
    /// Its SHA-256, hex.
    pub source_sha256: String,
}

/// How thoroughly a backup is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum VerifyTier {
    /// The seal's signature, the archive's size, the manifest's signature.
    Quick,
    /// Quick, plus a random tenth of the entries (at least one per
    /// component) read by range and checked against their digests.
    Sample,
    /// Every byte: every entry's digest and the archive's SHA-256.
    Full,
}

impl VerifyTier {
    /// Every tier, from the cheapest.
    pub const ALL: [Self; 3] = [Self::Quick, Self::Sample, Self::Full];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyTier::Quick => "quick",
            VerifyTier::Sample => "sample",
            VerifyTier::Full => "full",
        }
    }
}

impl fmt::Display for VerifyTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`VerifyTier`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verification tier {0:?} (quick, sample or full)")]
pub struct UnknownTier(pub String);

impl FromStr for VerifyTier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, UnknownTier> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTier(s.chars().take(40).collect()))
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup.
    pub backup_id: String,
    /// The tier.
    pub tier: VerifyTier,
    /// Whether everything checked out.
    pub ok: bool,
    /// What was checked, or what differed.
    pub message: String,
    /// Entries whose content was checked.
    pub entries_checked: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// A report that has checked nothing yet.
    pub fn new(backup_id: impl Into<String>, tier: VerifyTier) -> Self {
        Self {
            backup_id: backup_id.into(),
            tier,
            ok: false,
            message: String::new(),
            entries_checked: 0,
            bytes_read: 0,
            duration_ms: 0,
        }
    }
}

/// What retention decided and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Every backup with its decision and reasons.
    pub plan: Plan,
    /// Backups soft-deleted now.
    pub deleted: Vec<String>,
    /// Backups removed from the store and the catalog.
    pub purged: Vec<String>,
    /// Whether nothing was changed (dry run).
    pub dry_run: bool,
}

impl PruneReport {
    /// A report of `plan`, nothing applied yet.
    pub fn new(plan: Plan, dry_run: bool) -> Self {
        Self {
            plan,
            deleted: Vec::new(),
            purged: Vec::new(),
            dry_run,
        }
    }

    /// The ids deleted or purged.
    pub fn changed(&self) -> Vec<String> {
        self.deleted.iter().chain(&self.purged).cloned().collect()
    }
}

/// What a restore or a reset did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestoreResult {
    /// The backup restored (`None` for a factory reset without a factory
    /// backup: the components were emptied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The target.
    pub target: String,
    /// The components restored.
    pub components: Vec<String>,
    /// Where they went, and how.
    #[serde(flatten)]
    pub done: Restored,
    /// Bytes of the archive read from the store (a partial restore reads
    /// only its components' frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
}

impl RestoreResult {
    /// What a restore of `components` onto `target` did.
    pub fn new(target: impl Into<String>, components: Vec<String>, done: Restored) -> Self {
        Self {
            backup_id: None,
            target: target.into(),
            components,
            done,
            bytes_read: None,
        }
    }
}

/// Where a restore put the components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Restored {
    /// Into another directory.
    Into {
        /// The directory.
        to: PathBuf,
        /// Entries unpacked.
        entries: u64,
        /// Bytes of file content written.
        bytes: u64,
    },
    /// Nothing: a dry run, with what it would do.
    Preview {
        /// What an in-place restore would create, replace and delete.
        dry_run: RestorePreview,
    },
    /// In place.
    InPlace {
        /// The `.before-restore` copies of what was replaced.
        kept: Vec<PathBuf>,
        /// The post-restore hook's failure, if it failed (the restore stands).
        post_hook_error: Option<String>,
        /// `completed`.
        outcome: RestoreOutcome,
    },
}

/// What a restore would do, path by path. Nothing is changed to find out.
///
/// A file counts as unchanged when its type, size, permission bits and
/// modification time (to the second) match the archive; content is not read.
/// A database is always counted as replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestorePreview {
    /// Paths that do not exist and would be created.
    pub create: Vec<PathBuf>,
    /// Paths that exist and would be replaced by something different.
    pub replace: Vec<PathBuf>,
    /// Paths that exist and are not in the backup: they would move to
    /// `.before-restore` with their component.
    pub delete: Vec<PathBuf>,
    /// Paths that would stay as they are.
    pub unchanged: u64,
}
