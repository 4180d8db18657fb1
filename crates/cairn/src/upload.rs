//! Ingesting an external archive as a backup.

use std::io::Read;
use std::sync::{Arc, Mutex};

use cairn_archive::{IngestOptions, WriterOptions, ingest};
use cairn_catalog::BackupRecord;
use cairn_job::idempotency::IdempotencyKey;
use cairn_job::{JobKind, JobResult, Phase, ProgressUpdate, UploadResult};
use cairn_manifest::{BackupKind, ComponentName};
use serde::Serialize;

use crate::backup::{Sink, archive_meta, finish, publish, recording, split};
use crate::error::Error;
use crate::jobs::{Failure, JobCtx, JobHandle, Spec};
use crate::target::TargetConfig;
use crate::vault::{Inner, Vault};

/// How an external archive becomes a backup.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct UploadRequest {
    /// A label for the new backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The component that receives files found at the archive's top level
    /// (default `root`); each top-level folder becomes a component of its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_component: Option<ComponentName>,
    /// Makes retries safe. The key covers the request's fields, not the
    /// uploaded bytes.
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl UploadRequest {
    /// An upload with default settings.
    pub fn new() -> Self {
        Self::default()
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

    /// Sets the component for top-level files.
    #[must_use]
    pub fn root_component(mut self, name: ComponentName) -> Self {
        self.root_component = Some(name);
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
    /// Ingests an external `.tar`, `.tar.gz` or `.tar.zst` (or a Cairn
    /// archive from elsewhere) read from `input` as a new backup of `target`,
    /// of kind `uploaded`, signed with this vault's key (`input` is read as
    /// the ingest goes: a file, a request body). Paths are checked
    /// as hostile: absolute paths, `..`, links leaving their folder and
    /// absurd sizes are refused.
    ///
    /// A Cairn archive keeps its components and their kinds (its manifest
    /// says them; the new manifest's `source` records its signer and whether
    /// this vault trusts that key). In a foreign tarball, a top-level folder
    /// named like one of the target's `file` or `sqlite` components that
    /// holds one file becomes that component. The job's result is a backup's
    /// plus `source_format`, `source_size` and `source_sha256`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Invalid`] (a label or description over
    /// the manifest's limits), [`Error::Busy`], [`Error::Idempotency`]; a bad
    /// archive fails the job.
    pub async fn upload<R>(
        &self,
        target: &str,
        input: R,
        req: UploadRequest,
    ) -> Result<JobHandle, Error>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        // The ingest reads synchronously on a blocking thread.
        let input = tokio_util::io::SyncIoBridge::new(input);
        let config = self.inner.target(target)?.clone();
        if self.inner.require_encryption && config.encrypt_to.is_empty() {
            return Err(Error::Config(format!(
                "target {target} has no recipients (encrypt_to) and this installation requires encryption"
            )));
        }
        crate::backup::check_texts(req.label.as_deref(), req.description.as_deref())?;
        let record = self.inner.creating(
            &config.name,
            BackupKind::Uploaded,
            req.label.as_deref(),
            req.description.as_deref(),
        );
        let spec = Spec::new(
            JobKind::Upload,
            target,
            None,
            req.idempotency_key.as_ref(),
            &req,
        )?
        .making(record.clone());
        let inner = Arc::clone(&self.inner);
        self.inner
            .start(spec, move |ctx| {
                let id = record.id;
                recording(
                    Arc::clone(&inner),
                    id,
                    ingest_upload(inner, ctx, config, record, input, req),
                )
            })
            .await
    }
}

async fn ingest_upload<R: Read + Send + 'static>(
    inner: Arc<Inner>,
    ctx: JobCtx,
    config: TargetConfig,
    record: BackupRecord,
    input: R,
    req: UploadRequest,
) -> Result<JobResult, Failure> {
    ctx.progress(ProgressUpdate {
        phase: Some(Phase::Ingesting),
        ..ProgressUpdate::default()
    });
    let meta = archive_meta(&inner, &record);
    let mut opts = IngestOptions::default().writer(
        WriterOptions::default()
            .format(crate::backup::ARCHIVE_FORMAT)
            .threads(inner.threads)
            .progress(ctx.archive_progress()),
    );
    for c in &config.components {
        opts = opts.component(c.name.clone(), c.kind, c.optional);
    }
    for key in &inner.trusted {
        opts = opts.trust(*key);
    }
    if let Some(root) = req.root_component.clone() {
        opts = opts.root_component(root);
    }
    let signing = Arc::clone(&inner.key);
    let source = Arc::new(Mutex::new(UploadResult::default()));
    let seen = Arc::clone(&source);
    let recipients = config.encrypt_to.clone();
    let identities = Arc::clone(&inner.identities);
    let (record, written) = publish(
        &inner,
        &ctx,
        &config.name,
        (record.id, Sink::extension(&recipients)),
        move |out| {
            let input = decrypted(input, &identities)?;
            let sink = Sink::new(out, &recipients)?;
            let ingested = ingest(input, sink, meta, &signing, &opts)?;
            {
                let mut s = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                s.source_format = format!("{:?}", ingested.source_format).to_lowercase();
                s.source_size = ingested.source_size;
                s.source_sha256 = ingested.source_sha256.to_string();
            }
            let (sink, written) = split(ingested.archive);
            sink.close(written, &recipients, &signing)
        },
    )
    .await?;
    let mut made = std::mem::take(
        &mut *source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    made.backup = finish(&inner, &ctx, &config, &record, &written).await?;
    Ok(JobResult::Upload(made))
}

/// The upload as the ingest reads it: an age file (a Cairn archive or a
/// tarball someone encrypted with `age -r`) decrypted with the vault's
/// identities, anything else as it comes.
fn decrypted<R: Read + Send + 'static>(
    mut input: R,
    identities: &cairn_crypt::Identities,
) -> Result<Box<dyn Read + Send>, Error> {
    let mut head = Vec::with_capacity(32);
    (&mut input)
        .take(32)
        .read_to_end(&mut head)
        .map_err(|source| {
            Error::Archive(cairn_archive::Error::Io {
                op: "reading the upload",
                path: None,
                source,
            })
        })?;
    let whole = std::io::Cursor::new(head).chain(input);
    if !cairn_crypt::is_age(whole.get_ref().0.get_ref()) {
        return Ok(Box::new(whole));
    }
    cairn_crypt::DecryptingReader::new(whole, identities)
        .map(|r| Box::new(r) as Box<dyn Read + Send>)
        .map_err(|e| match e.kind() {
            cairn_crypt::ErrorKind::Io => Error::Archive(cairn_archive::Error::Io {
                op: "reading the upload",
                path: None,
                source: std::io::Error::other(e.to_string()),
            }),
            _ => Error::Verification(format!("the uploaded age file: {e}")),
        })
}
