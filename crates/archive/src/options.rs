//! Options for writing and reading archives, limits, and progress reporting.

use std::fmt;
use std::sync::Arc;

use cairn_manifest::{Codec, EntryPath};

/// The default frame size. 2 MiB rather than 4: on two cores it packs as fast,
/// compresses as well, keeps peak memory near 45 MiB instead of 65, and makes
/// seek reads finer (measurements in `docs/performance.md`).
pub const DEFAULT_FRAME_SIZE: usize = 2 * 1024 * 1024;
/// Smallest frame size accepted.
pub const MIN_FRAME_SIZE: usize = 64 * 1024;
/// Largest frame size accepted; readers decode frames up to this size in parallel.
pub const MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

/// Number of CPUs to use when nothing else is said.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Receives progress from long operations and may ask them to stop.
///
/// Called from the thread running the operation; implementations must be cheap.
pub trait Progress: Send + Sync + fmt::Debug {
    /// `n` more bytes of entry data were processed.
    fn bytes(&self, n: u64) {
        let _ = n;
    }

    /// An entry was completely processed.
    fn entry(&self, path: &EntryPath) {
        let _ = path;
    }

    /// Whether the operation should stop as soon as possible with
    /// [`crate::Error::Cancelled`].
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

pub(crate) fn no_progress() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

/// How an archive is written.
///
/// ```
/// use cairn_archive::WriterOptions;
/// use cairn_manifest::Codec;
///
/// let opts = WriterOptions::default().codec(Codec::Gzip).level(6).frame_size(1 << 20).threads(2);
/// assert!(opts.validate().is_ok());
/// assert!(WriterOptions::default().frame_size(10).validate().is_err());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WriterOptions {
    /// Compression codec (default zstd).
    pub codec: Codec,
    /// Compression level (default 3 for zstd, 6 for gzip).
    pub level: Option<i32>,
    /// Uncompressed bytes per frame (default 2 MiB: see `docs/performance.md`).
    pub frame_size: usize,
    /// Compression threads (default: every CPU).
    pub threads: usize,
    /// Progress observer and cancellation.
    pub progress: Arc<dyn Progress>,
    /// The manifest format's major version: 2 (the default: a signed root
    /// and pages, memory that does not grow with the entries) or 1 (one JSON
    /// document, as Cairn wrote before format 2; every reader reads both).
    pub format: u32,
    /// Where a format 2 writer keeps finished pages until the data is
    /// written (an unnamed temporary file; default the system's temporary
    /// folder). Put it on disk, not on a RAM-backed filesystem, for large
    /// trees: it grows by about 220 bytes an entry.
    pub spill_dir: Option<std::path::PathBuf>,
    /// The segment size of an incremental archive (default 16 MiB: see
    /// `docs/performance.md`): a changed file of at least this many bytes
    /// whose parent entry holds data is stored by segments of this size,
    /// each an unchanged parent segment, a zstd patch against it, or whole.
    pub segment_size: u64,
}

/// The default segment size of an incremental archive.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            codec: Codec::Zstd,
            level: None,
            frame_size: DEFAULT_FRAME_SIZE,
            threads: default_threads(),
            progress: no_progress(),
            format: 2,
            spill_dir: None,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

impl fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterOptions")
            .field("codec", &self.codec)
            .field("level", &self.effective_level())
            .field("frame_size", &self.frame_size)
            .field("threads", &self.threads)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WriterOptions {
    /// Sets the manifest format's major version (1 or 2).
    pub fn format(mut self, major: u32) -> Self {
        self.format = major;
        self
    }

    /// Sets where a format 2 writer spills its pages.
    pub fn spill_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Sets the segment size of an incremental archive.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets the codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the compression level (zstd 1–22, gzip 0–9).
    pub fn level(mut self, level: i32) -> Self {
        self.level = Some(level);
        self
    }

    /// Sets the frame size.
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes;
        self
    }

    /// Sets the number of compression threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Sets the progress observer.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = p;
        self
    }

    /// The level that will be used.
    pub fn effective_level(&self) -> i32 {
        self.level.unwrap_or(match self.codec {
            Codec::Zstd => 3,
            Codec::Gzip => 6,
        })
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidInput`] for a level, frame size or thread count out of range.
    pub fn validate(&self) -> crate::Result<()> {
        let level = self.effective_level();
        let ok_level = match self.codec {
            Codec::Zstd => (1..=22).contains(&level),
            Codec::Gzip => (0..=9).contains(&level),
        };
        if !ok_level {
            return Err(crate::Error::invalid(format!(
                "compression level {level} is out of range for {}",
                self.codec
            )));
        }
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&self.frame_size) {
            return Err(crate::Error::invalid(format!(
                "frame size {} is out of range ({MIN_FRAME_SIZE}..={MAX_FRAME_SIZE})",
                self.frame_size
            )));
        }
        if self.threads == 0 || self.threads > 256 {
            return Err(crate::Error::invalid("threads must be between 1 and 256"));
        }
        let (lo, hi) = (
            cairn_manifest::v2::MIN_SEGMENT_SIZE,
            cairn_manifest::v2::MAX_SEGMENT_SIZE,
        );
        if !(lo..=hi).contains(&self.segment_size) {
            return Err(crate::Error::invalid(format!(
                "segment size {} is out of range ({lo}..={hi})",
                self.segment_size
            )));
        }
        if self.format != 1 && self.format != 2 {
            return Err(crate::Error::invalid(format!(
                "manifest format {} is not 1 or 2",
                self.format
            )));
        }
        Ok(())
    }
}

/// Bounds on what a reader accepts, so that a hostile archive cannot exhaust memory
/// or disk. Sizes of a verified manifest are enforced exactly whatever these say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most entries in one archive (default 10 million).
    pub max_entries: u64,
    /// Largest single entry, in bytes (default unlimited).
    pub max_entry_bytes: u64,
    /// Most entry data in total, in bytes (default unlimited).
    pub max_total_bytes: u64,
    /// Largest PAX or GNU long-name extension (default 1 MiB).
    pub max_extension_bytes: u64,
    /// Largest manifest (default 512 MiB).
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000_000,
            max_entry_bytes: u64::MAX,
            max_total_bytes: u64::MAX,
            max_extension_bytes: 1024 * 1024,
            max_manifest_bytes: cairn_manifest::DEFAULT_MAX_MANIFEST_BYTES,
        }
    }
}

impl Limits {
    /// Sets the entry count limit.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets the per-entry size limit.
    pub fn max_entry_bytes(mut self, n: u64) -> Self {
        self.max_entry_bytes = n;
        self
    }

    /// Sets the total size limit.
    pub fn max_total_bytes(mut self, n: u64) -> Self {
        self.max_total_bytes = n;
        self
    }

    /// Sets the extension size limit.
    pub fn max_extension_bytes(mut self, n: u64) -> Self {
        self.max_extension_bytes = n;
        self
    }

    /// Sets the manifest size limit.
    pub fn max_manifest_bytes(mut self, n: u64) -> Self {
        self.max_manifest_bytes = n;
        self
    }
}

/// How an archive is read.
#[derive(Clone)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Limits on what is accepted.
    pub limits: Limits,
    /// Decompression threads (default: every CPU).
    pub threads: usize,
    /// Progress observer and cancellation.
    pub progress: Arc<dyn Progress>,
    /// Where a stream reader keeps what it observed until the manifest at
    /// the stream's end can be checked (unnamed temporary files; default the
    /// system's temporary folder). They grow by about 100 bytes an entry.
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            limits: Limits::default(),
            threads: default_threads(),
            progress: no_progress(),
            spill_dir: None,
        }
    }
}

impl fmt::Debug for ReadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOptions")
            .field("limits", &self.limits)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl ReadOptions {
    /// Sets where a stream reader spills what it observed.
    pub fn spill_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the number of decompression threads (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Sets the progress observer.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = p;
        self
    }
}
