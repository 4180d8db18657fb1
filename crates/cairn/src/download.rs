//! A backup's archive out of the store: streamed whole or by range, or
//! through a presigned URL.

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};

use std::sync::Arc;

use cairn_archive::{ArchiveMeta, ArchiveWriter, ReadOptions, WriterOptions};
use cairn_catalog::BackupRecord;
use cairn_manifest::{AnyManifest, Root};
use tokio::sync::mpsc;

use crate::backup::{ArchiveSink, Sink};
use crate::error::Error;
use crate::vault::Vault;

/// The metadata of backup `r` for an archive of the same backup: same id,
/// target, kind, texts, time and origin.
fn same_backup(r: &Root) -> ArchiveMeta {
    let o = &r.origin;
    let mut meta = ArchiveMeta::new(r.target.clone(), o.origin_id.clone())
        .backup_id(r.backup_id)
        .kind(r.kind)
        .created_at(r.created_at)
        .software_version(o.software_version.clone());
    if let Some(l) = &r.label {
        meta = meta.label(l);
    }
    if let Some(d) = &r.description {
        meta = meta.description(d);
    }
    if let Some(h) = &o.hostname {
        meta = meta.hostname(h);
    }
    if let Some(m) = &o.model {
        meta = meta.model(m);
    }
    if let Some(s) = &o.serial {
        meta = meta.serial(s);
    }
    meta
}

/// How much one request to the store reads while a range is streamed.
const PIECE: u64 = 8 << 20;

/// A backup's archive (or a byte range of it), streamed from the store; or,
/// for an incremental backup, a full archive of its whole state assembled
/// from its chain as it streams.
#[non_exhaustive]
pub struct ArchiveStream {
    /// The backup.
    pub backup_id: String,
    /// The whole archive's size in bytes (`None` for an assembled archive,
    /// whose length is known only at its end).
    pub size: Option<u64>,
    /// The bytes this stream yields of the stored archive (`0..size` when
    /// whole; `None` for an assembled archive).
    pub range: Option<Range<u64>>,
    /// The whole archive's SHA-256 (signed in its seal), hex; `None` for an
    /// assembled archive.
    pub sha256: Option<String>,
    /// Whether the archive is assembled from an incremental backup's chain
    /// (and signed by this vault's key) rather than the stored object.
    pub assembled: bool,
    /// Whether the bytes are an age file (`<id>.tar.zst.age`): the stored
    /// object of an encrypted backup, or an encrypted chain assembled and
    /// encrypted again to its target's recipients.
    pub encrypted: bool,
    bytes: BoxStream<'static, Result<Bytes, Error>>,
}

impl std::fmt::Debug for ArchiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveStream")
            .field("backup_id", &self.backup_id)
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Stream for ArchiveStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.bytes.as_mut().poll_next(cx)
    }
}

impl Vault {
    /// Streams backup `id`'s archive from the store: the whole of it, or
    /// the byte `range` (end exclusive), read 8 MiB at a time. The bytes are
    /// what the store holds; their digest is checked by whoever verifies
    /// them (the archive's SHA-256 is in the stream's `sha256`).
    ///
    /// An incremental backup's stored archive lacks its unchanged files, so
    /// for it the stream is a **full archive of its whole state**, assembled
    /// as it streams (nothing is staged on disk but its manifest pages): each
    /// file read from whichever backup of the chain holds it and checked
    /// against the backup's signed digests, the same entries, metadata,
    /// components and origin, signed by this vault's key (`assembled`).
    /// GNU tar extracts it, and `cairn verify FILE` accepts it where this
    /// vault's key is trusted.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also for a backup with no archive),
    /// [`Error::Invalid`] for a range that is empty or reaches past the
    /// archive's end, or for any range of an incremental backup (its
    /// archive is assembled as it streams); [`Error::Verification`] for a
    /// chain that does not check out; store errors.
    pub async fn open_archive(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<ArchiveStream, Error> {
        let record = self.inner.backup_record(id).await?;
        if record.parent().is_some() {
            if range.is_some() {
                return Err(Error::Invalid(format!(
                    "backup {id} is incremental: its archive is assembled as it streams, so a byte range of it cannot be served; download it whole"
                )));
            }
            return self.assembled(&record).await;
        }
        let (Some(key), Some(size)) = (record.archive_key.clone(), record.archive_size) else {
            return Err(Error::NotFound {
                what: "archive of backup",
                id: id.to_owned(),
            });
        };
        let store = self.inner.store.clone();
        let (range, bytes) = match range {
            None => {
                let (_, stream) = store.get_stream(&key).await?;
                (0..size, stream.map(|r| r.map_err(Error::from)).boxed())
            }
            Some(r) if r.start < r.end && r.end <= size => {
                let end = r.end;
                let pieces = futures::stream::unfold(r.start, move |at| {
                    let (store, key) = (store.clone(), key.clone());
                    async move {
                        if at >= end {
                            return None;
                        }
                        let to = (at + PIECE).min(end);
                        let piece = store.get_range(&key, at..to).await.map_err(Error::from);
                        Some((piece, to))
                    }
                });
                (r, pieces.boxed())
            }
            Some(r) => {
                return Err(Error::Invalid(format!(
                    "the range {}..{} is not within the archive's {size} bytes",
                    r.start, r.end
                )));
            }
        };
        Ok(ArchiveStream {
            backup_id: record.id.to_string(),
            size: Some(size),
            range: Some(range),
            sha256: record.archive_sha256,
            assembled: false,
            encrypted: !record.recipients.is_empty(),
            bytes,
        })
    }

    /// The whole state of incremental backup `record` as one full archive,
    /// assembled from its chain on a blocking thread while it streams.
    async fn assembled(&self, record: &BackupRecord) -> Result<ArchiveStream, Error> {
        let inner = &self.inner;
        // Assembling decrypts the chain: what leaves is encrypted again, to
        // the target's recipients, never sent in the clear
        // (`docs/encryption.md`).
        let recipients = if record.recipients.is_empty() {
            Vec::new()
        } else {
            let recipients = self.target(record.target.as_str())?.encrypt_to;
            if recipients.is_empty() {
                return Err(Error::Unsupported(format!(
                    "backup {} is encrypted and incremental, and target {} has no recipients (encrypt_to) to encrypt its assembled archive to: restore it instead",
                    record.id, record.target
                )));
            }
            recipients
        };
        let (archive, _, _) =
            crate::verify::open_chain(inner, record, ReadOptions::default()).await?;
        let meta = match archive.manifest() {
            AnyManifest::V2(r) => same_backup(r.manifest()),
            AnyManifest::V1(_) => {
                return Err(Error::Invalid(format!(
                    "backup {} is in format 1 and names no chain",
                    record.id
                )));
            }
        };
        let encrypted = !recipients.is_empty();
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let key = Arc::clone(&inner.key);
        let (threads, scratch) = (inner.threads, inner.scratch.clone());
        let writer = tokio::task::spawn_blocking(move || -> Result<(), Error> {
            std::fs::create_dir_all(&scratch)
                .map_err(|e| Error::Config(format!("creating {}: {e}", scratch.display())))?;
            let opts = WriterOptions::default()
                .format(crate::backup::ARCHIVE_FORMAT)
                .threads(threads)
                .spill_dir(scratch);
            let sink = Sink::new(ArchiveSink::new(tx), &recipients)?;
            let mut w = ArchiveWriter::new(sink, meta, opts)?;
            let mut archive = archive;
            archive.assemble_into(&mut w)?;
            w.finish(&key)?.inner.end()
        });
        // The chunks, then the writer's outcome: a failure ends the stream
        // with an error, so that no truncated archive passes for a whole one.
        let bytes = futures::stream::unfold((rx, Some(writer)), |(mut rx, writer)| async move {
            if let Some(chunk) = rx.recv().await {
                return Some((Ok(chunk), (rx, writer)));
            }
            match writer?.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((Err(e), (rx, None))),
                Err(e) => Some((Err(crate::error::task(e)), (rx, None))),
            }
        });
        Ok(ArchiveStream {
            backup_id: record.id.to_string(),
            size: None,
            range: None,
            sha256: None,
            assembled: true,
            encrypted,
            bytes: bytes.boxed(),
        })
    }

    /// A short-lived URL to download a backup's archive: presigned for S3
    /// and Azure.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also for a backup with no archive);
    /// [`Error::Unsupported`] for stores that cannot sign (local, memory):
    /// a server serves those itself ([`Vault::open_archive`]);
    /// [`Error::Incremental`] for an incremental backup, whose stored object
    /// is not its whole state: serve [`Vault::open_archive`]'s assembled
    /// archive instead.
    pub async fn download_url(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<cairn_storage::SignedUrl, Error> {
        let record = self.inner.backup_record(id).await?;
        if let Some(parent) = record.parent() {
            return Err(Error::Incremental {
                backup: id.to_owned(),
                parent: parent.to_string(),
            });
        }
        let key = record.archive_key.ok_or_else(|| Error::NotFound {
            what: "archive of backup",
            id: id.to_owned(),
        })?;
        let signer = self.inner.store.url_signer().ok_or_else(|| {
            Error::Unsupported(format!(
                "the store {} cannot sign URLs",
                self.inner.store.url()
            ))
        })?;
        Ok(signer.get_url(&key, ttl, self.inner.now()).await?)
    }
}
