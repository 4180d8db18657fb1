//! Where sync meets async: the archive reader's range reads served by a store.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cairn_archive::RangeRead;
use cairn_storage::Store;
use tokio::runtime::Handle;

/// How much one request to the store fetches while a range is read.
pub(crate) const FETCH_SIZE: u64 = 8 << 20;

/// One object of a store as a [`RangeRead`], so that `SeekableArchive` reads
/// a manifest, a component or one file from S3, Azure or a local store with
/// range requests, never downloading the whole archive.
///
/// The archive reader is synchronous: use this from a blocking thread
/// (`tokio::task::spawn_blocking`), never from inside an async task, where
/// blocking on the runtime would deadlock (Tokio panics instead).
/// A range is fetched lazily, [`FETCH_SIZE`] bytes at a time, so memory stays
/// bounded whatever its length. A local store's file is read directly
/// (positioned reads into the reader's own buffer): going through the store
/// would copy every range into a buffer allocated on one of the runtime's
/// blocking threads, which costs a copy and, with glibc's per-thread arenas,
/// 20 MiB of peak RSS in a restore of 1 GiB (`docs/performance.md`).
#[derive(Debug, Clone)]
pub(crate) struct StoreRangeReader {
    store: Store,
    key: String,
    len: u64,
    handle: Handle,
    fetched: Arc<AtomicU64>,
    /// A local store's file, once opened.
    file: Option<Arc<File>>,
}

impl StoreRangeReader {
    /// A reader of `key`, whose length is `len` (from a listing, a head or a
    /// seal), driving requests on the runtime behind `handle`.
    pub(crate) fn new(store: Store, key: impl Into<String>, len: u64, handle: Handle) -> Self {
        Self {
            store,
            key: key.into(),
            len,
            handle,
            fetched: Arc::new(AtomicU64::new(0)),
            file: None,
        }
    }

    /// This reader counting its bytes with `other`'s (the archives of one
    /// chain read as one).
    pub(crate) fn counting_with(mut self, other: &StoreRangeReader) -> Self {
        self.fetched = Arc::clone(&other.fetched);
        self
    }

    /// Bytes fetched from the store so far (by this reader and its clones).
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Opens the age file this reader reads as its plaintext, with one of
    /// `identities`. A local store's file is read [`LOCAL_FETCH`] at a
    /// time, a remote store's [`cairn_crypt::DEFAULT_FETCH`] (a request
    /// each).
    pub(crate) fn decrypted(
        self,
        identities: &cairn_crypt::Identities,
    ) -> cairn_crypt::Result<cairn_crypt::Decrypted<StoreRangeReader>> {
        let local = matches!(self.store.local_file(&self.key), Ok(Some(_)));
        let fetch = if local {
            LOCAL_FETCH
        } else {
            cairn_crypt::DEFAULT_FETCH
        };
        cairn_crypt::Decrypted::open_fetching(self, identities, fetch)
    }
}

/// How many stored bytes of an encrypted archive in a local file are read
/// at a time: small enough to stay in the CPU's caches (a 4 MiB buffer made
/// a restore of 1 GiB 8% slower and its peak RSS 10 MiB larger,
/// `docs/performance.md` "Encryption").
pub(crate) const LOCAL_FETCH: u64 = 512 << 10;

impl RangeRead for StoreRangeReader {
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>> {
        cairn_archive::check_range(&range, self.len, &self.key)?;
        if self.file.is_none() {
            let at = |e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", self.key));
            if let Some(path) = self.store.local_file(&self.key).map_err(|e| at(&e))? {
                self.file = Some(Arc::new(File::open(path).map_err(|e| at(&e))?));
            }
        }
        if let Some(file) = &self.file {
            return Ok(Box::new(FileRange {
                file,
                key: &self.key,
                next: range.start,
                end: range.end,
                fetched: &self.fetched,
            }));
        }
        Ok(Box::new(Chunks {
            reader: self,
            next: range.start,
            end: range.end,
            buf: Bytes::new(),
        }))
    }
}

/// A stored archive as the archive reader sees it: the object itself, or,
/// when its seal says it is encrypted, its plaintext, decrypted chunk by
/// chunk as ranges are read (`docs/encryption.md`).
#[derive(Debug)]
pub(crate) enum StoredArchive {
    /// An archive stored in the clear.
    Plain(StoreRangeReader),
    /// An age file, read as its plaintext.
    Encrypted(Box<cairn_crypt::Decrypted<StoreRangeReader>>),
}

impl StoredArchive {
    /// Opens the object `reader` reads, sealed by `seal`: decrypted with
    /// one of `identities` when the seal says it is encrypted. Blocking
    /// (call it from a blocking thread).
    ///
    /// # Errors
    ///
    /// [`crate::Error::NoIdentity`] when no identity opens it; a failed
    /// verification when its header or last chunk does not authenticate.
    pub(crate) fn open(
        reader: StoreRangeReader,
        seal: &cairn_integrity::SignedSeal,
        identities: &cairn_crypt::Identities,
    ) -> Result<Self, crate::Error> {
        if seal.seal().encryption.is_none() {
            return Ok(StoredArchive::Plain(reader));
        }
        let id = &seal.seal().backup_id;
        reader
            .decrypted(identities)
            .map(|d| StoredArchive::Encrypted(Box::new(d)))
            .map_err(|e| match e.kind() {
                cairn_crypt::ErrorKind::NoMatchingIdentity => crate::Error::NoIdentity {
                    backup: id.to_string(),
                },
                cairn_crypt::ErrorKind::Io => crate::Error::Archive(cairn_archive::Error::Io {
                    op: "reading the encrypted archive",
                    path: None,
                    source: io::Error::other(e.to_string()),
                }),
                _ => crate::Error::Verification(format!("backup {id}: {e}")),
            })
    }
}

impl RangeRead for StoredArchive {
    fn len(&mut self) -> io::Result<u64> {
        match self {
            StoredArchive::Plain(r) => r.len(),
            StoredArchive::Encrypted(d) => d.len(),
        }
    }

    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>> {
        match self {
            StoredArchive::Plain(r) => r.read_range(range),
            StoredArchive::Encrypted(d) => d.read_range(range),
        }
    }
}

/// Reads a range of a local store's file.
struct FileRange<'a> {
    file: &'a File,
    key: &'a str,
    next: u64,
    end: u64,
    fetched: &'a AtomicU64,
}

impl Read for FileRange<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.next).map_or(out.len(), |n| n.min(out.len()));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut out[..want], self.next)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ends at {}, before its recorded length",
                    self.key, self.next
                ),
            ));
        }
        self.next += n as u64;
        self.fetched.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads a range as a sequence of bounded fetches.
struct Chunks<'a> {
    reader: &'a StoreRangeReader,
    next: u64,
    end: u64,
    buf: Bytes,
}

impl Read for Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            if self.next >= self.end || out.is_empty() {
                return Ok(0);
            }
            let to = self.end.min(self.next + FETCH_SIZE);
            let r = self.reader;
            let bytes = r
                .handle
                .block_on(r.store.get_range(&r.key, self.next..to))
                .map_err(io::Error::other)?;
            r.fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.next = to;
            self.buf = bytes;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_archive::{ArchiveMeta, ArchiveWriter, ReadOptions, SeekableArchive, WriterOptions};
    use cairn_integrity::SigningKey;
    use cairn_manifest::{ComponentName, OriginId, TargetName};
    use cairn_testkit::noise;
    use cairn_testkit::storage::S3sServer;

    /// The seek path of the archive reader over a store: one file read back
    /// by range requests from S3, without reading the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_file_is_read_back_by_range_from_s3() {
        let server = S3sServer::start("bucket").await;
        let store = Store::open("s3://bucket", &server.options()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blob.bin"), noise(3 << 20, 8)).unwrap();
        std::fs::write(dir.path().join("note.txt"), "backup 7").unwrap();
        let meta = ArchiveMeta::new(
            TargetName::parse("app").unwrap(),
            OriginId::parse("org_rebuild").unwrap(),
        );
        let key = SigningKey::from_seed(&[9; 32]);
        let mut w =
            ArchiveWriter::new(Vec::new(), meta, WriterOptions::default().threads(2)).unwrap();
        w.append_dir(&ComponentName::parse("data").unwrap(), dir.path(), false)
            .unwrap();
        let done = w.finish(&key).unwrap();
        let size = done.size;
        store
            .put("archive.tar.zst", Bytes::from(done.inner))
            .await
            .unwrap();
        let reader = StoreRangeReader::new(store, "archive.tar.zst", size, Handle::current());
        let counter = reader.clone();
        let public = key.public_key();
        let text = tokio::task::spawn_blocking(move || {
            let mut archive =
                SeekableArchive::open(reader, &public, ReadOptions::default()).unwrap();
            let path = cairn_manifest::EntryPath::parse(b"data/note.txt").unwrap();
            let mut out = Vec::new();
            archive.read_file(&path, &mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert_eq!(text, b"backup 7");
        // The file shares its 2 MiB frame with the blob's last megabyte:
        // that frame and the manifest are read, not the blob's first frame.
        assert!(
            counter.fetched() < size / 2,
            "fetched {} of {size}",
            counter.fetched()
        );
    }

    /// A local store's object is read from its file, by range; one shorter
    /// than its recorded length is an error naming it, never short data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_local_object_is_read_from_its_file_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::open(&url, &Default::default()).unwrap();
        let body = noise(100_000, 3);
        store
            .put("t/obj.bin", Bytes::from(body.clone()))
            .await
            .unwrap();
        let mut reader =
            StoreRangeReader::new(store.clone(), "t/obj.bin", 100_000, Handle::current());
        let mut short =
            StoreRangeReader::new(store.clone(), "t/obj.bin", 150_000, Handle::current());
        let mut gone = StoreRangeReader::new(store, "t/obj.bin", 100_000, Handle::current());
        tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            reader
                .read_range(1_000..90_000)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == body[1_000..90_000]);
            assert_eq!(reader.fetched(), 89_000);
            let mut out = Vec::new();
            let err = short
                .read_range(90_000..140_000)
                .and_then(|mut r| r.read_to_end(&mut out))
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert!(
                err.to_string().contains("t/obj.bin ends at 100000"),
                "the error names the object: {err}"
            );
            std::fs::remove_file(dir.path().join("t/obj.bin")).unwrap();
            let err = gone.read_range(0..10).map(drop).unwrap_err();
            assert!(err.to_string().contains("t/obj.bin"), "{err}");
        })
        .await
        .unwrap();
    }
}
