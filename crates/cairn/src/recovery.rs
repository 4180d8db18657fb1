//! Crash recovery: what opening a vault finds and repairs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_catalog::Catalog;
use cairn_integrity::PublicKey;
use cairn_job::{Job, JobKind};
use cairn_manifest::{BackupId, TargetName};
use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, task};
use crate::jobs::holder_job;
use crate::vault::Inner;

/// What [`VaultBuilder::open`](crate::VaultBuilder::open) found and repaired.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// Jobs whose process had died, now ended: `interrupted`, or, past
    /// their commit point, failed with what they left in place named.
    pub interrupted: Vec<Job>,
    /// Backups a dead job had sealed: complete, now recorded as ready.
    pub sealed: Vec<(TargetName, BackupId)>,
    /// Partial backups (archives without a seal) removed from the store.
    pub removed: Vec<(TargetName, BackupId)>,
    /// Files of interrupted uploads removed from a local store.
    pub leftovers: Vec<String>,
    /// Restores cleaned up after: rolled back from their journals, or found
    /// committed; with the staging folders removed.
    pub restores: Vec<cairn_source::Recovered>,
    /// Scratch folders (database snapshots) of dead jobs removed.
    pub scratch: Vec<PathBuf>,
}

impl Inner {
    /// Crash recovery (see [`VaultBuilder::open`]). Processes sharing the
    /// state folder recover one at a time (an exclusive lock on
    /// `recovery.lock`), so that two never undo the same journal.
    pub(crate) async fn recover(&self) -> Result<Recovery, Error> {
        let lock = {
            let dir = self.state_dir.clone();
            tokio::task::spawn_blocking(move || lock_recovery(&dir))
                .await
                .map_err(task)??
        };
        let now = self.now();
        let host = self.identity.hostname.clone();
        let unfinished = self.blocking(Catalog::unfinished_jobs).await?;
        let (dead, live): (Vec<_>, Vec<_>) = unfinished
            .into_iter()
            .partition(|u| owner_is_gone(&u.job, u.owner.as_deref(), u.heartbeat, &host, now));
        let live: std::collections::HashSet<String> = live.into_iter().map(|u| u.job.id).collect();
        let mut report = Recovery::default();
        {
            let (journals, live) = (self.journals.clone(), live.clone());
            report.restores = tokio::task::spawn_blocking(move || {
                cairn_source::recover(&journals, |id| !live.contains(id))
            })
            .await
            .map_err(task)??;
        }
        let mut swept = Vec::new();
        for u in dead {
            let job = u.job;
            tracing::warn!(job = %job.id, kind = %job.kind, target = %job.target, "job interrupted by a crash");
            let event = self.settle(&job, &mut report).await?;
            let (id, ev) = (job.id.clone(), event);
            if let Some(ended) = self
                .blocking(move |c| c.end_unfinished(&id, &ev, now))
                .await?
            {
                report.interrupted.push(ended);
            }
            if !job.kind.is_mutating() {
                continue;
            }
            let Ok(target) = TargetName::parse(&job.target) else {
                continue;
            };
            // Free the dead job's lease; backups mention their id in the holder.
            if let Some(lease) = self.store.current_lease(&target).await?
                && holder_job(&lease.holder) == Some(job.id.as_str())
            {
                self.store.break_lease(&target, &lease.holder, now).await?;
            }
            if matches!(job.kind, JobKind::Backup | JobKind::Upload) && !swept.contains(&target) {
                swept.push(target.clone());
                // Only when nobody else holds the target: then no upload runs.
                let busy = self
                    .store
                    .current_lease(&target)
                    .await?
                    .is_some_and(|l| l.is_active(now));
                if !busy {
                    // Only what is older than the longest job: a host
                    // sharing the store may take the lease right after the
                    // look above (or have let it lapse a moment) and be
                    // uploading now; its archive, unsealed for a while
                    // yet, is not a leftover. The dead job's own objects
                    // were removed when it was settled.
                    let before = now.checked_sub(self.job_timeout).unwrap_or(now);
                    for id in self.store.remove_incomplete(&target, before).await? {
                        report.removed.push((target.clone(), id));
                    }
                    report
                        .leftovers
                        .extend(self.store.remove_upload_leftovers(&target).await?);
                }
            }
        }
        {
            let (scratch, live) = (self.scratch.clone(), live);
            report.scratch = tokio::task::spawn_blocking(move || sweep_scratch(&scratch, &live))
                .await
                .map_err(task)??;
        }
        drop(lock);
        Ok(report)
    }

    /// Settles what a dead job left and says how it ended: a backup it had
    /// sealed is recorded as ready, anything else it stored removed; a
    /// restore found committed is reported done.
    async fn settle(&self, job: &Job, report: &mut Recovery) -> Result<cairn_job::Event, Error> {
        use cairn_job::{Committed, Event};
        let backup = job
            .resource
            .as_ref()
            .and_then(|r| BackupId::parse(&r.id).ok());
        let target = TargetName::parse(&job.target).ok();
        match (job.kind, backup, target) {
            (JobKind::Backup | JobKind::Upload, Some(id), Some(target)) => {
                match crate::rebuild::sealed_record(
                    &self.store,
                    &target,
                    &id,
                    None,
                    &self.trusted,
                    &self.identities,
                )
                .await?
                {
                    Ok(record) => {
                        let r = record.clone();
                        self.blocking(move |c| match c.get_backup(&r.id)? {
                            Some(_) => c.complete_backup(&r),
                            None => c.insert_backup(&r),
                        })
                        .await?;
                        self.announce(&record).await;
                        tracing::info!(backup = %id, "a dead job's backup was sealed: recorded as ready");
                        report.sealed.push((target, id));
                        let verify = self
                            .find_target(&job.target)
                            .is_some_and(|t| t.verify_after_write.is_some());
                        Ok(Event::InterruptedAfterCommit(Committed {
                            done: format!("backup {id} is sealed and ready"),
                            missed: Some(if verify {
                                "the verification after writing and retention".to_owned()
                            } else {
                                "retention".to_owned()
                            }),
                        }))
                    }
                    Err(why) => {
                        tracing::info!(backup = %id, %why, "a dead job's backup was not sealed: removed");
                        self.store.delete_backup(&target, &id).await?;
                        let message = "the process making it stopped before it was sealed; what it had stored was removed";
                        self.blocking(move |c| match c.get_backup(&id)? {
                            Some(r) if !r.status.is_ready() => c.set_status(
                                &id,
                                cairn_catalog::BackupStatus::Failed,
                                Some(message),
                            ),
                            _ => Ok(()),
                        })
                        .await?;
                        report.removed.push((target, id));
                        Ok(Event::Interrupted)
                    }
                }
            }
            (JobKind::Restore | JobKind::Reset, _, _) => {
                let committed = report
                    .restores
                    .iter()
                    .find(|r| r.id == job.id && r.committed);
                Ok(match committed {
                    Some(r) => Event::InterruptedAfterCommit(Committed {
                        done: match backup {
                            Some(b) => format!("the restore of backup {b} is in place"),
                            None => "the factory reset is in place".to_owned(),
                        },
                        missed: (!r.post_hook_ran).then(|| "the post-restore hook".to_owned()),
                    }),
                    None => Event::Interrupted,
                })
            }
            _ => Ok(Event::Interrupted),
        }
    }
}

/// Refuses a signing key that is not this installation's (see
/// [`VaultBuilder::open`]); records it on first use and after a rotation.
pub(crate) async fn check_signer(
    catalog: &Arc<Catalog>,
    trusted: &[PublicKey],
    now: Timestamp,
) -> Result<(), Error> {
    let current = trusted[0].key_id().to_string();
    let earlier: Vec<String> = trusted[1..]
        .iter()
        .map(|k| k.key_id().to_string())
        .collect();
    let c = Arc::clone(catalog);
    tokio::task::spawn_blocking(move || match c.recorded_signer()? {
        Some(r) if r == current => Ok(()),
        Some(r) if !earlier.contains(&r) => Err(Error::WrongKey {
            key: current,
            expected: r,
        }),
        _ => Ok(c.record_signer(&current, now)?),
    })
    .await
    .map_err(task)?
}

/// Takes the state folder's recovery lock (released when the file is dropped).
fn lock_recovery(state_dir: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("recovery.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::Config(format!("opening {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::Config(format!("locking {}: {e}", path.display())))?;
    Ok(file)
}

/// Removes what the scratch folder holds for jobs that no longer run:
/// `scratch/<job id>/` folders of jobs not in `live`, snapshot folders
/// of earlier versions (`.cairn-snapshot-*`) when no job runs at all, and
/// single-file unpacks of processes that are gone.
fn sweep_scratch(
    scratch: &Path,
    live: &std::collections::HashSet<String>,
) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(scratch) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::Config(format!("reading {}: {e}", scratch.display()))),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A single file's unpack (`Vault::extract`) is named after its
        // process: `.cairn-extract-<pid>-…`.
        let extract_of_dead = name
            .strip_prefix(crate::files::EXTRACT_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(pid, _)| pid_is_gone(pid));
        let stale = (name.starts_with("job_") && !live.contains(&name))
            || (name.starts_with(".cairn-snapshot-") && live.is_empty())
            || extract_of_dead;
        if !stale {
            continue;
        }
        let path = entry.path();
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| Error::Config(format!("removing {}: {e}", path.display())))?;
        removed.push(path);
    }
    Ok(removed)
}

/// How long a job's owner may go without a heartbeat (every 2 s) before
/// its job counts as abandoned.
const STALE: SignedDuration = SignedDuration::from_secs(60);

/// This process, as a job's owner: `<host> <pid>`.
pub(crate) fn owner_name(host: &str) -> String {
    format!("{host} {}", std::process::id())
}

/// Whether the process that ran `job` is gone: on this host, its pid no
/// longer exists; anywhere, its heartbeat is older than [`STALE`]. A job
/// without an owner (written before owners were recorded, or in the instant
/// between creating a job and recording its owner) is judged by its last update.
fn owner_is_gone(
    job: &Job,
    owner: Option<&str>,
    beat: Option<Timestamp>,
    host: &str,
    now: Timestamp,
) -> bool {
    let stale = |t: Timestamp| t.saturating_add(STALE).is_ok_and(|t| t < now);
    let Some(owner) = owner else {
        return stale(job.updated_at);
    };
    if beat.is_none_or(stale) {
        return true;
    }
    match owner.rsplit_once(' ') {
        Some((h, pid)) if h == host => pid_is_gone(pid),
        _ => false,
    }
}

/// Whether no process of this host has the id `pid` (text; malformed is
/// gone).
fn pid_is_gone(pid: &str) -> bool {
    pid.parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_none_or(|pid| {
            matches!(
                rustix::process::test_kill_process(pid),
                Err(e) if e == rustix::io::Errno::SRCH
            )
        })
}
