//! The backup pipeline: capture → archive (blocking threads) → streaming
//! upload → seal → catalog → retention.

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cairn_archive::{
    ArchiveMeta, ArchiveWriter, Parent, ReadOptions, SeekableArchive, WriterOptions,
};
use cairn_catalog::{BackupRecord, BackupStatus};
use cairn_crypt::EncryptingWriter;
use cairn_integrity::{HashingWriter, SigningKey};
use cairn_job::idempotency::IdempotencyKey;
use cairn_job::{BackupResult, JobKind, JobResult, Phase, ProgressUpdate};
use cairn_manifest::{BackupId, BackupKind, ComponentKind, ComponentName, TargetName};
use cairn_source::{CaptureOptions, ComponentSpec, capture};
use cairn_storage::layout::archive_key;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, task};
use crate::jobs::{Failure, JobCtx, JobHandle, Spec};
use crate::target::TargetConfig;
use crate::vault::{Inner, Vault};

/// The archive extension of new backups.
pub(crate) const EXTENSION: &str = "tar.zst";
/// The extension of an encrypted archive: an age file whose plaintext is
/// the archive (`docs/encryption.md`).
pub(crate) const ENCRYPTED_EXTENSION: &str = "tar.zst.age";
/// Size of the chunks handed from the archive writer to the upload.
const CHUNK: usize = 1 << 20;

/// What to back up.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct BackupRequest {
    /// Manual (default), scheduled or pre-deploy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<BackupKind>,
    /// A label (e.g. a release name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A free description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Exactly these components (optional ones included). Empty: every
    /// component that is not optional.
    pub include: Vec<ComponentName>,
    /// A full backup even when the target's chain rule would make it
    /// incremental.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    /// Trust no file's metadata: read and hash every file; one whose content
    /// is its parent's still refers to the parent's data (see
    /// `ArchiveWriter::set_full_read`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_read: bool,
    /// Makes retries safe: the same key with the same request returns the same job.
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl BackupRequest {
    /// A manual backup of every non-optional component.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: BackupKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Sets the label.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Adds a component to back up.
    #[must_use]
    pub fn include(mut self, name: ComponentName) -> Self {
        self.include.push(name);
        self
    }

    /// Makes it a full backup, whatever the target's chain rule.
    #[must_use]
    pub fn full(mut self) -> Self {
        self.full = true;
        self
    }

    /// Reads every file instead of trusting unchanged metadata; what is the
    /// same as the parent's is still not stored again.
    #[must_use]
    pub fn full_read(mut self) -> Self {
        self.full_read = true;
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
    /// Starts a backup of `target`. The job's result holds `backup_id`,
    /// `size`, `sha256`, `entries`, `data_bytes`, `skipped` and `pruned`;
    /// for an incremental backup (the target's [`ChainRule`](crate::ChainRule)
    /// decides, unless [`BackupRequest::full`]) also `parent`, `depth` and
    /// the files and bytes reused from the chain without being read.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (target), [`Error::Invalid`] (component, a
    /// label or description over the manifest's limits),
    /// [`Error::Busy`] (another mutating job on the target),
    /// [`Error::Idempotency`].
    pub async fn backup(&self, target: &str, req: BackupRequest) -> Result<JobHandle, Error> {
        let config = self.inner.target(target)?.clone();
        if self.inner.require_encryption && config.encrypt_to.is_empty() {
            return Err(Error::Config(format!(
                "target {target} has no recipients (encrypt_to) and this installation requires encryption"
            )));
        }
        check_texts(req.label.as_deref(), req.description.as_deref())?;
        let components = select(&config, &req.include)?;
        let mut record = self.inner.creating(
            &config.name,
            req.kind.unwrap_or(BackupKind::Manual),
            req.label.as_deref(),
            req.description.as_deref(),
        );
        record.components = components.iter().map(|c| c.name.to_string()).collect();
        record.component_kinds = components
            .iter()
            .map(|c| (c.name.to_string(), c.kind))
            .collect();
        let spec = Spec::new(
            JobKind::Backup,
            target,
            None,
            req.idempotency_key.as_ref(),
            &req,
        )?
        .making(record.clone());
        let inner = Arc::clone(&self.inner);
        let (full, full_read) = (req.full, req.full_read);
        self.inner
            .start(spec, move |ctx| {
                let inner2 = Arc::clone(&inner);
                recording(
                    inner2,
                    record.id,
                    run(inner, ctx, config, components, record, (full, full_read)),
                )
            })
            .await
    }
}

/// Refuses, before a job starts, a label or description the archive writer
/// would refuse half-way ([`cairn_manifest::MAX_LABEL_BYTES`],
/// [`cairn_manifest::MAX_DESCRIPTION_BYTES`]).
pub(crate) fn check_texts(label: Option<&str>, description: Option<&str>) -> Result<(), Error> {
    let over = |what: &str, text: Option<&str>, max: usize| match text {
        Some(t) if t.len() > max => Err(Error::Invalid(format!(
            "{what} is {} bytes; at most {max}",
            t.len()
        ))),
        _ => Ok(()),
    };
    over("label", label, cairn_manifest::MAX_LABEL_BYTES)?;
    over(
        "description",
        description,
        cairn_manifest::MAX_DESCRIPTION_BYTES,
    )
}

fn select(config: &TargetConfig, include: &[ComponentName]) -> Result<Vec<ComponentSpec>, Error> {
    if include.is_empty() {
        return Ok(config
            .components
            .iter()
            .filter(|c| !c.optional)
            .cloned()
            .collect());
    }
    include
        .iter()
        .map(|n| {
            config.find(n).cloned().ok_or_else(|| {
                Error::Invalid(format!("target {} has no component {n}", config.name))
            })
        })
        .collect()
}

/// What the blocking half of a backup produced.
pub(crate) struct Written {
    pub(crate) size: u64,
    pub(crate) sha256: cairn_integrity::Sha256Digest,
    pub(crate) manifest: cairn_manifest::AnyManifest,
    pub(crate) seal: cairn_integrity::SignedSeal,
    /// Files and bytes referred to in the parent's chain, not read.
    pub(crate) reused: (u64, u64),
}

/// Where the blocking half writes the archive: 1 MiB chunks handed to the
/// async upload through a bounded channel (a stopped upload fails the write).
pub(crate) struct ArchiveSink {
    buf: BytesMut,
    tx: mpsc::Sender<Bytes>,
}

impl ArchiveSink {
    /// A sink handing 1 MiB chunks to `tx`.
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ArchiveSink {
            buf: BytesMut::with_capacity(CHUNK),
            tx,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Hands over the last chunk; call once the archive is finished.
    pub(crate) fn close(mut self) -> Result<(), Error> {
        self.send().map_err(|source| {
            Error::Archive(cairn_archive::Error::Io {
                op: "handing the archive to the upload",
                path: None,
                source,
            })
        })
    }
}

impl Write for ArchiveSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
            self.buf.reserve(CHUNK);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the body of a job that makes backup `id`; if it fails before the
/// backup is ready, the backup's record says so (`failed`, with why).
pub(crate) async fn recording<F>(
    inner: Arc<Inner>,
    id: BackupId,
    body: F,
) -> Result<JobResult, Failure>
where
    F: Future<Output = Result<JobResult, Failure>>,
{
    let outcome = body.await;
    if let Err(f) = &outcome {
        let message = f.error.to_string();
        // Only a backup still being made: one that is ready stays ready
        // when a later step (retention) fails.
        let marked = inner
            .blocking(move |c| match c.get_backup(&id)? {
                Some(r) if r.status.is_in_progress() => {
                    c.set_status(&id, BackupStatus::Failed, Some(&message))
                }
                _ => Ok(()),
            })
            .await;
        if let Err(e) = marked {
            tracing::warn!(backup = %id, error = %e, "recording the failed backup failed");
        }
    }
    outcome
}

/// Publishes a new backup: `produce` writes the archive on a blocking thread
/// while it streams to the store as a multipart upload (the record reads
/// `uploading`); then the seal is published (put-if-absent, after checking
/// the archive's size) and the record completed (`ready`). On failure or
/// cancellation the upload is aborted and nothing is left.
pub(crate) async fn publish<F>(
    inner: &Arc<Inner>,
    ctx: &JobCtx,
    target: &TargetName,
    (id, extension): (BackupId, &'static str),
    produce: F,
) -> Result<(BackupRecord, Written), Failure>
where
    F: FnOnce(ArchiveSink) -> Result<Written, Error> + Send + 'static,
{
    let start = Instant::now();
    let key = archive_key(target, &id, extension);
    let mut upload = inner.store.upload(&key).await.map_err(Error::from)?;
    inner
        .blocking(move |c| c.set_status(&id, BackupStatus::Uploading, None))
        .await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || {
        produce(ArchiveSink {
            buf: BytesMut::with_capacity(CHUNK),
            tx,
        })
    });

    // Stream chunks to the store while reporting progress.
    let mut upload_error = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => {
                    if upload_error.is_none()
                        && let Err(e) = upload.write(bytes).await
                    {
                        upload_error = Some(e);
                        rx.close();
                    }
                }
                None => break,
            },
            _ = tick.tick() => ctx.report(),
        }
    }
    let written = writer.await.map_err(task)?;
    let written = match (upload_error, written) {
        (None, Ok(w)) if !ctx.is_cancelled() => w,
        (upload_error, written) => {
            if let Err(e) = upload.abort().await {
                tracing::warn!(error = %e, "aborting the upload failed");
            }
            return Err(match (upload_error, written) {
                (Some(e), _) => Error::from(e).into(),
                (None, Err(e)) => e.into(),
                (None, Ok(_)) => Error::Invalid("cancelled".to_owned()).into(),
            });
        }
    };
    upload.finish().await.map_err(Error::from)?;
    ctx.progress(ProgressUpdate {
        phase: Some(Phase::Sealing),
        ..ProgressUpdate::default()
    });
    let seal_bytes = Bytes::from(written.seal.to_bytes());
    if let Err(e) = inner
        .store
        .publish_seal(target, &id, extension, written.size, seal_bytes)
        .await
    {
        let _ = inner.store.delete(&key).await;
        return Err(Error::from(e).into());
    }
    inner.checkpoint("backup:sealed");
    let mut record = BackupRecord::from_sealed(&written.manifest, &written.seal, &key);
    record.duration_ms = Some(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
    {
        let r = record.clone();
        inner.blocking(move |c| c.complete_backup(&r)).await?;
    }
    inner.announce(&record).await;
    tracing::info!(backup = %id, size = written.size, "backup sealed");
    Ok((record, written))
}

/// After a backup is recorded: verify-after-write if the target asks for
/// it, then retention. Returns the job's result.
pub(crate) async fn finish(
    inner: &Arc<Inner>,
    ctx: &JobCtx,
    config: &TargetConfig,
    record: &BackupRecord,
    written: &Written,
) -> Result<BackupResult, Failure> {
    let mut verified = None;
    if let Some(tier) = config.verify_after_write {
        ctx.progress(ProgressUpdate {
            phase: Some(Phase::Verifying),
            ..ProgressUpdate::default()
        });
        let report = crate::verify::verify_backup(inner, record, tier, None).await?;
        if !report.ok {
            // The archive stays for a look until retention purges it.
            let why = format!(
                "verify-after-write ({}) of backup {}: {}",
                tier.as_str(),
                record.id,
                report.message
            );
            let (bid, message) = (record.id, why.clone());
            inner
                .blocking(move |c| c.set_status(&bid, BackupStatus::Failed, Some(&message)))
                .await?;
            return Err(Error::Verification(why).into());
        }
        verified = Some(report);
    }
    ctx.progress(ProgressUpdate {
        phase: Some(Phase::Pruning),
        ..ProgressUpdate::default()
    });
    let pruned = crate::prune::apply(inner, config, false).await?;
    let manifest = &written.manifest;
    let mut made = BackupResult::default();
    made.backup_id = record.id.to_string();
    made.archive_key.clone_from(&record.archive_key);
    made.size = written.size;
    made.sha256 = written.sha256.to_string();
    made.entries = manifest.entry_count();
    made.data_bytes = record.data_bytes;
    made.components.clone_from(&record.components);
    made.skipped = manifest
        .skipped()
        .iter()
        .map(|s| s.path.to_string())
        .collect();
    made.verified = verified;
    made.pruned = pruned.changed();
    made.parent = record.parent().map(ToString::to_string);
    made.depth = record.depth() as u64;
    (made.reused_files, made.reused_bytes) = written.reused;
    Ok(made)
}

async fn run(
    inner: Arc<Inner>,
    ctx: JobCtx,
    config: TargetConfig,
    components: Vec<ComponentSpec>,
    record: BackupRecord,
    (full, full_read): (bool, bool),
) -> Result<JobResult, Failure> {
    let id = record.id;
    tracing::info!(backup = %id, target = %config.name, "backup started");
    let parent = if full {
        None
    } else {
        choose_parent(&inner, &config).await
    };

    // Totals for progress: one pass of metadata reads beside the packing,
    // not before it (on a tree of small files the pass costs a tenth of the
    // backup). The percent shows once they arrive; it never goes back.
    ctx.progress(ProgressUpdate {
        phase: Some(Phase::Archiving),
        ..ProgressUpdate::default()
    });
    let totals = {
        let (c, ctx) = (components.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || {
            if let Some((files, bytes)) = estimate(&c, &|| ctx.is_cancelled()) {
                ctx.progress(ProgressUpdate {
                    total_files: Some(files),
                    total_bytes: Some(bytes),
                    ..ProgressUpdate::default()
                });
            }
        })
    };
    let meta = archive_meta(&inner, &record);
    let opts = WriterOptions::default()
        .format(ARCHIVE_FORMAT)
        .threads(inner.threads)
        .spill_dir(ctx.scratch())
        .progress(ctx.archive_progress());
    let signing = Arc::clone(&inner.key);
    let scratch = ctx.scratch();
    let recipients = config.encrypt_to.clone();
    let extension = Sink::extension(&recipients);
    let (record, written) = publish(&inner, &ctx, &config.name, (id, extension), move |out| {
        std::fs::create_dir_all(&scratch)
            .map_err(|e| Error::Config(format!("creating {}: {e}", scratch.display())))?;
        let fill = Fill {
            id,
            parent,
            components: &components,
            scratch: &scratch,
            full_read,
        };
        let mut w = ArchiveWriter::new(Sink::new(out, &recipients)?, meta, opts)?;
        fill.write_into(&mut w)?;
        let (sink, written) = split(w.finish(&signing)?);
        sink.close(written, &recipients, &signing)
    })
    .await?;
    totals.await.map_err(task)?;
    Ok(JobResult::Backup(
        finish(&inner, &ctx, &config, &record, &written).await?,
    ))
}

/// The parent of the next backup of `config`'s target, opened through its
/// seal with its own chain attached: the newest ready backup this installation made, unless the target's
/// [`ChainRule`](crate::ChainRule) makes the next one full (its chain is
/// `max_depth` long, or its full backup older than `full_every`). `None`
/// means a full backup; a parent that cannot be opened is logged and
/// skipped.
async fn choose_parent(
    inner: &Arc<Inner>,
    config: &TargetConfig,
) -> Option<(BackupId, SeekableArchive<crate::bridge::StoredArchive>)> {
    let rule = config.chain;
    if rule.max_depth == 0 {
        return None;
    }
    let filter = cairn_catalog::BackupFilter {
        target: Some(config.name.clone()),
        ..cairn_catalog::BackupFilter::default()
    };
    let page = inner
        .blocking(move |c| c.list_backups(&filter, 16, None))
        .await
        .ok()?;
    let origin = inner.origin.to_string();
    let newest = page
        .items
        .into_iter()
        .find(|r| r.status.is_ready() && r.archive_key.is_some())?;
    if newest.origin.as_deref() != Some(origin.as_str())
        || newest.depth() >= rule.max_depth as usize
    {
        return None;
    }
    if let Some(every) = rule.full_every {
        let start = match newest.parents.last() {
            Some(full) => {
                inner
                    .backup_record(&full.to_string())
                    .await
                    .ok()?
                    .created_at
            }
            None => newest.created_at,
        };
        let age = inner.now().duration_since(start);
        if age.unsigned_abs() >= every {
            return None;
        }
    }
    // Opened with its own chain: a changed large file's segments are
    // compared with the parent's, which may be in the parent's parents.
    match crate::verify::open_chain(inner, &newest, ReadOptions::default()).await {
        Ok((archive, _, _)) => Some((newest.id, archive)),
        Err(e) => {
            tracing::warn!(parent = %newest.id, error = %e, "the newest backup cannot be a parent: a full backup instead");
            None
        }
    }
}

/// The archive format the engine writes: format 2, whose manifest is in pages,
/// so that memory does not grow with the number of files (`docs/format.md`
/// section 11).
pub(crate) const ARCHIVE_FORMAT: u32 = 2;

/// The metadata of the archive of backup `record` (just started), made by
/// this vault.
pub(crate) fn archive_meta(inner: &Inner, record: &BackupRecord) -> ArchiveMeta {
    let mut meta = ArchiveMeta::new(record.target.clone(), inner.origin.clone())
        .backup_id(record.id)
        .kind(record.kind)
        .created_at(record.created_at)
        .hostname(inner.identity.hostname.clone());
    if let Some(l) = &record.label {
        meta = meta.label(l);
    }
    if let Some(d) = &record.description {
        meta = meta.description(d);
    }
    if let Some(m) = &inner.identity.model {
        meta = meta.model(m);
    }
    if let Some(s) = &inner.identity.serial {
        meta = meta.serial(s);
    }
    if let Some(v) = &inner.identity.software_version {
        meta = meta.software_version(v);
    }
    meta
}

/// What goes into a backup's archive: its parent and its components.
struct Fill<'a> {
    id: BackupId,
    parent: Option<(BackupId, SeekableArchive<crate::bridge::StoredArchive>)>,
    components: &'a [ComponentSpec],
    scratch: &'a std::path::Path,
    full_read: bool,
}

impl Fill<'_> {
    /// Sets the parent (a parent that cannot be read makes the backup full,
    /// not failed) and captures every component into `w`.
    fn write_into<W: Write>(self, w: &mut ArchiveWriter<W>) -> Result<(), Error> {
        w.set_full_read(self.full_read);
        if let Some((pid, archive)) = self.parent {
            match Parent::new(archive) {
                Ok(p) => w.set_parent(p)?,
                Err(e) => {
                    tracing::warn!(backup = %self.id, parent = %pid, error = %e, "the parent cannot be read: a full backup instead");
                }
            }
        }
        for spec in self.components {
            capture(w, spec, self.scratch, &CaptureOptions::default())?;
        }
        Ok(())
    }
}

/// Where an archive being made goes: the upload as it is, or encrypted to
/// the target's recipients on its way (the seal then covers the stored
/// bytes, hashed below the encryption).
pub(crate) enum Sink {
    /// Stored in the clear.
    Plain(ArchiveSink),
    /// Encrypted as it is written.
    Encrypted(EncryptingWriter<HashingWriter<ArchiveSink>>),
}

impl Sink {
    /// The object's extension for a target encrypting to `recipients`.
    pub(crate) fn extension(recipients: &[cairn_crypt::Recipient]) -> &'static str {
        if recipients.is_empty() {
            EXTENSION
        } else {
            ENCRYPTED_EXTENSION
        }
    }

    /// `out`, encrypting to `recipients` if there are any.
    pub(crate) fn new(
        out: ArchiveSink,
        recipients: &[cairn_crypt::Recipient],
    ) -> Result<Self, Error> {
        if recipients.is_empty() {
            return Ok(Sink::Plain(out));
        }
        EncryptingWriter::new(HashingWriter::new(out), recipients)
            .map(Sink::Encrypted)
            .map_err(crypt_error)
    }

    /// Hands the last bytes to the upload; what the finished archive
    /// `written` states, with the seal of the stored object when it was
    /// encrypted.
    pub(crate) fn close(
        self,
        written: Written,
        recipients: &[cairn_crypt::Recipient],
        key: &SigningKey,
    ) -> Result<Written, Error> {
        match self {
            Sink::Plain(out) => {
                out.close()?;
                Ok(written)
            }
            Sink::Encrypted(w) => {
                let (out, sha256, size) = Self::finish_encryption(w)?;
                let sealed = seal_encrypted(written, size, sha256, recipients, key)?;
                out.close()?;
                Ok(sealed)
            }
        }
    }

    /// Hands the last bytes over, with nothing to seal (an archive
    /// assembled for a download).
    pub(crate) fn end(self) -> Result<(), Error> {
        match self {
            Sink::Plain(out) => out.close(),
            Sink::Encrypted(w) => Self::finish_encryption(w)?.0.close(),
        }
    }

    /// The age file's last chunk written: the sink, and the stored bytes'
    /// digest and size.
    fn finish_encryption(
        w: EncryptingWriter<HashingWriter<ArchiveSink>>,
    ) -> Result<(ArchiveSink, cairn_integrity::Sha256Digest, u64), Error> {
        w.finish().map_err(crypt_error)?.finish().map_err(|source| {
            Error::Archive(cairn_archive::Error::Io {
                op: "handing the archive to the upload",
                path: None,
                source,
            })
        })
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Encrypted(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Encrypted(w) => w.flush(),
        }
    }
}

/// What an encrypted archive of `size` stored bytes hashing to `sha256`
/// states: the seal of the stored object, naming the plaintext's size and
/// digest (`plain`'s), the recipients' fingerprints and the parents.
fn seal_encrypted(
    plain: Written,
    size: u64,
    sha256: cairn_integrity::Sha256Digest,
    recipients: &[cairn_crypt::Recipient],
    key: &SigningKey,
) -> Result<Written, Error> {
    let parents = plain
        .manifest
        .v2()
        .map(|r| {
            r.manifest()
                .parents
                .iter()
                .map(|p| p.backup_id.to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut seal = plain.seal.seal().clone();
    seal.archive_size = size;
    seal.archive_sha256 = sha256;
    seal.encryption = Some(cairn_integrity::SealEncryption {
        plain_size: plain.size,
        plain_sha256: plain.sha256,
        recipients: recipients
            .iter()
            .map(cairn_crypt::Recipient::fingerprint)
            .collect(),
        parents,
    });
    Ok(Written {
        size,
        sha256,
        seal: seal
            .sign(key)
            .map_err(|e| Error::Archive(cairn_archive::Error::from(e)))?,
        ..plain
    })
}

/// An encryption failure while writing: what was written cannot be used.
fn crypt_error(e: cairn_crypt::Error) -> Error {
    let (op, source) = match e {
        cairn_crypt::Error::Io { what, source } => (what, source),
        other => (
            "encrypting the archive",
            io::Error::other(other.to_string()),
        ),
    };
    Error::Archive(cairn_archive::Error::Io {
        op,
        path: None,
        source,
    })
}

/// The sink and the rest of a finished archive.
pub(crate) fn split<W>(done: cairn_archive::Finished<W>) -> (W, Written) {
    let written = Written {
        size: done.size,
        sha256: done.sha256,
        manifest: done.manifest,
        seal: done.seal,
        reused: (done.reused_files, done.reused_bytes),
    };
    (done.inner, written)
}

/// Files and bytes the components hold now (for progress totals).
/// `None` if `stop` said so on the way.
fn estimate(components: &[ComponentSpec], stop: &dyn Fn() -> bool) -> Option<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for c in components {
        if c.kind == ComponentKind::Dir {
            for e in walkdir::WalkDir::new(&c.path)
                .follow_links(false)
                .into_iter()
                .flatten()
            {
                if files % 4096 == 0 && stop() {
                    return None;
                }
                files += 1;
                if e.file_type().is_file() {
                    bytes += e.metadata().map_or(0, |m| m.len());
                }
            }
        } else {
            files += 1;
            bytes += std::fs::metadata(&c.path).map_or(0, |m| m.len());
        }
    }
    Some((files, bytes))
}
