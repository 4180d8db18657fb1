//! Planning: one decision, with its reasons, for every backup of a target.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::calendar::{Bucket, Period};
use crate::{Error, Policy, duration};

/// Where a backup stands: the one status the catalog records, the API and
/// the CLI show, and retention reads.
///
/// ```text
/// creating ──▶ uploading ──▶ ready ◀──▶ restoring
///    │             │
///    └─────────────┴──▶ failed
/// ```
///
/// Retention never touches a backup being written (`creating`,
/// `uploading`), treats one being restored from as ready, and purges a
/// failed one's leftovers after `failed_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackupStatus {
    /// Started: capturing its components.
    Creating,
    /// Its archive is being sent to the store.
    Uploading,
    /// Sealed and complete.
    Ready,
    /// Ready, and a restore is reading it now.
    Restoring,
    /// Ended without a seal (`status_message` says why).
    Failed,
}

impl BackupStatus {
    /// Every status, in the order of a backup's life.
    pub const ALL: [Self; 5] = [
        Self::Creating,
        Self::Uploading,
        Self::Ready,
        Self::Restoring,
        Self::Failed,
    ];

    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Uploading => "uploading",
            Self::Ready => "ready",
            Self::Restoring => "restoring",
            Self::Failed => "failed",
        }
    }

    /// The status [`BackupStatus::as_str`] names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Still being written: not yet a backup anyone may count on.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Creating | Self::Uploading)
    }

    /// Sealed and complete (whether or not a restore reads it now).
    pub fn is_ready(self) -> bool {
        matches!(self, Self::Ready | Self::Restoring)
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What retention needs to know about one backup of the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Its id; ids must be unique within one call to [`Policy::plan`].
    pub id: String,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Whether it is complete.
    pub status: BackupStatus,
    /// Pinned by an operator: always kept.
    #[serde(default)]
    pub pinned: bool,
    /// The holders of the leases on it (a running restore, download or verify,
    /// named as the reasons should name them, for example `"job job_01H…"`).
    /// A leased backup is never deleted or purged.
    #[serde(default)]
    pub leases: Vec<String>,
    /// When it was soft-deleted, if it was.
    #[serde(default)]
    pub deleted_at: Option<Timestamp>,
    /// For an incremental backup, the ids of the backups whose data it
    /// refers to (its whole chain). While it is kept they are kept; while
    /// its objects stay, theirs stay.
    #[serde(default)]
    pub parents: Vec<String>,
}

impl Backup {
    /// A ready backup taken at `created_at`, unpinned, unleased, not deleted.
    pub fn ready(id: impl Into<String>, created_at: Timestamp) -> Self {
        Self {
            id: id.into(),
            created_at,
            status: BackupStatus::Ready,
            pinned: false,
            leases: Vec::new(),
            deleted_at: None,
            parents: Vec::new(),
        }
    }

    fn is_live_ready(&self) -> bool {
        self.status.is_ready() && self.deleted_at.is_none()
    }
}

/// What to do with one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leave it as it is: it stays listed and restorable (or keeps running).
    Keep,
    /// Soft-delete it now: it is hidden, and recoverable until `deleted_grace` ends.
    Delete,
    /// It is already gone from the user's view (failed or soft-deleted) and
    /// its objects stay for now: a grace period, a pin or a lease holds them.
    Wait,
    /// Remove its objects and its record now.
    Purge,
}

impl Action {
    /// `Delete` or `Purge`: the plan takes something away.
    pub fn evicts(self) -> bool {
        matches!(self, Self::Delete | Self::Purge)
    }
}

/// Why a backup gets its [`Action`].
///
/// The [`Display`](fmt::Display) form is the sentence shown to operators
/// (`keep_last 3 of 30`, `daily 2026-11-20`, `leased by job …`); the serde form
/// is an object tagged by `rule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Among the `of` newest ready backups, at position `rank` (1 = newest).
    KeepLast {
        /// Its position among the ready backups, newest first, from 1.
        rank: u32,
        /// The policy's `keep_last`.
        of: u32,
    },
    /// The newest backup of a calendar period that a GFS rule keeps.
    Period {
        /// Which rule.
        period: Period,
        /// The period, for example `2026-11-20` or `2026-W47`.
        bucket: String,
        /// Which of the rule's periods it is, newest first, from 1.
        rank: u32,
        /// The rule's count.
        of: u32,
    },
    /// Created within `keep_within` of the newest ready backup.
    Within {
        /// The policy's `keep_within`, in friendly form.
        within: String,
        /// The newest ready backup's creation time.
        newest: Timestamp,
    },
    /// Pinned by an operator.
    Pinned,
    /// Held by a lease.
    Leased {
        /// Who holds it.
        holder: String,
    },
    /// The newest ready backup of the target is always kept.
    NewestReady,
    /// Kept to leave at least `min_keep` ready backups.
    MinKeep {
        /// The policy's `min_keep`.
        min_keep: u32,
    },
    /// Still being written.
    InProgress,
    /// Ready, but no rule keeps it.
    NotKept {
        /// Its position among the ready backups, newest first, from 1.
        rank: u32,
        /// How many ready backups the target has.
        ready: u32,
    },
    /// Failed; its leftovers are kept until `until`.
    FailedGrace {
        /// When the grace period ends.
        until: Timestamp,
    },
    /// Failed, and its grace period ended at `since`.
    FailedExpired {
        /// When the grace period ended.
        since: Timestamp,
    },
    /// Soft-deleted; recoverable until `until`.
    DeletedGrace {
        /// When the grace period ends.
        until: Timestamp,
    },
    /// Soft-deleted, and its grace period ended at `since`.
    DeletedExpired {
        /// When the grace period ended.
        since: Timestamp,
    },
    /// An incremental backup whose objects stay refers to its data.
    ParentOf {
        /// The nearest such backup, by creation (newest first).
        child: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeepLast { rank, of } => write!(f, "keep_last {rank} of {of}"),
            Self::Period {
                period,
                bucket,
                rank,
                of,
            } => write!(f, "{period} {bucket} ({rank} of {of})"),
            Self::Within { within, newest } => {
                write!(f, "within {within} of the newest backup ({newest})")
            }
            Self::Pinned => f.write_str("pinned"),
            Self::Leased { holder } => write!(f, "leased by {holder}"),
            Self::NewestReady => f.write_str("newest ready backup"),
            Self::MinKeep { min_keep } => write!(f, "min_keep {min_keep}"),
            Self::InProgress => f.write_str("in progress"),
            Self::NotKept { rank, ready } => {
                write!(f, "no rule keeps it (newest {rank} of {ready} ready)")
            }
            Self::FailedGrace { until } => write!(f, "failed; purged after {until}"),
            Self::FailedExpired { since } => write!(f, "failed; grace period ended {since}"),
            Self::DeletedGrace { until } => {
                write!(f, "soft-deleted; recoverable until {until}")
            }
            Self::DeletedExpired { since } => {
                write!(f, "soft-deleted; grace period ended {since}")
            }
            Self::ParentOf { child } => write!(f, "parent of {child}"),
        }
    }
}

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The backup's id.
    pub id: String,
    /// When it was taken.
    pub created_at: Timestamp,
    /// What to do with it.
    pub action: Action,
    /// Every reason that applies, strongest first for kept backups.
    pub reasons: Vec<Reason>,
}

/// The decisions for every backup of a target, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// When the plan was made.
    pub now: Timestamp,
    /// One per input backup, ordered by creation time, newest first (ties by id).
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// The decision for one backup.
    pub fn get(&self, id: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.id == id)
    }

    /// The decisions with this action.
    pub fn with_action(&self, action: Action) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(move |d| d.action == action)
    }

    /// The backups to soft-delete or purge, oldest first (the order to apply them in).
    pub fn evictions(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().rev().filter(|d| d.action.evicts())
    }
}

impl Policy {
    /// Decides, for every backup of one target, whether to keep, soft-delete,
    /// wait for or purge it, with every reason that applies.
    ///
    /// Pure: the result depends only on the policy, the backups (in any order)
    /// and `now`. Pinned and leased backups are never deleted or purged, and
    /// neither is the newest ready backup. Applying the plan and planning again
    /// at the same instant evicts nothing more.
    ///
    /// Fails only if two backups share an id.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateId`] when two backups share an id.
    pub fn plan(&self, backups: &[Backup], now: Timestamp) -> Result<Plan, Error> {
        let mut seen = HashSet::with_capacity(backups.len());
        for b in backups {
            if !seen.insert(b.id.as_str()) {
                return Err(Error::DuplicateId(b.id.clone()));
            }
        }
        let mut order: Vec<&Backup> = backups.iter().collect();
        order.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });

        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); order.len()];
        // Indexes (into `order`) of the live ready backups, newest first.
        let ready: Vec<usize> = (0..order.len())
            .filter(|&i| order[i].is_live_ready())
            .collect();
        let ready_count = u32::try_from(ready.len()).unwrap_or(u32::MAX);

        for (i, b) in order.iter().enumerate() {
            if b.pinned {
                reasons[i].push(Reason::Pinned);
            }
            for holder in &b.leases {
                reasons[i].push(Reason::Leased {
                    holder: holder.clone(),
                });
            }
        }
        if let Some(&newest) = ready.first() {
            reasons[newest].push(Reason::NewestReady);
        }
        for (rank, &i) in (1..=self.keep_last).zip(&ready) {
            reasons[i].push(Reason::KeepLast {
                rank,
                of: self.keep_last,
            });
        }
        for period in Period::ALL {
            self.keep_periods_of(period, &order, &ready, &mut reasons);
        }
        if let (Some(within), Some(&newest)) = (self.keep_within, ready.first()) {
            let newest_at = order[newest].created_at;
            let from = duration::before(newest_at, within);
            for &i in &ready {
                if order[i].created_at >= from {
                    reasons[i].push(Reason::Within {
                        within: duration::format(within),
                        newest: newest_at,
                    });
                }
            }
        }
        let mut kept = ready.iter().filter(|&&i| !reasons[i].is_empty()).count();
        for &i in &ready {
            if kept >= self.min_keep as usize {
                break;
            }
            if reasons[i].is_empty() {
                reasons[i].push(Reason::MinKeep {
                    min_keep: self.min_keep,
                });
                kept += 1;
            }
        }

        let mut decisions = Vec::with_capacity(order.len());
        let mut rank = 0u32;
        for (i, b) in order.iter().enumerate() {
            let mut why = std::mem::take(&mut reasons[i]);
            let held = b.pinned || !b.leases.is_empty();
            let action = if let Some(deleted_at) = b.deleted_at {
                grace(
                    &mut why,
                    held,
                    duration::after(deleted_at, self.deleted_grace),
                    now,
                    |until| Reason::DeletedGrace { until },
                    |since| Reason::DeletedExpired { since },
                )
            } else {
                match b.status {
                    BackupStatus::Creating | BackupStatus::Uploading => {
                        why.push(Reason::InProgress);
                        Action::Keep
                    }
                    BackupStatus::Failed => grace(
                        &mut why,
                        held,
                        duration::after(b.created_at, self.failed_grace),
                        now,
                        |until| Reason::FailedGrace { until },
                        |since| Reason::FailedExpired { since },
                    ),
                    BackupStatus::Ready | BackupStatus::Restoring => {
                        rank += 1;
                        if why.is_empty() {
                            why.push(Reason::NotKept {
                                rank,
                                ready: ready_count,
                            });
                            Action::Delete
                        } else {
                            Action::Keep
                        }
                    }
                }
            };
            decisions.push(Decision {
                id: b.id.clone(),
                created_at: b.created_at,
                action,
                reasons: why,
            });
        }
        protect_chains(&order, &mut decisions);
        Ok(Plan { now, decisions })
    }

    /// Applies one GFS rule: the newest ready backup of each of the `n` most
    /// recent periods that contain a ready backup.
    fn keep_periods_of(
        &self,
        period: Period,
        order: &[&Backup],
        ready: &[usize],
        reasons: &mut [Vec<Reason>],
    ) {
        let n = self.keep_period(period);
        let mut last: Option<Bucket> = None;
        let mut rank = 0;
        for &i in ready {
            if rank == n {
                break;
            }
            let bucket = period.bucket(order[i].created_at, &self.timezone.tz);
            if last != Some(bucket) {
                last = Some(bucket);
                rank += 1;
                reasons[i].push(Reason::Period {
                    period,
                    bucket: bucket.to_string(),
                    rank,
                    of: n,
                });
            }
        }
    }
}

/// A backup an incremental backup refers to outlives it: a kept backup's
/// chain is kept (a soft-deleted one is not purged), and no backup whose
/// objects stay (kept, waiting, or soft-deleted now) loses a parent's
/// objects. Every backup names its whole chain, so one pass suffices.
fn protect_chains(order: &[&Backup], decisions: &mut [Decision]) {
    let index: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.as_str(), i))
        .collect();
    for (c, child) in order.iter().enumerate() {
        let child_action = decisions[c].action;
        if child_action == Action::Purge {
            continue;
        }
        for p in &child.parents {
            let Some(&i) = index.get(p.as_str()) else {
                continue;
            };
            let parent = &mut decisions[i];
            let protected = match (child_action, parent.action) {
                (_, Action::Purge) => Some(Action::Wait),
                (Action::Keep, Action::Delete) => Some(Action::Keep),
                _ => None,
            };
            if let Some(action) = protected {
                if action == Action::Keep {
                    parent
                        .reasons
                        .retain(|r| !matches!(r, Reason::NotKept { .. }));
                }
                parent.action = action;
            }
            let named = parent
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::ParentOf { .. }));
            if (protected.is_some() || child_action == Action::Keep) && !named {
                parent.reasons.push(Reason::ParentOf {
                    child: child.id.clone(),
                });
            }
        }
    }
}

/// The action for a backup that is already out of the user's view (failed or
/// soft-deleted): wait until `until`, or while a pin or lease holds it.
fn grace(
    why: &mut Vec<Reason>,
    held: bool,
    until: Timestamp,
    now: Timestamp,
    waiting: impl FnOnce(Timestamp) -> Reason,
    expired: impl FnOnce(Timestamp) -> Reason,
) -> Action {
    // Only pins and leases count here: the keep rules apply to live backups.
    why.retain(|r| matches!(r, Reason::Pinned | Reason::Leased { .. }));
    if now < until {
        why.push(waiting(until));
        Action::Wait
    } else {
        why.push(expired(until));
        if held { Action::Wait } else { Action::Purge }
    }
}
