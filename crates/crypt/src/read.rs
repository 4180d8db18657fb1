//! Reading an age file by range, a whole 64 KiB chunk at a time.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use cairn_archive::RangeRead;

use crate::error::{Error, Result};
use crate::keys::Identities;

/// Plaintext bytes per chunk of an age payload.
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Stored bytes per chunk: the plaintext and its 16-byte tag.
pub const ENCRYPTED_CHUNK_SIZE: u64 = CHUNK_SIZE + 16;
/// Longest age header read (recipient stanzas and MAC) before giving up:
/// room for some 600 X25519 recipients. The age crate parses a header
/// again each time it reads more of it, so a bound is what keeps a hostile
/// header from costing minutes.
const MAX_HEADER: u64 = 64 * 1024;
/// Most stored bytes fetched by one range read of the source, unless told
/// otherwise ([`Decrypted::open_fetching`]): few enough requests to a
/// remote store.
pub const DEFAULT_FETCH: u64 = 4 << 20;
/// The first line of every age v1 file.
const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Whether `head` (the first bytes of an object) begins an age v1 file.
///
/// ```
/// assert!(cairn_crypt::is_age(b"age-encryption.org/v1\n-> X25519 ..."));
/// assert!(!cairn_crypt::is_age(b"\x28\xb5\x2f\xfd"));
/// ```
pub fn is_age(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// An age file read from start to end as its plaintext (a stream: an
/// upload, `cairn verify FILE`): each chunk is authenticated before its
/// bytes are given out, and a chunk that does not authenticate is an error
/// naming it.
pub struct DecryptingReader<R: Read> {
    stream: age::stream::StreamReader<io::BufReader<HeaderBound<R>>>,
    at: u64,
}

impl<R: Read> DecryptingReader<R> {
    /// Reads the age header of `input` and opens it with the first of
    /// `identities` that is one of its recipients.
    ///
    /// # Errors
    ///
    /// As [`Decrypted::open`]; a truncated stream is found at its end, when
    /// reading.
    pub fn new(input: R, identities: &Identities) -> Result<Self> {
        let limit = Arc::new(AtomicU64::new(MAX_HEADER));
        let bounded = HeaderBound {
            inner: input,
            read: 0,
            limit: Arc::clone(&limit),
        };
        let decryptor =
            age::Decryptor::new_buffered(io::BufReader::new(bounded)).map_err(decrypt_error)?;
        limit.store(u64::MAX, Ordering::Relaxed);
        let stream = decryptor
            .decrypt(identities.as_age())
            .map_err(decrypt_error)?;
        Ok(DecryptingReader { stream, at: 0 })
    }
}

/// A stream that fails, rather than reading on, past the bound on a
/// header while the header is read.
struct HeaderBound<R> {
    inner: R,
    read: u64,
    limit: Arc<AtomicU64>,
}

impl<R: Read> Read for HeaderBound<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = self.limit.load(Ordering::Relaxed).saturating_sub(self.read);
        if left == 0 && !out.is_empty() {
            return Err(header_too_long());
        }
        let want = usize::try_from(left).map_or(out.len(), |n| n.min(out.len()));
        let n = self.inner.read(&mut out[..want])?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Why reading a header stopped: it is longer than [`MAX_HEADER`].
#[derive(Debug)]
struct HeaderTooLong;

impl fmt::Display for HeaderTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "its age header is longer than {} KiB", MAX_HEADER / 1024)
    }
}

impl std::error::Error for HeaderTooLong {}

fn header_too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, HeaderTooLong)
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(out).map_err(|e| io_error(e, self.at))?;
        self.at += n as u64;
        Ok(n)
    }
}

impl<R: Read> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// What the decrypting side tells the source it reads from.
#[derive(Debug)]
struct Shared {
    /// Where the range being read ends in the stored bytes: fetches stop
    /// there, so a range costs its own chunks and no more.
    window_end: AtomicU64,
    /// Reads past this offset fail (the header's bound while it is parsed).
    limit: AtomicU64,
    /// The source's position.
    pos: AtomicU64,
}

/// The stored (encrypted) bytes of a [`RangeRead`] as `Read + Seek`, read
/// through one buffer of at most `fetch` bytes.
struct Ciphertext<S> {
    src: S,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
    fetch: u64,
    shared: Arc<Shared>,
}

impl<S: RangeRead> Read for Ciphertext<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.shared.limit.load(Ordering::Relaxed) {
            return Err(header_too_long());
        }
        let in_buf = self.pos >= self.buf_at && self.pos < self.buf_at + self.buf.len() as u64;
        if !in_buf {
            let window = self.shared.window_end.load(Ordering::Relaxed);
            let end = if window > self.pos {
                window.min(self.pos + self.fetch)
            } else {
                self.pos + ENCRYPTED_CHUNK_SIZE
            }
            .min(self.len);
            self.buf.clear();
            self.src
                .read_range(self.pos..end)?
                .read_to_end(&mut self.buf)?;
            if self.buf.len() as u64 != end - self.pos {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the encrypted archive is shorter than its recorded length",
                ));
            }
            self.buf_at = self.pos;
        }
        let at = (self.pos - self.buf_at) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        self.shared.pos.store(self.pos, Ordering::Relaxed);
        Ok(n)
    }
}

impl<S: RangeRead> Seek for Ciphertext<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.shared.pos.store(self.pos, Ordering::Relaxed);
        Ok(self.pos)
    }
}

/// Plaintext bytes the decrypting thread hands over at a time.
const BLOCK_SIZE: usize = 256 * 1024;
/// Blocks decrypted ahead of the reader: the decrypting thread stays at
/// most this far (1 MiB) in front.
const BLOCKS_AHEAD: usize = 4;

/// An encrypted archive (an age file) seen as its plaintext: a
/// [`RangeRead`] that `SeekableArchive` opens as it opens a plain one.
///
/// A range is read as the whole chunks that hold it, each authenticated
/// before any of its bytes is given out: plaintext bytes `a..b` cost the
/// stored chunks `a / 64 KiB ..= (b − 1) / 64 KiB`, at most one chunk more
/// at each end than the same read of the plain archive. Opening reads the
/// header and authenticates the last chunk (which proves the length: a
/// truncated object is refused there).
///
/// The chunks are decrypted on a thread of the reader's own, a megabyte
/// ahead of whoever reads the range: the archive reader that feeds the
/// decompressors spends no time decrypting (`docs/performance.md`
/// "Encryption"). The thread ends when the `Decrypted` is dropped.
///
/// ```
/// use std::io::{Cursor, Read, Write};
/// use cairn_archive::{RangeRead, SeekSource};
/// use cairn_crypt::{Decrypted, EncryptingWriter, Identities, Identity};
///
/// let id = Identity::generate();
/// let mut w = EncryptingWriter::new(Vec::new(), &[id.recipient()])?;
/// w.write_all(&vec![7u8; 200_000])?;
/// let stored = w.finish()?;
/// let mut plain = Decrypted::open(SeekSource(Cursor::new(stored)), &Identities::from(id))?;
/// assert_eq!(plain.len()?, 200_000);
/// let mut middle = Vec::new();
/// plain.read_range(100_000..100_010)?.read_to_end(&mut middle)?;
/// assert_eq!(middle, [7u8; 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Decrypted<S: RangeRead + 'static> {
    len: u64,
    stored_len: u64,
    /// Ranges to decrypt, to the decrypting thread; `None` once dropped.
    requests: Option<mpsc::Sender<Request>>,
    /// Emptied blocks, back from the readers, for the thread to refill.
    spares: mpsc::Sender<Vec<u8>>,
    worker: Option<thread::JoinHandle<()>>,
    _source: PhantomData<fn() -> S>,
}

/// One range for the decrypting thread: its plaintext comes back in
/// blocks, then the channel closes (or after an error).
struct Request {
    range: Range<u64>,
    blocks: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

impl<S: RangeRead + 'static> Decrypted<S> {
    /// Opens the age file `src` with the first of `identities` that is
    /// one of its recipients, fetching up to [`DEFAULT_FETCH`] stored
    /// bytes at a time.
    ///
    /// # Errors
    ///
    /// As [`Decrypted::open_fetching`].
    pub fn open(src: S, identities: &Identities) -> Result<Self> {
        Self::open_fetching(src, identities, DEFAULT_FETCH)
    }

    /// Opens the age file `src` as [`Decrypted::open`] does, reading the
    /// stored bytes `fetch` at a time (at least one chunk): a local file
    /// reads best in a few hundred KiB (the buffer stays in the CPU's
    /// caches and adds nothing to the peak RSS), a remote store in a few
    /// MiB (fewer requests).
    ///
    /// # Errors
    ///
    /// [`Error::NoMatchingIdentity`] when none is; [`Error::Damaged`] when
    /// `src` is not an age file, or its header or last chunk does not
    /// authenticate (tampered with, truncated, a header from another
    /// file); [`Error::Io`] when reading `src` fails or the decrypting
    /// thread cannot be started.
    pub fn open_fetching(mut src: S, identities: &Identities, fetch: u64) -> Result<Self> {
        let stored_len = src
            .len()
            .map_err(Error::io("reading the encrypted archive"))?;
        let shared = Arc::new(Shared {
            window_end: AtomicU64::new(stored_len.min(MAX_HEADER)),
            limit: AtomicU64::new(MAX_HEADER),
            pos: AtomicU64::new(0),
        });
        let ct = Ciphertext {
            src,
            len: stored_len,
            pos: 0,
            buf: Vec::new(),
            buf_at: 0,
            fetch: fetch.max(ENCRYPTED_CHUNK_SIZE),
            shared: Arc::clone(&shared),
        };
        let decryptor =
            age::Decryptor::new_buffered(io::BufReader::new(ct)).map_err(decrypt_error)?;
        shared.limit.store(u64::MAX, Ordering::Relaxed);
        let mut stream = decryptor
            .decrypt(identities.as_age())
            .map_err(decrypt_error)?;
        shared.window_end.store(stored_len, Ordering::Relaxed);
        let len = stream
            .seek(SeekFrom::End(0))
            .map_err(|e| read_error(e, "its last chunk (is it truncated?)"))?;
        // The payload is the stored bytes' end: the authenticated length's
        // chunks (one, empty, for an empty file), each with its tag.
        let chunks = len.div_ceil(CHUNK_SIZE).max(1);
        let payload_start =
            stored_len.saturating_sub(len + chunks * (ENCRYPTED_CHUNK_SIZE - CHUNK_SIZE));
        let (requests, incoming) = mpsc::channel();
        let (spares, spare_blocks) = mpsc::channel();
        let mut worker = Worker {
            stream,
            shared,
            payload_start,
            stored_len,
            spares: spare_blocks,
        };
        let worker = thread::Builder::new()
            .name("cairn-decrypt".into())
            .spawn(move || {
                for request in incoming {
                    worker.serve(request);
                }
            })
            .map_err(Error::io("starting the decrypting thread"))?;
        Ok(Decrypted {
            len,
            stored_len,
            requests: Some(requests),
            spares,
            worker: Some(worker),
            _source: PhantomData,
        })
    }
}

impl<S: RangeRead + 'static> RangeRead for Decrypted<S> {
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>> {
        cairn_archive::check_range(&range, self.len, "the encrypted archive")?;
        if range.is_empty() {
            return Ok(Box::new(io::empty()));
        }
        let (blocks, incoming) = mpsc::sync_channel(BLOCKS_AHEAD);
        let gone = || io::Error::other("the decrypting thread has stopped");
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send(Request {
                range: range.clone(),
                blocks,
            })
            .map_err(|_| gone())?;
        Ok(Box::new(Plain {
            incoming,
            spares: &self.spares,
            block: Vec::new(),
            used: 0,
            at: range.start,
            end: range.end,
        }))
    }
}

impl<S: RangeRead + 'static> Drop for Decrypted<S> {
    fn drop(&mut self) {
        // The thread ends when its requests do; every reader of a range
        // borrowed `self`, so none is left waiting for it.
        self.requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl<S: RangeRead + 'static> fmt::Debug for Decrypted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("len", &self.len)
            .field("stored_len", &self.stored_len)
            .finish_non_exhaustive()
    }
}

/// The decrypting thread's side: the age stream over the stored bytes.
struct Worker<S: RangeRead> {
    stream: age::stream::StreamReader<io::BufReader<Ciphertext<S>>>,
    shared: Arc<Shared>,
    payload_start: u64,
    stored_len: u64,
    spares: mpsc::Receiver<Vec<u8>>,
}

impl<S: RangeRead> Worker<S> {
    /// Decrypts `request`'s range into blocks until it is done, fails, or
    /// its reader is dropped.
    fn serve(&mut self, request: Request) {
        let Request { range, blocks } = request;
        let end = (self.payload_start + ((range.end - 1) / CHUNK_SIZE + 1) * ENCRYPTED_CHUNK_SIZE)
            .min(self.stored_len);
        self.shared.window_end.store(end, Ordering::Relaxed);
        if let Err(e) = self.stream.seek(SeekFrom::Start(range.start)) {
            let _ = blocks.send(Err(io_error(e, range.start)));
            return;
        }
        let mut at = range.start;
        while at < range.end {
            let want = usize::try_from(range.end - at).map_or(BLOCK_SIZE, |n| n.min(BLOCK_SIZE));
            let mut block = self.spares.try_recv().unwrap_or_default();
            block.resize(want, 0);
            let block = match self.fill(&mut block, at) {
                Ok(()) => Ok(block),
                Err(e) => Err(e),
            };
            let failed = block.is_err();
            if blocks.send(block).is_err() || failed {
                return;
            }
            at += want as u64;
        }
    }

    /// Fills `block` with the plaintext from `at`.
    fn fill(&mut self, block: &mut [u8], at: u64) -> io::Result<()> {
        let mut filled = 0;
        while filled < block.len() {
            let here = at + filled as u64;
            match self.stream.read(&mut block[filled..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the encrypted archive ends at plaintext byte {here}, inside a range"
                        ),
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, here)),
            }
        }
        Ok(())
    }
}

/// A range of the plaintext, as the decrypting thread hands it over; a
/// chunk that does not authenticate is an error naming it.
struct Plain<'a> {
    incoming: mpsc::Receiver<io::Result<Vec<u8>>>,
    spares: &'a mpsc::Sender<Vec<u8>>,
    block: Vec<u8>,
    used: usize,
    at: u64,
    end: u64,
}

impl Read for Plain<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.at >= self.end {
            return Ok(0);
        }
        if self.used == self.block.len() {
            let next = self.incoming.recv().map_err(|_| {
                io::Error::other(format!(
                    "the decrypting thread stopped at plaintext byte {}",
                    self.at
                ))
            })??;
            let done = std::mem::replace(&mut self.block, next);
            if done.capacity() > 0 {
                let _ = self.spares.send(done);
            }
            self.used = 0;
        }
        let n = out.len().min(self.block.len() - self.used);
        out[..n].copy_from_slice(&self.block[self.used..self.used + n]);
        self.used += n;
        self.at += n as u64;
        Ok(n)
    }
}

impl Drop for Plain<'_> {
    fn drop(&mut self) {
        let block = std::mem::take(&mut self.block);
        if block.capacity() > 0 {
            let _ = self.spares.send(block);
        }
    }
}

/// A failure reading the plaintext at `at`: one that is the data's fault
/// names the chunk.
fn io_error(e: io::Error, at: u64) -> io::Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::InvalidData,
            Error::Damaged(format!(
                "chunk {} does not authenticate (altered, moved or truncated)",
                at / CHUNK_SIZE
            ))
            .to_string(),
        ),
        _ => e,
    }
}

/// A failure opening: the data's fault, or the source's.
fn read_error(e: io::Error, what: &str) -> Error {
    if let Some(too_long) = e.get_ref().and_then(|i| i.downcast_ref::<HeaderTooLong>()) {
        return Error::Damaged(too_long.to_string());
    }
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            Error::Damaged(format!("{what} does not authenticate"))
        }
        _ => Error::Io {
            what: "reading the encrypted archive",
            source: e,
        },
    }
}

fn decrypt_error(e: age::DecryptError) -> Error {
    match e {
        age::DecryptError::NoMatchingKeys => Error::NoMatchingIdentity,
        age::DecryptError::Io(e) => read_error(e, "its header"),
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            Error::Damaged("it is not an age file, or its header is damaged".into())
        }
        other => Error::Damaged(format!("its header does not authenticate ({other})")),
    }
}
