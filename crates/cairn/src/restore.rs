//! Restores: in place (transactional), into another directory, dry runs,
//! factory resets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn_archive::{ReadOptions, Staged, UnpackOptions};
use cairn_catalog::{BackupRecord, BackupStatus};
use cairn_job::idempotency::IdempotencyKey;
use cairn_job::{
    JobKind, JobResult, Phase, ProgressUpdate, RestoreOutcome, RestoreResult, Restored,
};
use cairn_manifest::{AnyManifest, ComponentKind, ComponentName};
use cairn_source::{Replacement, RestoreItem, RestoreOptions, StepCheck};
use serde::Serialize;

use crate::error::{Error, task};
use crate::jobs::{Failure, JobCtx, JobHandle, Spec};
use crate::target::TargetConfig;
use crate::vault::{Inner, Vault};

/// What to restore, where, and how.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RestoreRequest {
    /// Restore onto this target (default: the backup's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only these components (optional ones only when named). Empty: every
    /// non-optional component of the backup.
    pub include: Vec<ComponentName>,
    /// Unpack into this directory (which must not exist or be empty)
    /// instead of in place; no origin check, no confirmation needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<PathBuf>,
    /// Only this file or folder (`component/relative/path`, see
    /// [`crate::parse_path`]) and the folders above it, into `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only report what would be created, replaced and deleted.
    pub dry_run: bool,
    /// Restore a backup from another origin or target anyway.
    pub force: bool,
    /// Required for an in-place restore: it replaces the target's data.
    pub confirm: bool,
    /// Makes retries safe.
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl RestoreRequest {
    /// An in-place restore of every non-optional component, not yet confirmed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Confirms an in-place restore.
    #[must_use]
    pub fn confirm(mut self) -> Self {
        self.confirm = true;
        self
    }

    /// Adds a component to restore.
    #[must_use]
    pub fn include(mut self, name: ComponentName) -> Self {
        self.include.push(name);
        self
    }

    /// Restores into `dir` instead of in place.
    #[must_use]
    pub fn to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.to = Some(dir.into());
        self
    }

    /// Restores only the file or folder at `path` (with [`RestoreRequest::to`]).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Makes it a dry run.
    #[must_use]
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Allows a backup from another origin or target.
    #[must_use]
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// Restores onto another configured target.
    #[must_use]
    pub fn onto(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

impl Vault {
    /// Starts a restore of backup `id`.
    ///
    /// In place, the selected components are unpacked (reading only their
    /// frames) into staging directories beside their destinations, every
    /// digest and the manifest signature checked, databases checked with
    /// `integrity_check`, then swapped in with renames, each replaced
    /// component kept as `<path>.before-restore`; any failure puts back what
    /// was swapped. The job's result lists the components and kept copies.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Invalid`] (not confirmed, unknown
    /// component, deleted or unready backup), [`Error::Busy`],
    /// [`Error::Idempotency`]. A foreign origin, a tampered archive or a
    /// wrong key fail the job with nothing changed.
    pub async fn restore(&self, id: &str, req: RestoreRequest) -> Result<JobHandle, Error> {
        // As every host left it: deleted, purged or published elsewhere.
        match self.inner.backup_record(id).await {
            Ok(r) => {
                self.inner.sync_target(&r.target).await?;
            }
            Err(Error::NotFound { .. }) => {
                self.sync().await?;
            }
            Err(e) => return Err(e),
        }
        let record = self.inner.backup_record(id).await?;
        if record.status != BackupStatus::Ready {
            return Err(Error::Invalid(format!("backup {id} is not ready")));
        }
        if record.deleted_at.is_some() {
            return Err(Error::Invalid(format!(
                "backup {id} is deleted: undelete it first"
            )));
        }
        let target = req
            .target
            .clone()
            .unwrap_or_else(|| record.target.to_string());
        let in_place = req.to.is_none() && !req.dry_run;
        if in_place && !req.confirm {
            return Err(Error::Invalid(format!(
                "restoring {id} replaces the data of target {target}: confirm it"
            )));
        }
        if let Some(p) = &req.path {
            if req.to.is_none() || req.dry_run {
                return Err(Error::Invalid(format!(
                    "path {p}: a single file or folder is restored into a folder of its own (to)"
                )));
            }
            let component = String::from_utf8_lossy(crate::parse_path(p)?.first()).into_owned();
            if req.include.iter().any(|n| n.as_str() != component) {
                return Err(Error::Invalid(format!(
                    "path {p} is in component {component}, not in those included"
                )));
            }
            // Not found is refused now, from the authenticated manifest.
            self.entry(id, p).await?;
        }
        // The catalog lists the backup's components: a name it lacks is
        // refused now rather than by the job (the manifest, read by the
        // job, stays the authority).
        if let Some(n) = req
            .include
            .iter()
            .find(|n| !record.components.iter().any(|c| c == n.as_str()))
        {
            return Err(Error::Invalid(format!("backup {id} has no component {n}")));
        }
        let config = match (&req.to, self.inner.find_target(&target)) {
            (_, Some(c)) => Some(c),
            (Some(_), None) => None,
            (None, None) => {
                return Err(Error::NotFound {
                    what: "target",
                    id: target,
                });
            }
        };
        // A plain backup is not restored in place where encryption is
        // required (its seal, signed, says whether it is encrypted).
        if in_place && self.inner.require_encryption {
            let (seal, _) = crate::verify::read_seal(&self.inner, &record)
                .await?
                .map_err(|why| Error::Verification(format!("backup {id}: {why}")))?;
            if seal.seal().encryption.is_none() {
                return Err(Error::Verification(format!(
                    "backup {id} is not encrypted and this installation requires encryption: restore it elsewhere (--to) to look at it"
                )));
            }
        }
        // What the job would refuse half-way is refused now, from the
        // authenticated manifest (which the job reads again).
        let manifest = self.open_manifest(id).await?;
        if let Some(e) = foreign(&self.inner, &manifest, &target, &req) {
            return Err(e);
        }
        if req.to.is_none()
            && let Some(config) = &config
        {
            let selected = select(&manifest, &req.include)?;
            for name in &selected {
                check_kind(&manifest, config, name)?;
            }
        }
        let spec = Spec::new(
            JobKind::Restore,
            &target,
            Some(id.to_owned()),
            req.idempotency_key.as_ref(),
            &(id, &req),
        )?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .start(spec, move |ctx| async move {
                let plan = Plan {
                    record,
                    target,
                    config,
                    req,
                };
                run(inner, ctx, plan).await
            })
            .await
    }

    /// Factory reset of a target: restores its newest pinned backup labelled
    /// `factory`, or, when it has none, empties its components (each kept as
    /// `.before-restore`). Needs `confirm`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Invalid`] (not confirmed), [`Error::Busy`],
    /// [`Error::Idempotency`].
    pub async fn reset(&self, target: &str, req: ResetRequest) -> Result<JobHandle, Error> {
        let (confirm, key) = (req.confirm, req.idempotency_key);
        let config = self.inner.target(target)?;
        if !confirm {
            return Err(Error::Invalid(format!(
                "a factory reset replaces the data of target {target}: confirm it"
            )));
        }
        let name = config.name.clone();
        let factory = self
            .inner
            .blocking(move |c| c.target_backups(&name))
            .await?
            .into_iter()
            .filter(|b| {
                b.pinned
                    && b.deleted_at.is_none()
                    && b.status == BackupStatus::Ready
                    && b.label.as_deref() == Some("factory")
            })
            .max_by_key(|b| b.created_at);
        let spec = Spec::new(
            JobKind::Reset,
            target,
            factory.as_ref().map(|b| b.id.to_string()),
            key.as_ref(),
            &confirm,
        )?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .start(spec, move |ctx| async move {
                match factory {
                    Some(record) => {
                        let include = record
                            .components
                            .iter()
                            .filter_map(|c| ComponentName::parse(c).ok())
                            .collect();
                        let plan = Plan {
                            record,
                            target: config.name.to_string(),
                            config: Some(config),
                            req: RestoreRequest {
                                include,
                                confirm: true,
                                ..RestoreRequest::default()
                            },
                        };
                        run(inner, ctx, plan).await
                    }
                    None => empty(inner, ctx, config).await,
                }
            })
            .await
    }
}

/// A factory reset.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ResetRequest {
    /// Required: a reset replaces the target's data.
    pub confirm: bool,
    /// Makes retries safe (see [`crate::VerifyRequest::idempotency_key`]).
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl ResetRequest {
    /// A reset, not yet confirmed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Confirms it.
    #[must_use]
    pub fn confirm(mut self) -> Self {
        self.confirm = true;
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

struct Plan {
    record: BackupRecord,
    target: String,
    config: Option<TargetConfig>,
    req: RestoreRequest,
}

async fn run(inner: Arc<Inner>, ctx: JobCtx, plan: Plan) -> Result<JobResult, Failure> {
    let Plan {
        record,
        target,
        config,
        req,
    } = plan;
    ctx.progress(ProgressUpdate {
        phase: Some(Phase::Preparing),
        ..ProgressUpdate::default()
    });
    let read_opts = ReadOptions::default().progress(ctx.archive_progress());
    let (archive, fetched, _) = crate::verify::open_chain(&inner, &record, read_opts).await?;
    let journals = inner.journals.clone();
    let job_id = ctx.id.clone();
    let cancel = Arc::clone(&ctx.cancel);
    let ctx2 = ctx.clone();
    let backup_id = record.id.to_string();
    let inner2 = Arc::clone(&inner);
    // Report the bytes read and checked while the blocking work runs.
    let ticker = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                ctx.report();
            }
        })
    };
    let outcome = tokio::task::spawn_blocking(move || -> Result<RestoreResult, Failure> {
        let inner = inner2;
        let mut archive = archive;
        let manifest = archive.manifest().clone();
        if let Some(e) = foreign(&inner, &manifest, &target, &req) {
            return Err(e.into());
        }
        let subtree = req.path.as_deref().map(crate::parse_path).transpose()?;
        let selected = match &subtree {
            Some(p) => vec![
                ComponentName::parse(&String::from_utf8_lossy(p.first()))
                    .map_err(|e| Error::Invalid(format!("path {p}: {e}")))?,
            ],
            None => select(&manifest, &req.include)?,
        };
        let total: u64 = manifest
            .components()
            .iter()
            .filter(|c| selected.contains(&c.name))
            .map(|c| c.bytes)
            .sum();
        ctx2.progress(ProgressUpdate {
            phase: Some(Phase::Staging),
            total_bytes: Some(total),
            ..ProgressUpdate::default()
        });
        let names: Vec<String> = selected.iter().map(ToString::to_string).collect();
        let result = |done: Restored| {
            let mut r = RestoreResult::new(&target, names.clone(), done);
            r.backup_id = Some(backup_id.clone());
            r
        };
        // Staging folders are named after the job, and noted before they
        // exist: crash recovery finds them whenever the process dies.
        let mut staging =
            UnpackOptions::default().staging_prefix(cairn_source::staging_prefix(&job_id));
        if let Some(p) = subtree {
            staging = staging.subtree(p);
        }
        if let Some(to) = &req.to {
            let parent = parent_of(to)?;
            std::fs::create_dir_all(&parent)
                .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", parent.display())))?;
            cairn_source::note_staging(&journals, &job_id, std::slice::from_ref(&parent))
                .map_err(Error::from)?;
            let staged = archive
                .unpack_to_staging(&parent, &staging.components(selected.clone()))
                .map_err(Error::from)?;
            let stats = staged.stats();
            staged.commit(to).map_err(Error::from)?;
            return Ok(result(Restored::Into {
                to: to.clone(),
                entries: stats.entries,
                bytes: stats.bytes,
            }));
        }
        let config = config.ok_or_else(|| Error::NotFound {
            what: "target",
            id: target.clone(),
        })?;
        let specs = selected
            .iter()
            .map(|name| check_kind(&manifest, &config, name).cloned())
            .collect::<Result<Vec<_>, Error>>()?;
        if req.dry_run {
            let items: Vec<_> = specs.iter().map(|s| (s.clone(), true)).collect();
            // The entries of the selected components, page by page.
            let mut entries = Vec::new();
            archive
                .for_each_entry(|e| {
                    if selected
                        .iter()
                        .any(|c| c.as_str().as_bytes() == e.path.first())
                    {
                        entries.push(e.clone());
                    }
                    Ok(())
                })
                .map_err(Error::from)?;
            let dry_run = cairn_source::dry_run(&entries, &items).map_err(Error::from)?;
            return Ok(result(Restored::Preview { dry_run }));
        }
        // Stage each component beside its destination: renames stay on one filesystem.
        let parents = specs
            .iter()
            .map(|spec| parent_of(&spec.path))
            .collect::<Result<Vec<_>, Error>>()?;
        for parent in &parents {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", parent.display())))?;
        }
        cairn_source::note_staging(&journals, &job_id, &parents).map_err(Error::from)?;
        let mut staged: Vec<Staged> = Vec::new();
        let mut items = Vec::new();
        for (spec, parent) in specs.iter().zip(&parents) {
            let s = archive
                .unpack_to_staging(parent, &staging.clone().components([spec.name.clone()]))
                .map_err(Error::from)?;
            let mut path = s.component_path(&spec.name);
            if spec.kind != ComponentKind::Dir {
                path = only_file(&path)?;
            }
            items.push(RestoreItem {
                spec: spec.clone(),
                replacement: Replacement::Staged(path),
            });
            staged.push(s);
        }
        ctx2.progress(ProgressUpdate {
            phase: Some(Phase::Swapping),
            ..ProgressUpdate::default()
        });
        let done = swap(&inner, &job_id, &config, &items, &backup_id, cancel)?;
        drop(staged);
        Ok(result(done))
    })
    .await
    .map_err(task);
    ticker.abort();
    let mut result = outcome??;
    // How much of the archive was read: a partial restore reads only its frames.
    result.bytes_read = Some(fetched.fetched());
    Ok(JobResult::Restore(result))
}

/// A backup from another origin or target, restored in place without force.
fn foreign(
    inner: &Inner,
    manifest: &AnyManifest,
    target: &str,
    req: &RestoreRequest,
) -> Option<Error> {
    let origin = inner.origin.as_str();
    let theirs = &manifest.origin().origin_id;
    let ours = theirs.as_str() == origin && manifest.target().as_str() == target;
    (req.to.is_none() && !req.force && !ours).then(|| Error::ForeignOrigin {
        backup: manifest.backup_id().to_string(),
        origin: theirs.to_string(),
        target: manifest.target().to_string(),
        ours: format!("{origin}, target {target}"),
    })
}

/// The target's component `name`, if the backup's component of that name
/// is of its kind and can be restored onto it in place.
fn check_kind<'a>(
    manifest: &AnyManifest,
    config: &'a TargetConfig,
    name: &ComponentName,
) -> Result<&'a cairn_source::ComponentSpec, Error> {
    let target = &config.name;
    let spec = config.find(name).ok_or_else(|| {
        Error::Invalid(format!(
            "component {name} of the backup is not configured on target {target}"
        ))
    })?;
    let kind = manifest.component(name).map(|c| c.kind);
    if kind != Some(spec.kind) {
        return Err(Error::Invalid(format!(
            "component {name} is a {} in the backup and a {} on target {target}: it cannot be restored in place (restore it with --to DIR instead)",
            kind.map_or("?", |k| k.as_str()),
            spec.kind.as_str()
        )));
    }
    Ok(spec)
}

async fn empty(inner: Arc<Inner>, ctx: JobCtx, config: TargetConfig) -> Result<JobResult, Failure> {
    let cancel = Arc::clone(&ctx.cancel);
    tokio::task::spawn_blocking(move || {
        let items: Vec<RestoreItem> = config
            .components
            .iter()
            .map(|spec| RestoreItem {
                spec: spec.clone(),
                replacement: Replacement::Empty,
            })
            .collect();
        let parents = config
            .components
            .iter()
            .map(|spec| parent_of(&spec.path))
            .collect::<Result<Vec<_>, Error>>()?;
        cairn_source::note_staging(&inner.journals, &ctx.id, &parents).map_err(Error::from)?;
        let done = swap(&inner, &ctx.id, &config, &items, "-", cancel)?;
        let names = items.iter().map(|i| i.spec.name.to_string()).collect();
        Ok(JobResult::Restore(RestoreResult::new(
            config.name.to_string(),
            names,
            done,
        )))
    })
    .await
    .map_err(task)?
}

/// Runs the transaction with the target's hooks; a cancel stops it before
/// the next rename. The committed journal is kept until the job's end is
/// recorded (the runner forgets it then).
fn swap(
    inner: &Inner,
    job_id: &str,
    config: &TargetConfig,
    items: &[RestoreItem],
    backup_id: &str,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Restored, Failure> {
    let crash = inner.crash_hook();
    let asked = Arc::clone(&cancel);
    let stop: cairn_source::Stop = Arc::new(move || asked.load(Ordering::SeqCst));
    let check: StepCheck = Arc::new(move |_| {
        if let Some(hook) = &crash {
            hook("restore:rename");
        }
        if cancel.load(Ordering::SeqCst) {
            Err("cancelled".to_owned())
        } else {
            Ok(())
        }
    });
    let opts = RestoreOptions {
        pre_hook: config.pre_restore.clone(),
        post_hook: config.post_restore.clone(),
        hook_env: vec![
            ("CAIRN_TARGET".to_owned(), config.name.to_string()),
            ("CAIRN_BACKUP_ID".to_owned(), backup_id.to_owned()),
            ("CAIRN_JOB_ID".to_owned(), job_id.to_owned()),
        ],
        step_check: Some(check),
        stop: Some(stop),
        keep_journal: true,
    };
    match cairn_source::apply(job_id, &inner.journals, items, &opts) {
        Ok(done) => {
            inner.checkpoint("restore:applied");
            Ok(Restored::InPlace {
                kept: done.kept,
                post_hook_error: done.post_hook_error,
                outcome: RestoreOutcome::Completed,
            })
        }
        Err(e @ cairn_source::Error::RollbackFailed { .. }) => Err(Failure {
            error: Box::new(e.into()),
            partial: true,
        }),
        Err(e) => Err(Error::from(e).into()),
    }
}

fn select(manifest: &AnyManifest, include: &[ComponentName]) -> Result<Vec<ComponentName>, Error> {
    if include.is_empty() {
        return Ok(manifest
            .components()
            .iter()
            .filter(|c| !c.optional)
            .map(|c| c.name.clone())
            .collect());
    }
    for n in include {
        if manifest.component(n).is_none() {
            return Err(Error::Invalid(format!(
                "backup {} has no component {n}",
                manifest.backup_id()
            )));
        }
    }
    Ok(include.to_vec())
}

fn parent_of(path: &Path) -> Result<PathBuf, Error> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::Invalid(format!("no working directory: {e}")))?
            .join(path)
    };
    abs.parent()
        .map(Path::to_owned)
        .ok_or_else(|| Error::Invalid(format!("{} has no parent directory", path.display())))
}

/// The one file a `file` or `sqlite` component unpacks to.
fn only_file(dir: &Path) -> Result<PathBuf, Error> {
    let mut files = std::fs::read_dir(dir)
        .map_err(|e| Error::Invalid(format!("reading {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path());
    match (files.next(), files.next()) {
        (Some(f), None) => Ok(f),
        _ => Err(Error::Invalid(format!(
            "{} should hold exactly one file",
            dir.display()
        ))),
    }
}
