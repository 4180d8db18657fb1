//! A backup's archive out of the store: streamed whole or by range, or
//! through a presigned URL.

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::error::Error;
use crate::vault::Vault;

/// How much one request to the store reads while a range is streamed.
const PIECE: u64 = 8 << 20;

/// A backup's archive (or a byte range of it), streamed from the store.
#[non_exhaustive]
pub struct ArchiveStream {
    /// The backup.
    pub backup_id: String,
    /// The whole archive's size in bytes.
    pub size: u64,
    /// The bytes this stream yields (`0..size` when whole).
    pub range: Range<u64>,
    /// The whole archive's SHA-256 (signed in its seal), hex.
    pub sha256: Option<String>,
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

/// An incremental backup's stored archive is not the whole state: its
/// unchanged files are in its parents. Handing it out as "the backup" would
/// give a tree with files missing, so it is refused until downloads
/// assemble the whole state (`docs/incremental.md`).
fn refuse_incremental(record: &cairn_catalog::BackupRecord) -> Result<(), Error> {
    match record.parent() {
        None => Ok(()),
        Some(parent) => Err(Error::Incremental {
            backup: record.id.to_string(),
            parent: parent.to_string(),
        }),
    }
}

impl Vault {
    /// Streams backup `id`'s archive from the store: the whole of it, or
    /// the byte `range` (end exclusive), read 8 MiB at a time. The bytes are
    /// what the store holds; their digest is checked by whoever verifies
    /// them (the archive's SHA-256 is in the stream's `sha256`).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (also for a backup with no archive),
    /// [`Error::Invalid`] for a range that is empty or reaches past the
    /// archive's end, [`Error::Incremental`] for an incremental backup
    /// (its archive alone is not the whole state), store errors.
    pub async fn open_archive(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<ArchiveStream, Error> {
        let record = self.inner.backup_record(id).await?;
        refuse_incremental(&record)?;
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
            size,
            range,
            sha256: record.archive_sha256,
            bytes,
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
    /// [`Error::Incremental`] for an incremental backup.
    pub async fn download_url(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<cairn_storage::SignedUrl, Error> {
        let record = self.inner.backup_record(id).await?;
        refuse_incremental(&record)?;
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
