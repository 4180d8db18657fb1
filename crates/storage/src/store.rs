//! The store and its primitive operations.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use jiff::Timestamp;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::error::{Error, ErrorKind, Op};
use crate::open::Backend;

/// A store: a backend and a root prefix inside it. Cheap to clone; safe to
/// share between tasks.
///
/// Keys given to its methods are relative to the root, `/`-separated, with no
/// empty, `.` or `..` segment.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    inner: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    root: Path,
    url: String,
    part_size: usize,
    concurrency: usize,
    /// The directory of a local store.
    local_dir: Option<std::path::PathBuf>,
    /// The backend of a local store, to map keys to files.
    local_fs: Option<Arc<LocalFileSystem>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, relative to the store's root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: Timestamp,
    /// The backend's entity tag, if the backend gives one (some S3 servers
    /// give none in listings).
    pub e_tag: Option<String>,
}

impl Store {
    pub(crate) fn from_parts(
        backend: Backend,
        inner: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        root: Path,
        url: String,
        part_size: usize,
        concurrency: usize,
    ) -> Self {
        Self {
            backend,
            inner,
            signer,
            root,
            url,
            part_size,
            concurrency,
            local_dir: None,
            local_fs: None,
        }
    }

    pub(crate) fn with_local(mut self, dir: std::path::PathBuf, fs: Arc<LocalFileSystem>) -> Self {
        self.local_dir = Some(dir);
        self.local_fs = Some(fs);
        self
    }

    pub(crate) fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    /// The file that holds `key` in a local store (`None` for other
    /// backends), for readers that would rather read it directly than
    /// through a copy per request: the same bytes [`Store::get_range`] gives.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path.
    pub fn local_file(&self, key: &str) -> Result<Option<std::path::PathBuf>, Error> {
        let path = self.path(Op::GetRange, key)?;
        self.local_fs
            .as_ref()
            .map(|fs| {
                fs.path_to_filesystem(&path)
                    .map_err(|e| Error::new(Op::GetRange, key, ErrorKind::Config, e.to_string()))
            })
            .transpose()
    }

    /// The backend kind.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The store's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full path of a relative key.
    pub(crate) fn path(&self, op: Op, key: &str) -> Result<Path, Error> {
        let rel = Path::parse(key)
            .map_err(|e| Error::new(op, key, ErrorKind::Config, format!("invalid key: {e}")))?;
        if key.is_empty() || rel.as_ref() != key {
            return Err(Error::new(
                op,
                key,
                ErrorKind::Config,
                "invalid key: empty, or with empty, leading or trailing segments",
            ));
        }
        Ok(self.root.parts().chain(rel.parts()).collect())
    }

    fn info(&self, meta: ObjectMeta) -> ObjectInfo {
        let full = meta.location.as_ref();
        let root = self.root.as_ref();
        let key = if root.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(root)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
                .to_owned()
        };
        let secs = meta.last_modified.timestamp();
        let nanos = i32::try_from(meta.last_modified.timestamp_subsec_nanos()).unwrap_or(0);
        ObjectInfo {
            key,
            size: meta.size,
            last_modified: Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH),
            e_tag: meta.e_tag,
        }
    }

    /// Writes a whole object (small ones: seals, lease records), replacing any.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), Error> {
        let path = self.path(Op::Put, key)?;
        self.inner
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map_err(|e| Error::store(Op::Put, key, e))?;
        Ok(())
    }

    /// Writes a whole object only if the key does not exist yet; an existing
    /// key gives an error of kind [`ErrorKind::AlreadyExists`] and leaves the
    /// object as it was. Atomic on every backend.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] for a key that exists; [`ErrorKind::Config`] for a key that
    /// is not a valid object path; the store's answer otherwise ([`ErrorKind::Denied`],
    /// [`ErrorKind::Transient`] after the retries, [`ErrorKind::Other`]).
    pub async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<(), Error> {
        let path = self.path(Op::PutIfAbsent, key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.inner
            .put_opts(&path, PutPayload::from_bytes(data), opts)
            .await
            .map_err(|e| Error::store(Op::PutIfAbsent, key, e))?;
        Ok(())
    }

    /// Starts a streaming multipart upload to `key`. Nothing is visible at the
    /// key until [`Upload::finish`] succeeds; memory stays under about
    /// `part_size × (concurrency + 1)` whatever the object's size.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn upload(&self, key: &str) -> Result<Upload, Error> {
        let path = self.path(Op::Upload, key)?;
        let multipart = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| Error::store(Op::Upload, key, e))?;
        Ok(Upload {
            writer: WriteMultipart::new_with_chunk_size(multipart, self.part_size),
            key: key.to_owned(),
            size: 0,
            concurrency: self.concurrency,
        })
    }

    /// Reads a whole object as a stream of chunks, with its metadata.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a missing key; [`ErrorKind::Config`] for a key that is not a
    /// valid object path; the store's answer otherwise ([`ErrorKind::Denied`],
    /// [`ErrorKind::Transient`] after the retries, [`ErrorKind::Other`]). Each chunk of the
    /// stream can fail the same ways.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, BoxStream<'static, Result<Bytes, Error>>), Error> {
        let path = self.path(Op::Get, key)?;
        let result = self
            .inner
            .get(&path)
            .await
            .map_err(|e| Error::store(Op::Get, key, e))?;
        let info = self.info(result.meta.clone());
        let owned_key = key.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |e| Error::store(Op::Get, owned_key.clone(), e))
            .boxed();
        Ok((info, stream))
    }

    /// Reads a whole small object, refusing one larger than `max` bytes (so a
    /// corrupt or hostile store cannot make the caller allocate without bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a missing key; [`ErrorKind::Other`] for an object larger
    /// than `max`; [`ErrorKind::Config`] for a key that is not a valid object path; the store's
    /// answer otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn get_small(&self, key: &str, max: u64) -> Result<Bytes, Error> {
        let (info, mut stream) = self.get_stream(key).await?;
        if info.size > max {
            return Err(Error::new(
                Op::Get,
                key,
                ErrorKind::Other,
                format!(
                    "object is {} bytes, more than the {max} expected",
                    info.size
                ),
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (out.len() + chunk.len()) as u64 > max {
                return Err(Error::new(
                    Op::Get,
                    key,
                    ErrorKind::Other,
                    format!("object grew past the {max} bytes expected while being read"),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// Reads the bytes in `range`. A range past the end of the object is an
    /// error, and so is an answer of the wrong length.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a missing key; [`ErrorKind::Other`] for a range past the
    /// object's end or an answer of the wrong length; [`ErrorKind::Config`] for a key that is
    /// not a valid object path; the store's answer otherwise ([`ErrorKind::Denied`],
    /// [`ErrorKind::Transient`] after the retries, [`ErrorKind::Other`]).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        let path = self.path(Op::GetRange, key)?;
        if range.start > range.end {
            return Err(Error::new(
                Op::GetRange,
                key,
                ErrorKind::Config,
                format!("inverted range {range:?}"),
            ));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let bytes = self
            .inner
            .get_range(&path, range.clone())
            .await
            .map_err(|e| Error::store(Op::GetRange, key, e))?;
        if bytes.len() as u64 != want {
            return Err(Error::new(
                Op::GetRange,
                key,
                ErrorKind::Other,
                format!("asked for {want} bytes at {range:?}, got {}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// The object's metadata, or `None` if the key does not exist.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let path = self.path(Op::Head, key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(self.info(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(Op::Head, key, e)),
        }
    }

    /// Every object under `prefix` (a key prefix ending at a segment boundary;
    /// `""` for the whole store), sorted by key.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Error> {
        let path = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.path(Op::List, prefix.trim_end_matches('/'))?
        };
        let at = if path.as_ref().is_empty() {
            None
        } else {
            Some(&path)
        };
        self.collect_listing(prefix, self.inner.list(at)).await
    }

    /// A listing's objects, sorted by key.
    async fn collect_listing(
        &self,
        prefix: &str,
        listing: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> Result<Vec<ObjectInfo>, Error> {
        let mut out: Vec<ObjectInfo> = listing
            .map_ok(|meta| self.info(meta))
            .try_collect()
            .await
            .map_err(|e| Error::store(Op::List, prefix, e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The objects under `prefix` whose keys sort after `offset` (a key
    /// under `prefix`), sorted: on S3 one request per thousand keys from
    /// `offset` on (`start-after`; Azure: `startFrom`), so that following
    /// a long listing costs what is new; a local store walks the prefix and
    /// skips what sorts before.
    ///
    /// # Errors
    ///
    /// As [`Store::list`].
    pub async fn list_after(&self, prefix: &str, offset: &str) -> Result<Vec<ObjectInfo>, Error> {
        let path = self.path(Op::List, prefix.trim_end_matches('/'))?;
        let offset = self.path(Op::List, offset)?;
        self.collect_listing(prefix, self.inner.list_with_offset(Some(&path), &offset))
            .await
    }

    /// The names of the "folders" directly under `prefix`: the next key
    /// segment of every key below it, sorted, without listing every object.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let path = self.path(Op::List, prefix.trim_end_matches('/'))?;
        let result = self
            .inner
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| Error::store(Op::List, prefix, e))?;
        let mut names: Vec<String> = result
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes an object. Deleting a key that does not exist succeeds (Azure
    /// reports it as not found; Cairn smooths that out).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a key that is not a valid object path; the store's answer
    /// otherwise ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the retries,
    /// [`ErrorKind::Other`]).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(Op::Delete, key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(Op::Delete, key, e)),
        }
    }

    /// Whether this store can presign URLs. Stores that cannot (local,
    /// memory) return `None`: a server must then issue its own signed URLs.
    pub fn url_signer(&self) -> Option<UrlSigner<'_>> {
        self.signer.as_ref().map(|signer| UrlSigner {
            store: self,
            signer: signer.as_ref(),
        })
    }
}

/// Presigns URLs on a store that can (S3, Azure).
#[derive(Debug, Clone, Copy)]
pub struct UrlSigner<'a> {
    store: &'a Store,
    signer: &'a dyn Signer,
}

/// A presigned URL and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// The URL; anyone holding it can read the object until `expires_at`.
    pub url: String,
    /// When the backend stops honouring it.
    pub expires_at: Timestamp,
}

/// The longest a presigned URL may live (S3's limit for SigV4).
pub const MAX_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

impl UrlSigner<'_> {
    /// A URL that downloads `key` with a plain GET until `expires_in` from now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an expiry of zero or over 7 days, or an invalid key; the
    /// signer's failure ([`ErrorKind::Other`]).
    pub async fn get_url(
        &self,
        key: &str,
        expires_in: Duration,
        now: Timestamp,
    ) -> Result<SignedUrl, Error> {
        if expires_in.is_zero() || expires_in > MAX_URL_LIFETIME {
            return Err(Error::new(
                Op::Sign,
                key,
                ErrorKind::Config,
                format!("expiry must be between 1 s and 7 days, not {expires_in:?}"),
            ));
        }
        let path = self.store.path(Op::Sign, key)?;
        let url = self
            .signer
            .signed_url(object_store::signer::Method::GET, &path, expires_in)
            .await
            .map_err(|e| Error::store(Op::Sign, key, e))?;
        let expires_at = jiff::SignedDuration::try_from(expires_in)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        Ok(SignedUrl {
            url: url.to_string(),
            expires_at,
        })
    }
}

/// A streaming multipart upload in progress.
///
/// Call [`Upload::finish`] to publish the object, or [`Upload::abort`] to
/// discard the parts; an upload dropped without either leaves no object (S3
/// keeps the orphan parts until the bucket's lifecycle rule removes them).
pub struct Upload {
    writer: WriteMultipart,
    key: String,
    size: u64,
    concurrency: usize,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The key.
    pub key: String,
    /// Bytes written.
    pub size: u64,
    /// The backend's entity tag, if any.
    pub e_tag: Option<String>,
}

impl Upload {
    /// Adds bytes, waiting while the parts in flight are at the limit.
    ///
    /// # Errors
    ///
    /// The store refusing a part ([`ErrorKind::Denied`], [`ErrorKind::Transient`] after the
    /// retries, [`ErrorKind::Other`]).
    pub async fn write(&mut self, data: Bytes) -> Result<(), Error> {
        self.writer
            .wait_for_capacity(self.concurrency)
            .await
            .map_err(|e| Error::store(Op::Upload, self.key.clone(), e))?;
        self.size += data.len() as u64;
        self.writer.put(data);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Uploads the last part and completes the object.
    ///
    /// # Errors
    ///
    /// The store refusing the last part or the completion ([`ErrorKind::Denied`],
    /// [`ErrorKind::Transient`] after the retries, [`ErrorKind::Other`]); nothing is published
    /// then.
    pub async fn finish(self) -> Result<Uploaded, Error> {
        let key = self.key;
        let result = self
            .writer
            .finish()
            .await
            .map_err(|e| Error::store(Op::Upload, key.clone(), e))?;
        Ok(Uploaded {
            key,
            size: self.size,
            e_tag: result.e_tag,
        })
    }

    /// Discards the upload and its parts.
    ///
    /// # Errors
    ///
    /// The store refusing to discard the parts (they then expire by the bucket's lifecycle
    /// rule).
    pub async fn abort(self) -> Result<(), Error> {
        let key = self.key;
        self.writer
            .abort()
            .await
            .map_err(|e| Error::store(Op::Upload, key, e))
    }
}
