//! The [Cairn](https://github.com/cairn-backup/cairn) archive format: a POSIX tar
//! stream cut into independent zstd frames (or gzip members), ending with a signed
//! manifest and a footer.
//!
//! - [`ArchiveWriter`] writes an archive to any `Write`: directory trees, single
//!   files or streams, compressed in parallel on every core with bounded memory,
//!   every entry hashed once as it streams; [`ArchiveWriter::finish`] signs the
//!   manifest and returns the [`cairn_integrity::SignedSeal`] to store beside it.
//!   With [`WriterOptions::format`] 2 the manifest is a signed root naming
//!   pages of entries (spilled to a temporary file while the data is written),
//!   so memory does not grow with the number of entries; every reader below
//!   reads both formats, format 2 one page at a time.
//! - [`ArchiveReader`] reads any `Read` front to back: [`ArchiveReader::verify`]
//!   checks every byte against the signed manifest, [`ArchiveReader::unpack`]
//!   unpacks into a staging directory that reaches its destination only when
//!   everything checked out.
//! - [`SeekableArchive`] reads through a [`RangeRead`] (a file, or HTTP range
//!   requests): the manifest comes from the tail, and one component, one file or a
//!   sample of entries is read and verified without reading the rest.
//! - [`ArchiveWriter::set_parent`] makes an archive **incremental** (format 2.1):
//!   given a [`Parent`] (an earlier archive opened with [`SeekableArchive`]),
//!   a walked file whose size, times, inode, mode and owner are the parent's
//!   is not opened, and its entry refers to the data the parent's chain
//!   holds. Readers of such an archive attach its parents
//!   ([`SeekableArchive::attach_parents`]) and read each entry from whichever
//!   archive holds it, checked against the child's digests; read alone it is
//!   refused. A changed file of at least [`WriterOptions::segment_size`]
//!   (32 MiB by default; a live database's snapshot, say) is stored by
//!   segments: the parent's unchanged ones by reference, the changed ones as
//!   zstd patches against the parent's (feature `segments`), which readers
//!   rebuild on a thread of their own. For that the parent must be opened
//!   with its own parents attached.
//! - [`ingest`] turns a foreign `.tar`, `.tar.gz` or `.tar.zst` into a signed Cairn
//!   archive.
//! - [`ReadAhead`] reads a file or socket ahead on its own thread, so that reading
//!   overlaps with decompressing and checking.
//!
//! GNU `tar --zstd -xf` (or `tar -xzf`) extracts every Cairn archive; `openssl
//! pkeyutl -verify` checks its manifest's signature. The byte-level format is in
//! `docs/format.md`.
//!
//! # Example
//!
//! ```
//! use cairn_archive::*;
//! use cairn_integrity::SigningKey;
//! use cairn_manifest::{ComponentName, OriginId, TargetName};
//!
//! let tmp = tempfile::tempdir()?;
//! let src = tmp.path().join("site");
//! std::fs::create_dir_all(src.join("html"))?;
//! std::fs::write(src.join("html/index.html"), "<h1>hello</h1>")?;
//!
//! // Pack.
//! let key = SigningKey::generate()?;
//! let meta = ArchiveMeta::new(TargetName::parse("web")?, OriginId::parse("org_example")?);
//! let mut writer = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default())?;
//! writer.append_dir(&ComponentName::parse("site")?, &src, false)?;
//! let done = writer.finish(&key)?;
//!
//! // Unpack elsewhere, verifying everything first.
//! let dest = tmp.path().join("restored");
//! ArchiveReader::new(&done.inner[..])?.unpack(&key.public_key(), &dest, &UnpackOptions::default())?;
//! assert_eq!(std::fs::read_to_string(dest.join("site/html/index.html"))?, "<h1>hello</h1>");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security
//!
//! Archives are hostile until verified. Unpacking refuses absolute paths, `..`,
//! writing through links, hard links to anything but files of the same unpack,
//! duplicate entries and special files, bounds extension headers and (through
//! [`Limits`]) entry counts and sizes, and never puts an unauthenticated byte at
//! its destination. See `docs/threat-model.md`.
//!
//! # Crate features
//!
//! This crate has no optional features.

mod capture;
mod chain;
mod codec;
mod decode;
mod error;
mod export;
mod frames;
mod fswriter;
mod ingest;
mod options;
mod pages;
mod parent;
mod pool;
mod readahead;
mod reader;
mod seek;
mod segments;
mod source;
mod spill;
mod subtree;
mod tar;
mod unpack;
mod verify;
mod writer;
mod zstd_frames;

pub use crate::codec::{Footer, Format, MAX_FOOTER_LEN, detect};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::export::write_tar_tree;
pub use crate::ingest::{IngestOptions, Ingested, ingest};
pub use crate::options::{
    DEFAULT_FRAME_SIZE, DEFAULT_SEGMENT_SIZE, Limits, MAX_FRAME_SIZE, MIN_FRAME_SIZE, NoProgress,
    Progress, ReadOptions, WriterOptions,
};
pub use crate::pages::{PAGES_PREFIX, ROOT_PATH, ROOT_SIGNATURE_PATH};
pub use crate::parent::{FileIdentity, PageSource, Parent};
pub use crate::readahead::ReadAhead;
pub use crate::reader::{ArchiveReader, Verified};
pub use crate::seek::{RangeRead, SeekSource, SeekableArchive, check_range};
pub use crate::unpack::{Staged, UnpackOptions, UnpackStats};
pub use crate::writer::{
    ArchiveMeta, ArchiveWriter, EntryMeta, Finished, MANIFEST_PATH, SIGNATURE_PATH,
};
