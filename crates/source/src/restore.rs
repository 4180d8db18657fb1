//! Transactional restore: staged components swapped in with renames, what
//! they replace kept as `<path>.before-restore`, everything put back on failure.
//!
//! A restore is a list of renames planned up front and written to a journal
//! (fsynced) before the first one. At plan time every rename's source exists
//! and its destination does not, so after a crash the renames that happened
//! are exactly those whose source is gone and whose destination exists:
//! [`recover`] undoes them in reverse order, whatever point the crash hit.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_manifest::{ComponentKind, ComponentName};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hook::run_hook;
use crate::spec::{ComponentSpec, Hook, SQLITE_SIDECARS, with_suffix};

/// What a component becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// The verified copy at this path (a directory for `dir`, a file
    /// otherwise), on the destination's filesystem, typically inside a
    /// staging directory beside the destination.
    Staged(PathBuf),
    /// Nothing: an empty directory for `dir`, no file otherwise (factory
    /// reset of a target without a factory backup).
    Empty,
}

/// One component to restore.
#[derive(Debug, Clone)]
pub struct RestoreItem {
    /// The component and where it lives.
    pub spec: ComponentSpec,
    /// What it becomes.
    pub replacement: Replacement,
}

/// Called before each rename; an error stops the restore there and rolls it
/// back. Used for cancellation and to inject faults in tests.
pub type StepCheck = Arc<dyn Fn(&Step) -> std::result::Result<(), String> + Send + Sync>;

/// How a restore runs.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Run before anything changes; its failure aborts the restore.
    pub pre_hook: Option<Hook>,
    /// Run after the components are in place; its failure is reported in
    /// [`Restored::post_hook_error`] (the restore itself stands).
    pub post_hook: Option<Hook>,
    /// Environment given to the hooks (`CAIRN_TARGET`, `CAIRN_BACKUP_ID`, ...).
    pub hook_env: Vec<(String, String)>,
    /// Asked before each rename.
    pub step_check: Option<StepCheck>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("pre_hook", &self.pre_hook)
            .field("post_hook", &self.post_hook)
            .field("hook_env", &self.hook_env)
            .field("step_check", &self.step_check.as_ref().map(|_| "..."))
            .finish()
    }
}

/// One planned rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The component it belongs to.
    pub component: String,
    /// Moved from.
    pub from: PathBuf,
    /// Moved to.
    pub to: PathBuf,
}

/// The journal of one restore.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    id: String,
    steps: Vec<Step>,
    /// Removed once the restore committed (older `.before-restore` copies).
    cleanup: Vec<PathBuf>,
    /// Removed once the restore rolled back (staged copies, empty directories).
    discard: Vec<PathBuf>,
}

/// What a completed restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The components now in place.
    pub components: Vec<ComponentName>,
    /// The `.before-restore` copies of what they replaced.
    pub kept: Vec<PathBuf>,
    /// Renames done.
    pub steps: usize,
    /// The post-restore hook's failure, if it failed.
    pub post_hook_error: Option<String>,
}

/// A journal found and replayed by [`recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The restore's id.
    pub id: String,
    /// Renames undone.
    pub undone: usize,
}

/// Swaps the items in, as one transaction.
///
/// Before anything changes: each staged database passes
/// `PRAGMA integrity_check`, each staged copy is checked to be on its
/// destination's filesystem, and the pre-restore hook runs. Then, per
/// component in order: an older `<path>.before-restore` is moved aside, the
/// current `<path>` (with a database's `-wal`, `-shm` and `-journal`, which
/// belong to the replaced file and must not be applied to the restored one)
/// becomes `<path>.before-restore`, and the staged copy becomes `<path>`.
/// Directories are synced. If any step fails, the steps done are undone in
/// reverse and the target is as before.
///
/// `id` names the journal `journal_dir/<id>.json` (letters, digits, `-`, `_`).
///
/// # Errors
///
/// [`Error::Database`], [`Error::Hook`] (pre-restore), [`Error::Invalid`],
/// [`Error::Stopped`] (a step check refused: rolled back), [`Error::Io`]
/// (rolled back), [`Error::RollbackFailed`].
pub fn apply(
    id: &str,
    journal_dir: &Path,
    items: &[RestoreItem],
    opts: &RestoreOptions,
) -> Result<Restored> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!("restore id {id:?} is not usable")));
    }
    let mut journal = Journal {
        id: id.to_owned(),
        steps: Vec::new(),
        cleanup: Vec::new(),
        discard: Vec::new(),
    };
    for item in items {
        if let Err(e) = plan_item(id, item, &mut journal) {
            discard(&journal);
            return Err(e);
        }
    }
    if let Some(hook) = &opts.pre_hook
        && let Err(e) = run_hook("pre_restore", hook, &opts.hook_env)
    {
        discard(&journal);
        return Err(e);
    }
    fs::create_dir_all(journal_dir).map_err(Error::io("creating", journal_dir))?;
    let journal_path = journal_dir.join(format!("{id}.json"));
    if journal_path.exists() {
        discard(&journal);
        return Err(Error::Invalid(format!(
            "a restore journal {} exists already: recover it first",
            journal_path.display()
        )));
    }
    write_journal(&journal_path, &journal)?;

    let mut done = 0;
    let mut failure = None;
    for step in &journal.steps {
        if let Some(check) = &opts.step_check
            && let Err(why) = check(step)
        {
            failure = Some(Error::Stopped(why));
            break;
        }
        if let Err(e) = fs::rename(&step.from, &step.to) {
            failure = Some(Error::Io {
                op: "moving",
                path: step.from.clone(),
                source: e,
            });
            break;
        }
        done += 1;
    }
    if failure.is_none() {
        failure = sync_parents(&journal.steps).err();
    }
    if let Some(cause) = failure {
        return Err(match undo(&journal.steps[..done]) {
            Ok(_) => {
                discard(&journal);
                let _ = fs::remove_file(&journal_path);
                cause
            }
            Err(rollback) => Error::RollbackFailed {
                cause: Box::new(cause),
                rollback,
                journal: journal_path,
            },
        });
    }
    // Committed: the journal goes first, then the older copies.
    fs::remove_file(&journal_path).map_err(Error::io("removing", &journal_path))?;
    sync_dir(journal_dir)?;
    for p in &journal.cleanup {
        remove_any(p);
    }
    let post_hook_error = opts
        .post_hook
        .as_ref()
        .and_then(|hook| run_hook("post_restore", hook, &opts.hook_env).err())
        .map(|e| e.to_string());
    Ok(Restored {
        components: items.iter().map(|i| i.spec.name.clone()).collect(),
        kept: items
            .iter()
            .map(|i| i.spec.before_restore_path())
            .filter(|p| p.symlink_metadata().is_ok())
            .collect(),
        steps: done,
        post_hook_error,
    })
}

/// Replays the journals left in `journal_dir` by restores that did not
/// finish (a crash, a kill): the renames they did are undone in reverse, and
/// their staged copies removed. Returns what was recovered.
///
/// # Errors
///
/// [`Error::Io`] if a journal cannot be read or a rename cannot be undone (the
/// journal is then kept).
pub fn recover(journal_dir: &Path) -> Result<Vec<Recovered>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(journal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("reading", journal_dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = fs::read(&path).map_err(Error::io("reading", &path))?;
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "restore journal {} is damaged: {e}",
                path.display()
            ))
        })?;
        let undone = undo(&journal.steps).map_err(|why| Error::Io {
            op: "rolling back the restore of",
            path: path.clone(),
            source: std::io::Error::other(why),
        })?;
        discard(&journal);
        fs::remove_file(&path).map_err(Error::io("removing", &path))?;
        out.push(Recovered {
            id: journal.id,
            undone,
        });
    }
    Ok(out)
}

fn plan_item(id: &str, item: &RestoreItem, journal: &mut Journal) -> Result<()> {
    let spec = &item.spec;
    let dest = &spec.path;
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "component {}: {} has no parent directory",
                spec.name,
                dest.display()
            ))
        })?;
    let parent_meta = fs::metadata(parent).map_err(Error::io("reading", parent))?;
    let name = spec.name.as_str().to_owned();
    let step = |from: PathBuf, to: PathBuf| Step {
        component: name.clone(),
        from,
        to,
    };
    let sidecars: &[&str] = if spec.kind == ComponentKind::Sqlite {
        &SQLITE_SIDECARS
    } else {
        &[]
    };
    let new = match &item.replacement {
        Replacement::Staged(p) => {
            let meta = fs::symlink_metadata(p).map_err(Error::io("reading", p))?;
            let ok = if spec.kind == ComponentKind::Dir {
                meta.is_dir()
            } else {
                meta.is_file()
            };
            if !ok {
                return Err(Error::Invalid(format!(
                    "component {}: the staged copy {} is not a {}",
                    spec.name,
                    p.display(),
                    if spec.kind == ComponentKind::Dir {
                        "directory"
                    } else {
                        "regular file"
                    }
                )));
            }
            if meta.dev() != parent_meta.dev() {
                return Err(Error::Invalid(format!(
                    "component {}: the staged copy {} is not on the filesystem of {}",
                    spec.name,
                    p.display(),
                    dest.display()
                )));
            }
            if spec.kind == ComponentKind::Sqlite {
                check_database(&spec.name, p)?;
            }
            journal.discard.push(p.clone());
            if let Some(staging) = p.parent().filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".cairn-staging-"))
            }) {
                journal.discard.push(staging.to_owned());
            }
            Some(p.clone())
        }
        Replacement::Empty if spec.kind == ComponentKind::Dir => {
            let empty = with_suffix(
                &parent.join(format!(".cairn-empty-{id}-")),
                spec.name.as_str(),
            );
            fs::create_dir(&empty).map_err(Error::io("creating", &empty))?;
            journal.discard.push(empty.clone());
            Some(empty)
        }
        Replacement::Empty => None,
    };
    let before = spec.before_restore_path();
    let trash = with_suffix(&before, &format!(".cairn-old-{id}"));
    for suffix in std::iter::once("").chain(sidecars.iter().copied()) {
        let old = with_suffix(&before, suffix);
        if old.symlink_metadata().is_ok() {
            let gone = with_suffix(&trash, suffix);
            journal.cleanup.push(gone.clone());
            journal.steps.push(step(old, gone));
        }
    }
    for suffix in std::iter::once("").chain(sidecars.iter().copied()) {
        let cur = with_suffix(dest, suffix);
        if cur.symlink_metadata().is_ok() {
            journal.steps.push(step(cur, with_suffix(&before, suffix)));
        }
    }
    if let Some(new) = new {
        journal.steps.push(step(new, dest.clone()));
    }
    Ok(())
}

/// Checks a staged database with `PRAGMA integrity_check`, read-only.
fn check_database(name: &ComponentName, path: &Path) -> Result<()> {
    let fail = |message: String| Error::Database {
        component: name.clone(),
        message,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(e.to_string()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| fail(e.to_string()))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(fail(verdict))
    }
}

/// Undoes the renames of `steps` that happened, newest first. Returns how many.
fn undo(steps: &[Step]) -> std::result::Result<usize, String> {
    let mut undone = 0;
    let mut errors = Vec::new();
    for step in steps.iter().rev() {
        let happened = step.from.symlink_metadata().is_err() && step.to.symlink_metadata().is_ok();
        if !happened {
            continue;
        }
        match fs::rename(&step.to, &step.from) {
            Ok(()) => undone += 1,
            Err(e) => errors.push(format!(
                "moving {} back to {}: {e}",
                step.to.display(),
                step.from.display()
            )),
        }
    }
    let _ = sync_parents(steps);
    if errors.is_empty() {
        Ok(undone)
    } else {
        Err(errors.join("; "))
    }
}

fn discard(journal: &Journal) {
    for p in &journal.discard {
        remove_any(p);
    }
}

fn remove_any(p: &Path) {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

fn write_journal(path: &Path, journal: &Journal) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let bytes = serde_json::to_vec_pretty(journal)
        .map_err(|e| Error::Invalid(format!("encoding the journal: {e}")))?;
    let mut f = fs::File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    f.write_all(&bytes).map_err(Error::io("writing", &tmp))?;
    f.sync_all().map_err(Error::io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("moving", &tmp))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}

fn sync_parents(steps: &[Step]) -> Result<()> {
    let mut dirs: Vec<&Path> = steps
        .iter()
        .flat_map(|s| [s.from.parent(), s.to.parent()])
        .flatten()
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        sync_dir(d)?;
    }
    Ok(())
}
