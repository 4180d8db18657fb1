//! Transactional restore: staged components swapped in with renames, what
//! they replace kept as `<path>.before-restore`, everything put back on failure.
//!
//! A restore is a list of renames planned up front and written to a journal
//! (fsynced) before the first one. At plan time every rename's source exists
//! and its destination does not, so after a crash the renames that happened
//! are exactly those whose source is gone and whose destination exists:
//! [`recover`] undoes them in reverse order, whatever point the crash hit.
//!
//! Once every rename is done the journal is rewritten as *committed* (the
//! commit point), and again once the post-restore hook ran. A caller that
//! must report the outcome elsewhere (the engine's job record) keeps the
//! committed journal ([`RestoreOptions::keep_journal`]) until it has, then
//! calls [`forget`]: a crash in between leaves a committed journal, and
//! [`recover`] reports the restore as done rather than rolling it back.
//!
//! Staging folders are named `.cairn-staging-<id>-…` ([`staging_prefix`]),
//! and a caller notes where it will make them ([`note_staging`]) before it
//! does: [`recover`] removes the staging folders of a restore that died
//! while unpacking, before any journal existed.

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

/// Whether a restore is asked to stop ([`RestoreOptions::stop`]).
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;

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
    /// Asked while the pre-restore hook runs: true kills the hook and the
    /// restore stops before anything changed (a cancel). The post-restore
    /// hook, which runs once the restore is in place, is not stopped.
    pub stop: Option<Stop>,
    /// Keep the journal, marked committed, when [`apply`] returns: the caller
    /// removes it with [`forget`] once it has recorded the outcome.
    pub keep_journal: bool,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("pre_hook", &self.pre_hook)
            .field("post_hook", &self.post_hook)
            .field("hook_env", &self.hook_env)
            .field("step_check", &self.step_check.as_ref().map(|_| "..."))
            .field("stop", &self.stop.as_ref().map(|_| "..."))
            .field("keep_journal", &self.keep_journal)
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
    /// Every rename is done: recovery must not roll it back.
    #[serde(default)]
    committed: bool,
    /// The post-restore hook's state once committed.
    #[serde(default)]
    post_hook: HookState,
}

/// Whether the post-restore hook of a committed restore ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HookState {
    /// There is none.
    #[default]
    None,
    /// It has not run (yet).
    Pending,
    /// It ran (successfully or not).
    Ran,
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

/// A restore that [`recover`] found unfinished and cleaned up after.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The restore's id.
    pub id: String,
    /// Renames undone (0 for a committed restore or one that died before
    /// its journal existed).
    pub undone: usize,
    /// The restore had committed: every component is in place, nothing was
    /// rolled back.
    pub committed: bool,
    /// For a committed restore with a post-restore hook: whether the hook ran.
    pub post_hook_ran: bool,
    /// Staging folders and other leftovers removed.
    pub removed: Vec<PathBuf>,
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
    check_id(id)?;
    let mut journal = Journal {
        id: id.to_owned(),
        steps: Vec::new(),
        cleanup: Vec::new(),
        discard: Vec::new(),
        committed: false,
        post_hook: HookState::None,
    };
    for item in items {
        if let Err(e) = plan_item(id, item, &mut journal) {
            discard(&journal);
            return Err(e);
        }
    }
    if let Some(hook) = &opts.pre_hook
        && let Err(e) = run_hook("pre_restore", hook, &opts.hook_env, &|| {
            opts.stop.as_ref().is_some_and(|stop| stop())
        })
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
    // The commit point: from here on a crash leaves the restore done.
    journal.committed = true;
    journal.post_hook = if opts.post_hook.is_some() {
        HookState::Pending
    } else {
        HookState::None
    };
    if opts.keep_journal {
        write_journal(&journal_path, &journal)?;
    } else {
        fs::remove_file(&journal_path).map_err(Error::io("removing", &journal_path))?;
        sync_dir(journal_dir)?;
    }
    for p in &journal.cleanup {
        remove_any(p);
    }
    // Staging folders emptied by the renames.
    discard(&journal);
    let post_hook_error = opts.post_hook.as_ref().and_then(|hook| {
        let ran = run_hook("post_restore", hook, &opts.hook_env, &|| false);
        if opts.keep_journal {
            journal.post_hook = HookState::Ran;
            if let Err(e) = write_journal(&journal_path, &journal) {
                return Some(format!(
                    "the post-restore hook ran, but recording it failed: {e}"
                ));
            }
        }
        ran.err().map(|e| e.to_string())
    });
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

/// Cleans up after the restores that did not finish (a crash, a kill) and
/// whose process is gone, as `is_dead(id)` tells: journals, and the staging
/// folders noted with [`note_staging`]. The renames of an uncommitted
/// journal are undone in reverse and its staged copies removed; a committed
/// journal (the process died after its commit point, see
/// [`RestoreOptions::keep_journal`]) is left applied, its leftovers removed.
/// Journals and notes of restores that `is_dead` says still run are left alone.
///
/// # Errors
///
/// [`Error::Io`] if a journal cannot be read or a rename cannot be undone (the
/// journal is then kept); [`Error::Invalid`] for a damaged journal.
pub fn recover(journal_dir: &Path, is_dead: impl Fn(&str) -> bool) -> Result<Vec<Recovered>> {
    let mut out: Vec<Recovered> = Vec::new();
    let entries = match fs::read_dir(journal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("reading", journal_dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        // `<id>.json`, `<id>.staging`, and their `.tmp` while being written.
        let Some((id, ext)) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('.'))
            .map(|(id, ext)| (id.to_owned(), ext.to_owned()))
        else {
            continue;
        };
        if !matches!(
            ext.as_str(),
            "json" | NOTE_EXTENSION | "json.tmp" | "staging.tmp"
        ) || !is_dead(&id)
        {
            continue;
        }
        let slot = match out.iter().position(|r| r.id == id) {
            Some(i) => i,
            None => {
                out.push(Recovered {
                    id: id.clone(),
                    undone: 0,
                    committed: false,
                    post_hook_ran: false,
                    removed: Vec::new(),
                });
                out.len() - 1
            }
        };
        if ext.ends_with(".tmp") {
            remove_any(&path);
            out[slot].removed.push(path);
            continue;
        }
        if ext == NOTE_EXTENSION {
            let removed = remove_noted_staging(&path, &id)?;
            out[slot].removed.extend(removed);
            fs::remove_file(&path).map_err(Error::io("removing", &path))?;
            continue;
        }
        let bytes = fs::read(&path).map_err(Error::io("reading", &path))?;
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "restore journal {} is damaged: {e}",
                path.display()
            ))
        })?;
        let r = &mut out[slot];
        if journal.committed {
            for p in &journal.cleanup {
                if p.symlink_metadata().is_ok() {
                    remove_any(p);
                    r.removed.push(p.clone());
                }
            }
            r.committed = true;
            r.post_hook_ran = journal.post_hook != HookState::Pending;
        } else {
            r.undone = undo(&journal.steps).map_err(|why| Error::Io {
                op: "rolling back the restore of",
                path: path.clone(),
                source: std::io::Error::other(why),
            })?;
        }
        for p in &journal.discard {
            if p.symlink_metadata().is_ok() {
                remove_any(p);
                r.removed.push(p.clone());
            }
        }
        fs::remove_file(&path).map_err(Error::io("removing", &path))?;
    }
    if !out.is_empty() {
        sync_dir(journal_dir)?;
    }
    Ok(out)
}

/// The extension of the notes of [`note_staging`].
const NOTE_EXTENSION: &str = "staging";

/// The name prefix of restore `id`'s staging folders: `.cairn-staging-<id>-`.
pub fn staging_prefix(id: &str) -> String {
    format!(".cairn-staging-{id}-")
}

/// Records, before restore `id` makes its staging folders (named with
/// [`staging_prefix`]) in `dirs`, where they will be, so that [`recover`]
/// removes them if the process dies first. [`forget`] removes the note.
///
/// # Errors
///
/// [`Error::Io`] if the note cannot be written; [`Error::Invalid`] for an id
/// that is not usable as a file name.
pub fn note_staging(journal_dir: &Path, id: &str, dirs: &[PathBuf]) -> Result<()> {
    check_id(id)?;
    fs::create_dir_all(journal_dir).map_err(Error::io("creating", journal_dir))?;
    let path = journal_dir.join(format!("{id}.{NOTE_EXTENSION}"));
    let bytes = serde_json::to_vec_pretty(dirs)
        .map_err(|e| Error::Invalid(format!("encoding the staging note: {e}")))?;
    write_atomic(&path, &bytes)
}

/// Removes what restore `id` kept for [`recover`] (its committed journal,
/// its staging note) once the caller has recorded how it ended.
///
/// # Errors
///
/// [`Error::Io`] if a file exists and cannot be removed.
pub fn forget(journal_dir: &Path, id: &str) -> Result<()> {
    check_id(id)?;
    for ext in ["json", NOTE_EXTENSION] {
        let path = journal_dir.join(format!("{id}.{ext}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &path)(e)),
        }
    }
    sync_dir(journal_dir)
}

/// Removes the staging folders of restore `id` in the folders its note lists.
fn remove_noted_staging(note: &Path, id: &str) -> Result<Vec<PathBuf>> {
    let bytes = fs::read(note).map_err(Error::io("reading", note))?;
    let dirs: Vec<PathBuf> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("staging note {} is damaged: {e}", note.display())))?;
    let prefixes = [staging_prefix(id), format!(".cairn-empty-{id}-")];
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                remove_any(&entry.path());
                removed.push(entry.path());
            }
        }
    }
    Ok(removed)
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!("restore id {id:?} is not usable")));
    }
    Ok(())
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
            // The staging folder the copy is in (for a file, two levels up).
            if let Some(staging) = p.ancestors().skip(1).find(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".cairn-staging-"))
            }) && !journal.discard.iter().any(|d| d == staging)
            {
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
    let bytes = serde_json::to_vec_pretty(journal)
        .map_err(|e| Error::Invalid(format!("encoding the journal: {e}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let mut f = fs::File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    f.write_all(bytes).map_err(Error::io("writing", &tmp))?;
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
