//! Running jobs: handles, progress, cancellation, timeouts, persistence.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use std::sync::atomic::AtomicU64;

use cairn_catalog::BackupRecord;
use cairn_job::idempotency::{Fingerprint, IdempotencyKey};
use cairn_job::{Event, Job, JobError, JobKind, JobResult, ProgressUpdate, Resource};
use cairn_storage::Lease;
use tokio::sync::watch;

use crate::error::{Error, task};
use crate::recovery::owner_name;
use crate::vault::Inner;

/// Told when each job of a vault starts and ends (`VaultBuilder::observe`):
/// metrics, logs. Called on the runtime's threads: keep it quick.
pub trait JobObserver: Send + Sync + std::fmt::Debug {
    /// The job was created and will run.
    fn started(&self, _job: &Job) {}
    /// The job reached its terminal state (and it is in the catalog).
    fn ended(&self, _job: &Job) {}
}

/// What [`Vault::shutdown`](crate::Vault::shutdown) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shutdown {
    /// Jobs that ended by themselves within the grace period.
    pub finished: usize,
    /// Jobs cancelled after it, that then stopped (undoing what they did).
    pub cancelled: usize,
    /// Jobs still running after the cancel's wait: the next start of a
    /// vault on this catalog finds them interrupted.
    pub left: usize,
}

/// How long jobs cancelled by a shutdown get to stop.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl crate::vault::Vault {
    /// Stops this vault's jobs for a shutdown: no new job starts
    /// ([`Error::ShuttingDown`]); the jobs running in this process get
    /// `grace` to end by themselves, then are cancelled (a backup leaves
    /// nothing, a restore puts back what it swapped) and waited for 30 s
    /// more. Stop taking requests first.
    pub async fn shutdown(&self, grace: std::time::Duration) -> Shutdown {
        self.inner.closing.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        let mut seen = std::collections::HashSet::new();
        // A job that passed its start's check just before the flag was set
        // joins the list a moment later: look again until none is left.
        loop {
            let running = self.running_handles();
            if running.is_empty() {
                return Shutdown {
                    finished: seen.len(),
                    ..Shutdown::default()
                };
            }
            if seen.is_empty() {
                tracing::info!(jobs = running.len(), ?grace, "waiting for running jobs");
            }
            seen.extend(running.iter().map(|h| h.id.clone()));
            let all = futures::future::join_all(running.into_iter().map(JobHandle::wait));
            if tokio::time::timeout_at(deadline, all).await.is_err() {
                break;
            }
        }
        tracing::warn!("grace period over: cancelling the jobs still running");
        let left = self.running_handles();
        seen.extend(left.iter().map(|h| h.id.clone()));
        for h in &left {
            h.cancel();
        }
        let stopped = tokio::time::timeout(
            CANCEL_WAIT,
            futures::future::join_all(left.iter().cloned().map(JobHandle::wait)),
        )
        .await;
        let still = match stopped {
            Ok(_) => 0,
            Err(_) => left
                .iter()
                .filter(|h| !h.status().state.is_terminal())
                .count(),
        };
        if still > 0 {
            tracing::error!(
                jobs = still,
                "jobs did not stop within 30 s of their cancel; the next start marks them interrupted"
            );
        }
        Shutdown {
            finished: seen.len() - left.len(),
            cancelled: left.len() - still,
            left: still,
        }
    }

    /// Handles of the jobs of this vault that have not ended.
    fn running_handles(&self) -> Vec<JobHandle> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, (tx, cancel))| JobHandle {
                id: id.clone(),
                rx: tx.subscribe(),
                cancel: Some(Arc::clone(cancel)),
            })
            // A job that has just ended leaves the list a moment later.
            .filter(|h| !h.status().state.is_terminal())
            .collect()
    }
}

/// How often a running job looks for a cancel request from another process.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// A job: await it, poll it, watch its progress, cancel it.
///
/// A handle of a job this vault runs is live. One that [`Vault::job`]
/// returns for a job another process runs, or for a job that has ended, is
/// a snapshot read from the catalog: [`status`](Self::status) and
/// [`subscribe`](Self::subscribe) show the job as it was read and never
/// change, [`wait`](Self::wait) returns that snapshot at once (a job of
/// another process may still be running), and [`cancel`](Self::cancel) does
/// nothing. For such a job, [`Vault::follow`] reads the catalog until it
/// ends and [`Vault::cancel`] reaches its process through the catalog;
/// [`is_live`](Self::is_live) tells the two kinds of handle apart.
///
/// [`Vault::job`]: crate::Vault::job
/// [`Vault::follow`]: crate::Vault::follow
/// [`Vault::cancel`]: crate::Vault::cancel
#[derive(Debug, Clone)]
pub struct JobHandle {
    id: String,
    rx: watch::Receiver<Job>,
    cancel: Option<Arc<AtomicBool>>,
}

impl JobHandle {
    pub(crate) fn finished(job: Job) -> Self {
        let (_tx, rx) = watch::channel(job.clone());
        Self {
            id: job.id,
            rx,
            cancel: None,
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the handle follows a job this vault runs (or ran): its
    /// status changes as the job goes, and `wait` waits for its end.
    pub fn is_live(&self) -> bool {
        self.cancel.is_some()
    }

    /// The job as it is now.
    pub fn status(&self) -> Job {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every state change and progress report (the
    /// latest one when several come between two reads).
    pub fn subscribe(&self) -> watch::Receiver<Job> {
        self.rx.clone()
    }

    /// Asks the job to stop at its next checkpoint. A backup leaves nothing
    /// behind; a restore puts back what it had swapped. Nothing for a
    /// snapshot handle (see [`Vault::cancel`](crate::Vault::cancel)).
    pub fn cancel(&self) {
        if let Some(c) = &self.cancel {
            c.store(true, Ordering::SeqCst);
        }
    }

    /// Waits until the job ends and returns it. A snapshot handle returns
    /// its snapshot at once, ended or not (see [`Vault::follow`](crate::Vault::follow)).
    pub async fn wait(mut self) -> Job {
        loop {
            if self.rx.borrow().state.is_terminal() {
                return self.rx.borrow().clone();
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().clone();
            }
        }
    }
}

/// How a job body failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Box<Error>,
    /// A restore applied some components and could not put them all back.
    pub(crate) partial: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error: Box::new(error),
            partial: false,
        }
    }
}

/// What a job has processed: the archive code updates it as it goes, the
/// job's progress reads it, and the runner writes its final values with the
/// job's end.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) bytes: AtomicU64,
    pub(crate) files: AtomicU64,
    pub(crate) cancel: Arc<AtomicBool>,
}

impl Counters {
    /// What was processed so far, as a progress report.
    pub(crate) fn update(&self) -> ProgressUpdate {
        ProgressUpdate {
            processed_bytes: Some(self.bytes.load(Ordering::Relaxed)),
            processed_files: Some(self.files.load(Ordering::Relaxed)),
            ..ProgressUpdate::default()
        }
    }
}

impl cairn_archive::Progress for Counters {
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn entry(&self, _path: &cairn_manifest::EntryPath) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// What a job body gets: its id, progress reporting, cancellation.
#[derive(Debug, Clone)]
pub(crate) struct JobCtx {
    pub(crate) id: String,
    tx: Arc<watch::Sender<Job>>,
    pub(crate) cancel: Arc<AtomicBool>,
    /// What the job processed (files, bytes).
    pub(crate) counters: Arc<Counters>,
    inner: Arc<Inner>,
    last_saved: Arc<std::sync::Mutex<Instant>>,
}

impl JobCtx {
    /// The archive code's view of the counters and cancel flag.
    pub(crate) fn archive_progress(&self) -> Arc<dyn cairn_archive::Progress> {
        Arc::clone(&self.counters) as Arc<dyn cairn_archive::Progress>
    }

    /// This job's own scratch folder (made on first use, removed when the
    /// job ends, and by crash recovery if it never ended).
    pub(crate) fn scratch(&self) -> std::path::PathBuf {
        self.inner.scratch.join(&self.id)
    }

    /// Reports what the counters say now.
    pub(crate) fn report(&self) {
        self.progress(self.counters.update());
    }

    /// Applies a progress report; saves it to the catalog at most once a second.
    pub(crate) fn progress(&self, update: ProgressUpdate) {
        let now = self.inner.now();
        self.tx.send_modify(|job| {
            if let Ok(next) = job.apply(&Event::Progress(update), now) {
                *job = next;
            }
        });
        let due = {
            let mut last = self
                .last_saved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed().as_millis() >= 1000 {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            let job = self.tx.borrow().clone();
            let catalog = Arc::clone(&self.inner.catalog);
            // Progress is advisory: a failed save is retried by the next
            // one, and a save landing after the job ended changes nothing.
            tokio::task::spawn_blocking(move || catalog.put_job_progress(&job));
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// What a new job needs.
pub(crate) struct Spec {
    pub(crate) kind: JobKind,
    pub(crate) target: String,
    /// The backup it reads: leased against delete and prune while it runs.
    pub(crate) backup: Option<String>,
    /// The backup it makes or reads, from the start (the job's `resource`).
    pub(crate) resource: Option<Resource>,
    /// The record of the backup it makes (`creating`), stored once the
    /// target is taken.
    pub(crate) creating: Option<BackupRecord>,
    pub(crate) idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

impl Spec {
    /// A job of `kind` on `target`, reading `backup`; with an idempotency
    /// key, `params` is the request it fingerprints.
    pub(crate) fn new<P: serde::Serialize + ?Sized>(
        kind: JobKind,
        target: &str,
        backup: Option<String>,
        key: Option<&IdempotencyKey>,
        params: &P,
    ) -> Result<Self, Error> {
        let idempotency = match key {
            Some(k) => Some((
                k.clone(),
                Fingerprint::of(kind, target, params).map_err(|e| Error::Invalid(e.to_string()))?,
            )),
            None => None,
        };
        Ok(Spec {
            kind,
            target: target.to_owned(),
            resource: backup.clone().map(Resource::backup),
            backup,
            creating: None,
            idempotency,
        })
    }

    /// A job that makes the backup `record` describes.
    pub(crate) fn making(mut self, record: BackupRecord) -> Self {
        self.resource = Some(Resource::backup(record.id.to_string()));
        self.creating = Some(record);
        self
    }
}

impl Inner {
    /// Creates, registers and spawns a job. Mutating jobs take the target
    /// (in this process, then through the store's lease) before the handle
    /// is returned, so a conflict is an error here, not a failed job.
    pub(crate) async fn start<F, Fut>(
        self: &Arc<Self>,
        spec: Spec,
        body: F,
    ) -> Result<JobHandle, Error>
    where
        F: FnOnce(JobCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<JobResult, Failure>> + Send + 'static,
    {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let now = self.now();
        let id = format!("job_{}", ulid::Ulid::generate().to_string().to_lowercase());
        let mut job = Job::new(&id, spec.kind, &spec.target, now).with_timeout(self.job_timeout);
        job.resource.clone_from(&spec.resource);
        // One mutating job per target in this process (checked again, and
        // taken, once the job record exists). With an idempotency key the
        // replay comes first: a client retrying while its job runs must get
        // that job, not a conflict with it.
        if spec.kind.is_mutating() && spec.idempotency.is_none() {
            self.check_free(&spec.target)?;
        }
        // Idempotency: a replay returns the earlier job.
        if let Some((key, fp)) = spec.idempotency.clone() {
            let catalog = Arc::clone(&self.catalog);
            let job2 = job.clone();
            let ttl = cairn_job::idempotency::DEFAULT_KEY_TTL;
            let created = tokio::task::spawn_blocking(move || {
                catalog.create_job_idempotent(&job2, &key, &fp, ttl, now)
            })
            .await
            .map_err(task)???;
            if let cairn_catalog::JobCreated::Replay(old) = created {
                return Ok(self.handle_of(old));
            }
        } else {
            self.save(&job).await?;
        }
        {
            let (c, i, owner) = (
                Arc::clone(&self.catalog),
                id.clone(),
                owner_name(&self.identity.hostname),
            );
            tokio::task::spawn_blocking(move || c.set_job_owner(&i, &owner, now))
                .await
                .map_err(task)??;
        }
        let lease = if spec.kind.is_mutating() {
            let taken = match self
                .take_target(&spec.target, &id, spec.kind, spec.backup.as_deref())
                .await
            {
                Ok(lease) => self.record_creating(&spec, lease).await,
                Err(e) => Err(e),
            };
            match taken {
                Ok(lease) => Some(lease),
                Err(e) => {
                    let now = self.now();
                    let fail = Event::Fail {
                        error: JobError::new(e.code(), e.report()),
                        partial: false,
                    };
                    let failed = job
                        .apply(&Event::Start, now)
                        .and_then(|j| j.apply(&fail, now))
                        .unwrap_or(job);
                    self.save(&failed).await?;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters {
            cancel: Arc::clone(&cancel),
            ..Counters::default()
        });
        let (tx, rx) = watch::channel(job.clone());
        let tx = Arc::new(tx);
        {
            let mut jobs = self
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            jobs.insert(id.clone(), (Arc::clone(&tx), Arc::clone(&cancel)));
        }
        if let Some(b) = &spec.backup {
            let mut leases = self
                .backup_leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            leases.entry(b.clone()).or_default().push(id.clone());
        }
        let ctx = JobCtx {
            id: id.clone(),
            tx: Arc::clone(&tx),
            cancel: Arc::clone(&cancel),
            counters,
            inner: Arc::clone(self),
            last_saved: Arc::new(std::sync::Mutex::new(Instant::now())),
        };
        for o in &self.observers {
            o.started(&job);
        }
        let inner = Arc::clone(self);
        // Everything the job logs carries its id, kind and target.
        let span =
            tracing::info_span!("job", id = %ctx.id, kind = %spec.kind, target = %spec.target);
        tokio::spawn(tracing::Instrument::instrument(
            inner.run(spec, ctx, lease, body),
            span,
        ));
        Ok(JobHandle {
            id,
            rx,
            cancel: Some(cancel),
        })
    }

    async fn run<F, Fut>(self: Arc<Self>, spec: Spec, ctx: JobCtx, lease: Option<Lease>, body: F)
    where
        F: FnOnce(JobCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<JobResult, Failure>> + Send + 'static,
    {
        self.event(&ctx, &Event::Start).await;
        // The lease is renewed while the job runs; losing it stops the job.
        let (stop_renew, renewer) = match lease {
            Some(lease) => {
                let (stop, rx) = tokio::sync::oneshot::channel::<()>();
                let inner = Arc::clone(&self);
                let cancel = Arc::clone(&ctx.cancel);
                (
                    Some(stop),
                    Some(tokio::spawn(inner.renew(lease, rx, cancel))),
                )
            }
            None => (None, None),
        };
        // The deadline cancels the job; the body then cleans up.
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = {
            let cancel = Arc::clone(&ctx.cancel);
            let flag = Arc::clone(&timed_out);
            let after = std::time::Duration::try_from(self.job_timeout).unwrap_or_default();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                flag.store(true, Ordering::SeqCst);
                cancel.store(true, Ordering::SeqCst);
            })
        };
        // The owner's heartbeat, and cancel requests from other processes.
        let watcher = {
            let cancel = Arc::clone(&ctx.cancel);
            let inner = Arc::clone(&self);
            let id = ctx.id.clone();
            tokio::spawn(async move {
                for tick in 1u64.. {
                    tokio::time::sleep(CANCEL_POLL).await;
                    let (c, i) = (Arc::clone(&inner.catalog), id.clone());
                    let beat = (tick % 4 == 0)
                        .then(|| (owner_name(&inner.identity.hostname), inner.now()));
                    let asked = tokio::task::spawn_blocking(move || {
                        if let Some((owner, now)) = beat {
                            c.set_job_owner(&i, &owner, now)?;
                        }
                        c.cancel_requested(&i)
                    })
                    .await;
                    if matches!(asked, Ok(Ok(true))) {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
            })
        };
        let outcome = body(ctx.clone()).await;
        deadline.abort();
        watcher.abort();
        // The final counts go with the end, not a second late.
        self.event(&ctx, &Event::Progress(ctx.counters.update()))
            .await;
        let event = match outcome {
            Ok(result) => Event::Succeed {
                result: Some(Box::new(result)),
            },
            Err(_) if timed_out.load(Ordering::SeqCst) => Event::Timeout,
            Err(f) if ctx.is_cancelled() && !f.partial => {
                // A cancel request first (unless it was recorded), then the acknowledgement.
                if !ctx.tx.borrow().cancel_requested {
                    self.event(&ctx, &Event::CancelRequest).await;
                }
                Event::Cancelled
            }
            Err(f) => {
                tracing::warn!(job = %ctx.id, error = %f.error, "job failed");
                Event::Fail {
                    error: JobError::new(f.error.code(), f.error.report()),
                    partial: f.partial,
                }
            }
        };
        if let (Some(stop), Some(renewer)) = (stop_renew, renewer) {
            let _ = stop.send(());
            if let Ok(Some(lease)) = renewer.await
                && let Err(e) = lease.release(self.now()).await
            {
                tracing::warn!(error = %e, "releasing the target's lease failed; it expires by itself");
            }
        }
        {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if running.get(&spec.target) == Some(&ctx.id) {
                running.remove(&spec.target);
            }
        }
        if let Some(b) = &spec.backup {
            let mut leases = self
                .backup_leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(v) = leases.get_mut(b) {
                v.retain(|j| j != &ctx.id);
                if v.is_empty() {
                    leases.remove(b);
                }
            }
        }
        // The end is saved, then what was kept for a crash before it is
        // cleaned up, then the end is published: whoever sees the job end
        // finds nothing of it left.
        let ended = self.transition(&ctx, &event).await;
        // A backup cancelled on request never existed: it leaves no record.
        if matches!(event, Event::Cancelled)
            && let Some(record) = &spec.creating
        {
            let id = record.id;
            if let Err(e) = self.blocking(move |c| c.remove_backup(&id)).await {
                tracing::warn!(backup = %id, error = %e, "removing a cancelled backup's record failed");
            }
        }
        self.forget_leftovers(&ctx, spec.kind).await;
        if let Some(job) = ended {
            for o in &self.observers {
                o.ended(&job);
            }
            ctx.tx.send_replace(job);
        }
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ctx.id);
    }

    /// Once a job's end is recorded: its scratch folder goes, and a restore's
    /// committed journal (kept so that a crash before the end was recorded
    /// would still show the restore as done) is no longer needed.
    async fn forget_leftovers(&self, ctx: &JobCtx, kind: JobKind) {
        let (scratch, journals, id) = (ctx.scratch(), self.journals.clone(), ctx.id.clone());
        let done = tokio::task::spawn_blocking(move || {
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch)
                    .map_err(|e| format!("removing {}: {e}", scratch.display()))?;
            }
            if kind.is_restore() {
                cairn_source::forget(&journals, &id).map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cleaning up after the job failed; the next start does it");
            }
            Err(e) => tracing::warn!(error = %e, "cleaning up after the job failed"),
        }
    }

    /// Stores the `creating` record of the backup a job makes, once the
    /// target is taken; on failure the lease is given back.
    async fn record_creating(&self, spec: &Spec, lease: Lease) -> Result<Lease, Error> {
        let Some(record) = spec.creating.clone() else {
            return Ok(lease);
        };
        match self.blocking(move |c| c.insert_backup(&record)).await {
            Ok(()) => Ok(lease),
            Err(e) => {
                self.running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&spec.target);
                if let Err(e) = lease.release(self.now()).await {
                    tracing::warn!(error = %e, "releasing the target's lease failed; it expires by itself");
                }
                Err(e)
            }
        }
    }

    /// Applies an event, saves the job, then publishes it: whoever sees a
    /// new state can rely on it being in the catalog.
    async fn event(&self, ctx: &JobCtx, event: &Event) {
        if let Some(next) = self.transition(ctx, event).await {
            ctx.tx.send_replace(next);
        }
    }

    /// Applies an event and saves the job, without publishing it.
    async fn transition(&self, ctx: &JobCtx, event: &Event) -> Option<Job> {
        let now = self.now();
        let current = ctx.tx.borrow().clone();
        match current.apply(event, now) {
            Ok(next) => {
                if let Err(e) = self.save(&next).await {
                    tracing::error!(error = %e, job = %next.id, "saving the job failed");
                }
                Some(next)
            }
            Err(e) => {
                tracing::error!(error = %e, "illegal job transition");
                None
            }
        }
    }

    async fn renew(
        self: Arc<Self>,
        mut lease: Lease,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        cancel: Arc<AtomicBool>,
    ) -> Option<Lease> {
        let every = self.lease_ttl / 3;
        loop {
            tokio::select! {
                _ = &mut stop => return Some(lease),
                () = tokio::time::sleep(every) => {
                    if let Err(e) = lease.renew(self.now()).await {
                        tracing::error!(error = %e, "lost the target's lease: stopping the job");
                        cancel.store(true, Ordering::SeqCst);
                        let _ = stop.await;
                        return None;
                    }
                }
            }
        }
    }

    pub(crate) async fn save(&self, job: &Job) -> Result<(), Error> {
        let catalog = Arc::clone(&self.catalog);
        let job = job.clone();
        tokio::task::spawn_blocking(move || catalog.put_job(&job))
            .await
            .map_err(task)??;
        Ok(())
    }

    /// A handle on a job known to the catalog: live if it runs here.
    pub(crate) fn handle_of(&self, job: Job) -> JobHandle {
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match jobs.get(&job.id) {
            Some((tx, cancel)) => JobHandle {
                id: job.id.clone(),
                rx: tx.subscribe(),
                cancel: Some(Arc::clone(cancel)),
            },
            None => JobHandle::finished(job),
        }
    }

    /// Fails with [`Error::Busy`] if a mutating job runs on `target` here.
    fn check_free(&self, target: &str) -> Result<(), Error> {
        busy(
            &self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            target,
        )
    }

    /// Takes the target in this process and through the store's lease.
    async fn take_target(
        &self,
        target: &str,
        job: &str,
        kind: JobKind,
        backup: Option<&str>,
    ) -> Result<Lease, Error> {
        {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            busy(&running, target)?;
            running.insert(target.to_owned(), job.to_owned());
        }
        let holder = holder_name(job, kind, backup, &self.identity.hostname);
        let name =
            cairn_manifest::TargetName::parse(target).map_err(|e| Error::Invalid(e.to_string()))?;
        match self
            .store
            .acquire_lease(&name, &holder, self.lease_ttl, self.now())
            .await
        {
            Ok(lease) => Ok(lease),
            Err(e) => {
                self.running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(target);
                if e.kind() == cairn_storage::ErrorKind::LeaseHeld {
                    Err(Error::Busy {
                        target: target.to_owned(),
                        holder: e.to_string(),
                    })
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

fn busy(running: &std::collections::HashMap<String, String>, target: &str) -> Result<(), Error> {
    match running.get(target) {
        Some(other) => Err(Error::Busy {
            target: target.to_owned(),
            holder: format!("job {other} is running"),
        }),
        None => Ok(()),
    }
}

/// The lease holder's name: `<job> <kind> <backup|-> on <host>`; the backup
/// lets other processes refuse to delete it while the job runs.
pub(crate) fn holder_name(job: &str, kind: JobKind, backup: Option<&str>, host: &str) -> String {
    format!("{job} {kind} {} on {host}", backup.unwrap_or("-"))
}

/// The job of a holder name made by [`holder_name`].
pub(crate) fn holder_job(holder: &str) -> Option<&str> {
    holder.split(' ').next()
}

/// The backup of a holder name made by [`holder_name`] (`None` for `-`).
pub(crate) fn holder_backup(holder: &str) -> Option<&str> {
    holder.split(' ').nth(2).filter(|b| *b != "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_read_back() {
        let h = holder_name("job_1", JobKind::Restore, Some("bkp_X"), "host a");
        assert_eq!(holder_job(&h), Some("job_1"));
        assert_eq!(holder_backup(&h), Some("bkp_X"));
        let h = holder_name("job_2", JobKind::Backup, None, "h");
        assert_eq!(holder_backup(&h), None);
    }
}
