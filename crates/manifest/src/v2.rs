//! Manifest format version 2: a signed root and pages of entries.
//!
//! Version 1 keeps every entry in one JSON document, so whoever writes or reads
//! it holds all of them at once. Version 2 cuts the entry list into **pages**
//! (at most [`MAX_PAGE_ENTRIES`] entries and [`MAX_PAGE_BYTES`] bytes each, never
//! spanning two components), each stored as its own file in the archive and
//! named by its SHA-256 from a small signed **root**. The root's signature thus
//! covers every page (a Merkle tree of depth one), and a reader checks a page
//! against the root before using a byte of it.
//!
//! Whoever checks a v2 manifest holds the root and one page at a time:
//! [`Root::validate`] checks the root alone, then a [`PageChecker`] is fed the
//! pages in order and checks everything v1's `validate` checks about entries,
//! keeping state that does not grow with the number of entries when the root
//! says its entries are in canonical order ([`Root::canonical_order`]). Hard
//! links are checked in a second pass ([`LinkCheck`]), whose memory is bounded by
//! the number of hard links.
//!
//! `docs/format.md` describes the bytes.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher as _, RandomState};

use cairn_integrity::{KeyId, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::name::{ComponentName, TargetName};
use crate::path::{EntryPath, LinkTarget};
use crate::time::Mtime;
use crate::v1::{
    BackupKind, Component, Compression, Entry, EntryKind, FormatVersion, Frame, Origin, Skipped,
    UploadSource, Warning,
};

/// The major version of this format.
pub const MAJOR: u32 = 2;
/// The minor version this build writes: 1, whose page entries may carry a
/// file's `ctime` and inode (what the next backup compares to skip it) and
/// whose incremental roots name the feature [`FEATURE_PARENTS`].
pub const MINOR: u32 = 1;
/// The version this build writes.
pub const VERSION: FormatVersion = FormatVersion {
    major: MAJOR,
    minor: MINOR,
};

/// The feature of an incremental backup: its root names parents
/// ([`Root::parents`]) and some of its entries' data is in them
/// ([`PageEntry::data_in`]).
pub const FEATURE_PARENTS: &str = "parents";

/// The features of format 2 this build reads. A root that needs another is
/// refused: a later minor version that changes how entries are read names a
/// feature, so that a build that does not know it refuses the archive rather
/// than misreads it.
pub const KNOWN_FEATURES: &[&str] = &[FEATURE_PARENTS, FEATURE_SEGMENTS, FEATURE_PARENT_PAGES];

/// The feature of an incremental backup some of whose pages are a parent's
/// pages, unchanged ([`PageRef::data_in`]).
pub const FEATURE_PARENT_PAGES: &str = "parent_pages";

/// The feature of an incremental backup some of whose large files are
/// stored by segments ([`PageEntry::parts`]): each segment rebuilt from a
/// parent's bytes and this archive's blobs ([`Root::blob_bytes`]).
pub const FEATURE_SEGMENTS: &str = "segments";

/// Most steps one segment's recipe may have: its base and one patch for
/// each archive of the longest chain.
pub const MAX_STEPS: usize = MAX_PARENTS + 1;

/// Smallest segment size a root may name.
pub const MIN_SEGMENT_SIZE: u64 = 64 << 10;
/// Largest segment size a root may name (what a reader holds of one segment,
/// twice, while rebuilding it).
pub const MAX_SEGMENT_SIZE: u64 = 64 << 20;

/// The longest blob a segment of `segment_size` bytes may have: a zstd
/// frame of it, with zstd's worst-case expansion and room for its headers.
pub fn max_blob_len(segment_size: u64) -> u64 {
    segment_size + segment_size / 128 + (64 << 10)
}

/// Most parents a root may name (the longest chain a reader follows).
pub const MAX_PARENTS: usize = 64;

/// An earlier backup an incremental backup builds on, as its root names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent's id.
    pub backup_id: BackupId,
    /// SHA-256 of the parent's root (`.cairn/root.json`): signing the child
    /// signs this digest, hence every page and byte of the parent.
    pub root_sha256: Sha256Digest,
}

/// Most entries one page may hold.
pub const MAX_PAGE_ENTRIES: usize = 4096;
/// Largest encoded page accepted, in bytes (writers close a page at 1 MiB).
pub const MAX_PAGE_BYTES: u64 = 2 << 20;
/// Most pages one root may name (a billion entries at the page bound).
pub const MAX_PAGES: usize = 1 << 18;
/// Largest root accepted unless the caller sets another limit.
pub const DEFAULT_MAX_ROOT_BYTES: u64 = 64 << 20;

/// One page as the root names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRef {
    /// The component whose entries the page holds.
    pub component: ComponentName,
    /// How many entries it holds.
    pub entries: u32,
    /// SHA-256 of the page's bytes (the content of `.cairn/pages/<n>`).
    pub sha256: Sha256Digest,
    /// Offset in the archive of the one frame that holds the page's tar entry.
    pub offset: u64,
    /// That frame's compressed length.
    pub size: u64,
    /// With feature [`FEATURE_PARENT_PAGES`], the index in
    /// [`Root::parents`] of the backup whose page this is, unchanged:
    /// `offset` and `size` are then in that backup, and the page's entries
    /// are as that backup reads them.
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub data_in: Option<u32>,
}

impl PageRef {
    /// Whether the page is stored in this archive (not a parent's).
    pub fn is_own(&self) -> bool {
        self.data_in.is_none()
    }
}

/// The signed root of a version 2 manifest: everything v1's manifest says
/// except the entries, which are in the pages it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Always [`FORMAT_TAG`](crate::FORMAT_TAG).
    pub format: String,
    /// The format version, `2.x`.
    pub version: FormatVersion,
    /// The backup's id.
    pub backup_id: BackupId,
    /// The target it belongs to.
    pub target: TargetName,
    /// Why it was made.
    pub kind: BackupKind,
    /// A short label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When capture started (RFC 3339, UTC).
    pub created_at: jiff::Timestamp,
    /// How long writing the archive took, in milliseconds.
    pub duration_ms: u64,
    /// Who made it.
    pub origin: Origin,
    /// How it is compressed.
    pub compression: Compression,
    /// The key that signed it.
    pub signer: KeyId,
    /// The components, in archive order.
    pub components: Vec<Component>,
    /// Whether every component's entries are in canonical order (see
    /// [`canonical_cmp`]): true for trees Cairn walks itself, false for a
    /// foreign tarball ingested in its own order.
    pub canonical_order: bool,
    /// The pages, in archive order; their entries, in order, are the
    /// archive's entries in order.
    pub pages: Vec<PageRef>,
    /// The frames of the data region, in order.
    pub frames: Vec<Frame>,
    /// What was found but not archived.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// What was archived with a caveat.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// For an uploaded backup, what was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<UploadSource>,
    /// What a reader must understand to read this archive, beyond format
    /// 2.0 (empty: nothing). A reader refuses a root naming a feature it does
    /// not know ([`KNOWN_FEATURES`]), before anything else is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// For an incremental backup (feature [`FEATURE_PARENTS`]), the backups
    /// whose data it refers to: the nearest parent first, then that parent's
    /// own parents in its order, back to the full backup that starts the chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentRef>,
    /// With feature [`FEATURE_SEGMENTS`], the length of the segments its
    /// segmented files are cut into (the last one of a file may be shorter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_size: Option<u64>,
    /// The compressed length of the blob region, between the data frames and
    /// the first page: skippable zstd frames holding the segments' blobs
    /// (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blob_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One step of rebuilding a segment ([`PageEntry::parts`]). The first step
/// of a recipe gives bytes as they are (`Data`, or a `Blob` that is a plain
/// zstd frame); each later step is a `Blob` compressed against the bytes of
/// the step before it (zstd's "patch from" prefix), and the last step's
/// output is the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// `len` bytes of an archive's tar stream, from `pos` bytes into its
    /// frame number `frame`.
    Data {
        /// The parent holding them ([`Root::parents`] index).
        #[serde(rename = "in")]
        data_in: u32,
        /// The frame (an index in that archive's frames).
        frame: u32,
        /// The offset of the first byte in the decompressed frame.
        pos: u64,
        /// How many bytes.
        len: u64,
    },
    /// A zstd frame of `len` bytes, `blob` bytes into the blob region of
    /// this archive (`data_in` absent) or of a parent.
    Blob {
        /// The parent holding it; absent: this archive.
        #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
        data_in: Option<u32>,
        /// Its offset from the start of that archive's blob region.
        blob: u64,
        /// Its compressed length.
        len: u64,
    },
}

impl Step {
    /// The parent this step reads (`None`: this archive).
    pub fn holder(&self) -> Option<u32> {
        match self {
            Step::Data { data_in, .. } => Some(*data_in),
            Step::Blob { data_in, .. } => *data_in,
        }
    }

    /// The same step as a child of this archive names it: parent `k` of this
    /// archive is the child's `k + 1`, this archive the child's 0.
    pub fn for_child(&self) -> Option<Step> {
        self.seen_from(0)
    }

    /// The same step as an archive names it whose parent number `k` this
    /// archive is: parent `j` of this archive is its `k + 1 + j`, this
    /// archive its `k`. `None` past the longest index.
    pub fn seen_from(&self, k: u32) -> Option<Step> {
        let up = |j: u32| k.checked_add(1)?.checked_add(j);
        Some(match *self {
            Step::Data {
                data_in,
                frame,
                pos,
                len,
            } => Step::Data {
                data_in: up(data_in)?,
                frame,
                pos,
                len,
            },
            Step::Blob { data_in, blob, len } => Step::Blob {
                data_in: Some(match data_in {
                    None => k,
                    Some(j) => up(j)?,
                }),
                blob,
                len,
            },
        })
    }
}

/// One entry as a page stores it: v1's [`Entry`], except that `frame` is the
/// index of its frame in [`Root::frames`] (known as soon as the entry is
/// written, where a compressed offset is known only once earlier frames are).
///
/// In an incremental backup a regular file whose data did not change has no
/// tar entry of its own: `data_in` names the parent that holds the data, and
/// `frame`/`pos` locate the data's **first byte** (not a tar header) in that
/// parent's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEntry {
    /// `component/relative/path`.
    pub path: EntryPath,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Length of a regular file's data; 0 otherwise.
    #[serde(default)]
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Owner's numeric user id.
    #[serde(default)]
    pub uid: u64,
    /// Owner's numeric group id.
    #[serde(default)]
    pub gid: u64,
    /// SHA-256 of a regular file's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// A symlink's target, or a hard link's target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkTarget>,
    /// Index of the frame where the entry's first header block starts (or,
    /// with `data_in`, the parent's frame where its data starts).
    pub frame: u32,
    /// Offset of that header block (with `data_in`: of the first data byte)
    /// inside the decompressed frame.
    pub pos: u64,
    /// The index in [`Root::parents`] of the backup holding the data of this
    /// regular file, when it is not in this archive.
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub data_in: Option<u32>,
    /// The file's status-change time when it was read (format 2.1): with
    /// `ino`, what tells the next backup that the file did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<Mtime>,
    /// The file's inode number when it was read (format 2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// With feature [`FEATURE_SEGMENTS`], a regular file stored by segments
    /// of [`Root::segment_size`]: one recipe per segment, in order. Such a
    /// file has no tar entry here, and `frame` and `pos` are 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Vec<Step>>>,
}

impl PageEntry {
    /// A v1 entry as a page stores it, in frame number `frame`.
    pub fn from_entry(e: Entry, frame: u32) -> Self {
        PageEntry {
            path: e.path,
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            mtime: e.mtime,
            uid: e.uid,
            gid: e.gid,
            sha256: e.sha256,
            link: e.link,
            frame,
            pos: e.pos,
            data_in: None,
            ctime: None,
            ino: None,
            parts: None,
        }
    }

    /// Whether this entry has a tar entry in this archive: its data is
    /// neither in a parent ([`PageEntry::data_in`]) nor in segments
    /// ([`PageEntry::parts`]).
    pub fn is_stored_here(&self) -> bool {
        self.data_in.is_none() && self.parts.is_none()
    }

    /// The entry as v1 describes it, with its frame's compressed offset; an
    /// entry whose data is in a parent names that parent in `stored_in`, with
    /// `frame` and `pos` 0; one stored by segments has `frame` and `pos` 0.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] if the frame index is not one of the root's
    /// frames, or the parent index not one of its parents.
    pub fn to_entry(&self, root: &Root) -> Result<Entry> {
        let (frame, pos, stored_in) = match self.data_in {
            _ if self.parts.is_some() => (0, 0, None),
            // A folder, link or empty file of a parent's page: no data.
            Some(_) if self.kind != EntryKind::File || self.size == 0 => (0, 0, None),
            Some(k) => {
                let parent = root.parents.get(k as usize).ok_or_else(|| {
                    Error::inconsistent(format!("entry {} points to no parent", self.path))
                })?;
                (0, 0, Some(parent.backup_id))
            }
            None => {
                let frame = root.frames.get(self.frame as usize).ok_or_else(|| {
                    Error::inconsistent(format!("entry {} points to no frame", self.path))
                })?;
                (frame.offset, self.pos, None)
            }
        };
        Ok(Entry {
            path: self.path.clone(),
            kind: self.kind,
            size: self.size,
            mode: self.mode,
            mtime: self.mtime,
            uid: self.uid,
            gid: self.gid,
            sha256: self.sha256,
            link: self.link.clone(),
            frame,
            pos,
            stored_in,
        })
    }
}

/// A page: a run of entries of one component, in archive order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The component the entries belong to.
    pub component: ComponentName,
    /// The entries.
    pub entries: Vec<PageEntry>,
}

impl Page {
    /// The page's bytes as stored: compact JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if it cannot be serialised (it always can).
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Parses page bytes without checking them against a root: for pages this
    /// process wrote itself.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`], [`Error::Json`].
    pub fn decode(bytes: &[u8]) -> Result<Page> {
        if bytes.len() as u64 > MAX_PAGE_BYTES {
            return Err(Error::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_PAGE_BYTES,
            });
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Parses page bytes named by `expected` in the root: the bytes must hash to
    /// it and be at most [`MAX_PAGE_BYTES`] long. The page's entries are checked
    /// by a [`PageChecker`], not here.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`], [`Error::Integrity`]-free [`Error::Inconsistent`] if
    /// the bytes are not the page the root names, [`Error::Json`].
    pub fn parse(bytes: &[u8], expected: &PageRef, index: usize) -> Result<Page> {
        if bytes.len() as u64 > MAX_PAGE_BYTES {
            return Err(Error::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_PAGE_BYTES,
            });
        }
        if !Sha256Digest::of(bytes).ct_eq(&expected.sha256) {
            return Err(Error::inconsistent(format!(
                "page {index} does not match the SHA-256 its root names"
            )));
        }
        let page = Page::decode(bytes)?;
        if page.component != expected.component || page.entries.len() != expected.entries as usize {
            return Err(Error::inconsistent(format!(
                "page {index} is not the page its root describes"
            )));
        }
        Ok(page)
    }
}

/// Encodes a page entry by entry, into the same bytes as [`Page::encode`]
/// of the finished page, without keeping the entries.
#[derive(Debug, Default)]
pub struct PageEncoder {
    buf: Vec<u8>,
    component: Option<ComponentName>,
    entries: u32,
}

impl PageEncoder {
    /// The component of the page being encoded, if it has an entry.
    pub fn component(&self) -> Option<&ComponentName> {
        self.component.as_ref()
    }

    /// How many entries the page has.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// The length of the page's encoding so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the page has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds an entry of `component`.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] if the page already holds entries of another
    /// component or [`MAX_PAGE_ENTRIES`] entries.
    pub fn push(&mut self, component: &ComponentName, e: &PageEntry) -> Result<()> {
        match &self.component {
            None => {
                self.buf.extend_from_slice(b"{\"component\":");
                serde_json::to_writer(&mut self.buf, component)?;
                self.buf.extend_from_slice(b",\"entries\":[");
                self.component = Some(component.clone());
            }
            Some(c) if c == component && (self.entries as usize) < MAX_PAGE_ENTRIES => {
                self.buf.push(b',');
            }
            Some(_) => {
                return Err(Error::inconsistent(
                    "a page holds entries of one component, at most 4096",
                ));
            }
        }
        serde_json::to_writer(&mut self.buf, e)?;
        self.entries += 1;
        Ok(())
    }

    /// Finishes the page: its component, entry count and bytes; the encoder
    /// is empty again. `None` if it had no entry.
    pub fn take(&mut self) -> Option<(ComponentName, u32, Vec<u8>)> {
        let component = self.component.take()?;
        self.buf.extend_from_slice(b"]}");
        let entries = std::mem::take(&mut self.entries);
        Some((component, entries, std::mem::take(&mut self.buf)))
    }
}

/// At most 64 characters of `s`, for an error message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The canonical order of entry paths: component by component, each compared
/// byte-wise, a folder before what it holds. It is the order of a depth-first
/// walk visiting each folder's names in byte order, and a path compares as if
/// every `/` were the smallest byte.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

impl Root {
    /// Checks everything the root says about itself: format and version, names,
    /// lengths, unique components, contiguous frames, and pages that are each a
    /// run of one listed component, within bounds, one frame each, contiguous
    /// after the data region, whose entry counts add up to each component's.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] for another major; [`Error::Inconsistent`]
    /// naming the first contradiction.
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::inconsistent(reason));
        crate::validate::check_head(&crate::validate::Head {
            format: &self.format,
            version: self.version,
            major: MAJOR,
            target: &self.target,
            origin_target: &self.origin.target,
            label: self.label.as_deref(),
            description: self.description.as_deref(),
        })?;
        if let Some(f) = self
            .features
            .iter()
            .find(|f| !KNOWN_FEATURES.contains(&f.as_str()))
        {
            return Err(Error::UnsupportedVersion {
                found: format!("{} with feature {:?}", self.version, truncate(f)),
                supported: MAJOR,
            });
        }
        self.check_parents()?;
        let mut entries: HashMap<&ComponentName, u64> = HashMap::new();
        for c in &self.components {
            if entries.insert(&c.name, 0).is_some() {
                return fail(format!("component {} is listed twice", c.name));
            }
        }
        crate::validate::check_frames(&self.frames)?;

        if self.pages.len() > MAX_PAGES {
            return fail(format!(
                "the root names {} pages, more than {MAX_PAGES}",
                self.pages.len()
            ));
        }
        let mut next = self.data_compressed_end();
        let reuses = self.features.iter().any(|f| f == FEATURE_PARENT_PAGES);
        if reuses && self.parents.is_empty() {
            return fail("the root names the feature parent_pages but no parent".to_owned());
        }
        for (i, p) in self.pages.iter().enumerate() {
            let Some(count) = entries.get_mut(&p.component) else {
                return fail(format!(
                    "page {i} is of an unlisted component {}",
                    p.component
                ));
            };
            if p.entries == 0 || p.entries as usize > MAX_PAGE_ENTRIES {
                return fail(format!(
                    "page {i} holds {} entries (1 to {MAX_PAGE_ENTRIES} allowed)",
                    p.entries
                ));
            }
            if let Some(k) = p.data_in {
                if !reuses || k as usize >= self.parents.len() || p.size == 0 {
                    return fail(format!(
                        "page {i} is in parent {k}, which the root does not name with the feature parent_pages"
                    ));
                }
                *count += u64::from(p.entries);
                continue;
            }
            if p.offset != next || p.size == 0 {
                return fail(format!("page {i} does not follow the previous one"));
            }
            next = p
                .offset
                .checked_add(p.size)
                .ok_or_else(|| Error::inconsistent(format!("page {i} overflows")))?;
            *count += u64::from(p.entries);
        }
        for c in &self.components {
            if entries[&c.name] != c.entries {
                return fail(format!(
                    "component {} lists {} entries but its pages hold {}",
                    c.name, c.entries, entries[&c.name]
                ));
            }
        }
        Ok(())
    }

    /// Parents exactly when the feature says so, within bounds, each once,
    /// none of them this backup.
    fn check_parents(&self) -> Result<()> {
        let named = self.features.iter().any(|f| f == FEATURE_PARENTS);
        if named == self.parents.is_empty() {
            return Err(Error::inconsistent(if named {
                "the root names the feature parents but no parent"
            } else {
                "the root names parents without the feature parents"
            }));
        }
        if self.parents.len() > MAX_PARENTS {
            return Err(Error::inconsistent(format!(
                "the root names {} parents, more than {MAX_PARENTS}",
                self.parents.len()
            )));
        }
        let mut ids = HashSet::new();
        for p in &self.parents {
            if p.backup_id == self.backup_id || !ids.insert(&p.backup_id) {
                return Err(Error::inconsistent(format!(
                    "parent {} is named twice or is the backup itself",
                    p.backup_id
                )));
            }
        }
        self.check_segments()
    }

    /// A segment size and blobs exactly with the feature segments, which
    /// needs parents; the segment size within bounds.
    fn check_segments(&self) -> Result<()> {
        let named = self.features.iter().any(|f| f == FEATURE_SEGMENTS);
        if named != self.segment_size.is_some() {
            return Err(Error::inconsistent(
                "the root names a segment size exactly when it names the feature segments",
            ));
        }
        if named && self.parents.is_empty() {
            return Err(Error::inconsistent(
                "the root names the feature segments but no parent",
            ));
        }
        if !named && self.blob_bytes > 0 {
            return Err(Error::inconsistent(
                "the root has blobs but not the feature segments",
            ));
        }
        if let Some(size) = self.segment_size
            && !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size)
        {
            return Err(Error::inconsistent(format!(
                "segment size {size} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}"
            )));
        }
        Ok(())
    }

    /// Whether this backup refers to data in parents (an incremental backup).
    pub fn is_incremental(&self) -> bool {
        !self.parents.is_empty()
    }

    /// The backup as format 1 describes it, with `entries` (this root's
    /// entries, read from its pages): for listings that show a manifest of
    /// either format in one shape. Its `version` stays this root's.
    pub fn listing(&self, entries: Vec<Entry>) -> crate::v1::Manifest {
        self.clone().into_listing(entries)
    }

    /// As [`Root::listing`], consuming the root.
    pub fn into_listing(self, entries: Vec<Entry>) -> crate::v1::Manifest {
        crate::v1::Manifest {
            format: self.format,
            version: self.version,
            backup_id: self.backup_id,
            target: self.target,
            kind: self.kind,
            label: self.label,
            description: self.description,
            created_at: self.created_at,
            duration_ms: self.duration_ms,
            origin: self.origin,
            compression: self.compression,
            signer: self.signer,
            components: self.components,
            entries,
            frames: self.frames,
            skipped: self.skipped,
            warnings: self.warnings,
            source: self.source,
        }
    }

    /// The compressed end of the data region (where the first page's frame
    /// starts): the data frames and the blob region after them.
    pub fn data_compressed_end(&self) -> u64 {
        self.blobs_offset().saturating_add(self.blob_bytes)
    }

    /// Where the blob region starts: the end of the data frames.
    pub fn blobs_offset(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.offset + f.size)
    }

    /// The compressed end of the last page stored here (where the root's
    /// frame starts).
    pub fn pages_end(&self) -> u64 {
        self.pages
            .iter()
            .rev()
            .find(|p| p.is_own())
            .map_or(self.data_compressed_end(), |p| p.offset + p.size)
    }

    /// The number, among the pages stored in this archive, of each page
    /// (its tar entry is `.cairn/pages/<number>`); `None` for a parent's.
    pub fn own_page_numbers(&self) -> Vec<Option<u32>> {
        let mut n = 0u32;
        self.pages
            .iter()
            .map(|p| {
                p.is_own().then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect()
    }

    /// The end of the data region in the uncompressed tar stream.
    pub fn data_end(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.raw_offset + f.raw_size)
    }

    /// How many entries the pages hold.
    pub fn entry_count(&self) -> u64 {
        self.pages.iter().map(|p| u64::from(p.entries)).sum()
    }

    /// The component named `name`.
    pub fn component(&self, name: &ComponentName) -> Option<&Component> {
        self.components.iter().find(|c| &c.name == name)
    }

    /// The indexes of the pages of component `name`, in order.
    pub fn pages_of<'a>(&'a self, name: &'a ComponentName) -> impl Iterator<Item = usize> + 'a {
        self.pages
            .iter()
            .enumerate()
            .filter(move |(_, p)| &p.component == name)
            .map(|(i, _)| i)
    }

    /// The offset in the uncompressed tar stream of an entry's first header
    /// byte; `None` for an entry whose data is in a parent (it has no header
    /// here) or that points outside the frames.
    pub fn raw_offset(&self, e: &PageEntry) -> Option<u64> {
        if !e.is_stored_here() {
            return None;
        }
        let f = self.frames.get(e.frame as usize)?;
        (e.pos < f.raw_size).then(|| f.raw_offset + e.pos)
    }
}

/// A 128-bit keyed hash of a path, for the sets an archive whose entries are
/// not in canonical order needs: 16 bytes an entry instead of the path.
#[derive(Debug)]
struct PathHasher(RandomState, RandomState);

impl PathHasher {
    fn new() -> Self {
        PathHasher(RandomState::new(), RandomState::new())
    }

    fn hash(&self, bytes: &[u8]) -> u128 {
        let one = |s: &RandomState| {
            let mut h = s.build_hasher();
            h.write(bytes);
            h.finish()
        };
        (u128::from(one(&self.0)) << 64) | u128::from(one(&self.1))
    }
}

fn first_segment(path: &[u8]) -> &[u8] {
    path.split(|&b| b == b'/').next().unwrap_or(path)
}

/// Why [`EntryOrder::check`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderError {
    /// The path was listed before (in any order), or (in canonical order) it
    /// does not come after the previous entry.
    DuplicateOrOutOfOrder,
    /// It lies below an earlier file or link.
    BelowLeaf,
    /// (Any order) it is a file or a link, and earlier entries lie below it.
    HoldsEntries,
    /// (Canonical order) its component was left earlier: each component's
    /// entries must be contiguous.
    ComponentApart,
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderError::DuplicateOrOutOfOrder => "is listed twice or out of canonical order",
            OrderError::BelowLeaf => "lies below a file or link",
            OrderError::HoldsEntries => "is a file or link with earlier entries below it",
            OrderError::ComponentApart => "is apart from the other entries of its component",
        })
    }
}

/// What is remembered of the entries before the current one.
#[derive(Debug)]
enum Seen {
    /// Canonical order: the previous entry is enough, and the components
    /// already left.
    Canonical {
        prev: Option<(Vec<u8>, EntryKind)>,
        done: HashSet<Vec<u8>>,
    },
    /// Any order: every path so far, by 128-bit keyed hash, and its kind;
    /// and every folder those paths lie in.
    Any(PathHasher, HashMap<u128, EntryKind>, HashSet<u128>),
}

/// Refuses duplicate paths and entries below files or links, entry by entry.
///
/// In canonical order (see [`canonical_cmp`]) it keeps only the previous path
/// and the names of the components already left, whatever the number of
/// entries; in any order it keeps 16 bytes of keyed hash per entry and per
/// folder the entries lie in.
#[derive(Debug)]
pub struct EntryOrder(Seen);

impl EntryOrder {
    /// A check that requires canonical order.
    pub fn canonical() -> Self {
        EntryOrder(Seen::Canonical {
            prev: None,
            done: HashSet::new(),
        })
    }

    /// A check that accepts any order.
    pub fn any() -> Self {
        EntryOrder(Seen::Any(PathHasher::new(), HashMap::new(), HashSet::new()))
    }

    /// Whether this check requires canonical order.
    pub fn is_canonical(&self) -> bool {
        matches!(self.0, Seen::Canonical { .. })
    }

    /// Checks the next entry and remembers it if it passes.
    ///
    /// # Errors
    ///
    /// The [`OrderError`] it breaks; the entry is not remembered then.
    pub fn check(&mut self, path: &[u8], kind: EntryKind) -> std::result::Result<(), OrderError> {
        match &mut self.0 {
            Seen::Canonical { prev, done } => {
                match prev.as_mut() {
                    Some((p, k)) if first_segment(p) == first_segment(path) => {
                        if canonical_cmp(p, path) != Ordering::Less {
                            return Err(OrderError::DuplicateOrOutOfOrder);
                        }
                        if *k != EntryKind::Dir
                            && path.len() > p.len()
                            && path.starts_with(p)
                            && path[p.len()] == b'/'
                        {
                            return Err(OrderError::BelowLeaf);
                        }
                        p.clear();
                        p.extend_from_slice(path);
                        *k = kind;
                        return Ok(());
                    }
                    Some((p, _)) => {
                        if done.contains(first_segment(path)) {
                            return Err(OrderError::ComponentApart);
                        }
                        done.insert(first_segment(p).to_vec());
                    }
                    None => {}
                }
                *prev = Some((path.to_vec(), kind));
            }
            Seen::Any(hasher, kinds, folders) => {
                let ancestors: Vec<u128> = path
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'/')
                    .map(|(i, _)| hasher.hash(&path[..i]))
                    .collect();
                if ancestors
                    .iter()
                    .any(|a| kinds.get(a).is_some_and(|k| *k != EntryKind::Dir))
                {
                    return Err(OrderError::BelowLeaf);
                }
                let h = hasher.hash(path);
                if kinds.contains_key(&h) {
                    return Err(OrderError::DuplicateOrOutOfOrder);
                }
                if kind != EntryKind::Dir && folders.contains(&h) {
                    return Err(OrderError::HoldsEntries);
                }
                kinds.insert(h, kind);
                folders.extend(ancestors);
            }
        }
        Ok(())
    }
}

/// Checks the pages of a validated [`Root`], fed one at a time in order.
///
/// It refuses an entry outside its page's component, listed twice, out of
/// canonical order (when the root promises it), below a file or a link, with
/// fields its type does not have, pointing outside its frame or not after the
/// previous entry; and, at [`PageChecker::finish`], component totals that do
/// not add up. Hard links are collected for a [`LinkCheck`].
#[derive(Debug)]
pub struct PageChecker<'r> {
    root: &'r Root,
    next_page: usize,
    ordinal: u64,
    last_raw: Option<u64>,
    order: EntryOrder,
    bytes: HashMap<&'r ComponentName, u64>,
    /// Pages read of each component.
    pages_read: HashMap<&'r ComponentName, usize>,
    links: LinkCheck,
}

impl<'r> PageChecker<'r> {
    /// A checker for the pages of `root`, which must have passed
    /// [`Root::validate`].
    pub fn new(root: &'r Root) -> Self {
        PageChecker {
            root,
            next_page: 0,
            ordinal: 0,
            last_raw: None,
            order: if root.canonical_order {
                EntryOrder::canonical()
            } else {
                EntryOrder::any()
            },
            bytes: root.components.iter().map(|c| (&c.name, 0)).collect(),
            pages_read: HashMap::new(),
            links: LinkCheck::default(),
        }
    }

    /// Checks the next page.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] naming the first entry that breaks a rule, or a
    /// page beyond those the root names.
    pub fn page(&mut self, page: &Page) -> Result<()> {
        let i = self.next_page;
        let Some(named) = self.root.pages.get(i) else {
            return Err(Error::inconsistent(format!(
                "page {i} is not named by the root"
            )));
        };
        if page.component != named.component || page.entries.len() != named.entries as usize {
            return Err(Error::inconsistent(format!(
                "page {i} is not the page its root describes"
            )));
        }
        self.next_page += 1;
        if let Some(c) = self
            .root
            .components
            .iter()
            .find(|c| c.name == page.component)
        {
            *self.pages_read.entry(&c.name).or_default() += 1;
        }
        let reused = named.data_in.is_some();
        for e in &page.entries {
            self.entry(&page.component, e, reused)?;
        }
        Ok(())
    }

    /// Checks one entry; in a parent's page (`reused`), as a reader has it
    /// (every entry refers to the parent, folders and links too: they have
    /// no tar entry here).
    fn entry(&mut self, component: &ComponentName, e: &PageEntry, reused: bool) -> Result<()> {
        let fail = |reason: String| Err(Error::inconsistent(reason));
        let path = e.path.as_bytes();
        if e.path.first() != component.as_str().as_bytes() {
            return fail(format!(
                "entry {} is in a page of component {component}",
                e.path
            ));
        }
        crate::validate::check_entry_fields(
            &e.path,
            e.kind,
            e.size,
            e.mode,
            e.sha256.is_some(),
            e.link.is_some(),
        )?;
        if let Some(total) = self.bytes.get_mut(component) {
            *total = total.checked_add(e.size).ok_or_else(|| {
                Error::inconsistent(format!("sizes of component {component} overflow"))
            })?;
        }
        if let Err(why) = self.order.check(path, e.kind) {
            return fail(format!("entry {} {why}", e.path));
        }
        if e.kind == EntryKind::Hardlink {
            let Some(target) = &e.link else {
                return fail(format!("hard link {} has no target", e.path));
            };
            let same_component = target
                .as_bytes()
                .split(|&b| b == b'/')
                .next()
                .is_some_and(|c| c == e.path.first());
            if !same_component {
                return fail(format!("hard link {} crosses components", e.path));
            }
            self.links.add_link(target.as_bytes(), self.ordinal);
        }
        if let Some(parts) = &e.parts {
            self.check_parts(e, parts)?;
            self.ordinal += 1;
            return Ok(());
        }
        if let Some(k) = e.data_in {
            if !reused && (e.kind != EntryKind::File || e.size == 0) {
                return fail(format!(
                    "entry {} refers to a parent's data but is not a non-empty file",
                    e.path
                ));
            }
            if k as usize >= self.root.parents.len() {
                return fail(format!(
                    "entry {} refers to parent {k}, which the root does not name",
                    e.path
                ));
            }
            self.ordinal += 1;
            return Ok(());
        }
        let Some(at) = self.root.raw_offset(e) else {
            return fail(format!("entry {} points outside its frame", e.path));
        };
        if self.last_raw.is_some_and(|prev| at <= prev) {
            return fail(format!(
                "entry {} is not after the previous entry in the archive",
                e.path
            ));
        }
        self.last_raw = Some(at);
        self.ordinal += 1;
        Ok(())
    }

    /// A file stored by segments: a non-empty file not also in a parent, one
    /// recipe per segment, each of 1 to [`MAX_STEPS`] steps that name parents
    /// the root names, blobs of this archive inside its blob region, patches
    /// after the first step only.
    fn check_parts(&self, e: &PageEntry, parts: &[Vec<Step>]) -> Result<()> {
        let fail = |reason: &str| Err(Error::inconsistent(format!("entry {} {reason}", e.path)));
        let Some(seg) = self.root.segment_size else {
            return fail("is stored by segments in an archive without them");
        };
        if e.kind != EntryKind::File || e.size == 0 || e.data_in.is_some() {
            return fail("is stored by segments but is not a non-empty file of this archive");
        }
        if parts.len() as u64 != e.size.div_ceil(seg) {
            return fail("does not have one recipe per segment");
        }
        let parents = self.root.parents.len();
        for steps in parts {
            if steps.is_empty() || steps.len() > MAX_STEPS {
                return fail(&format!(
                    "has a segment of 0 or more than {MAX_STEPS} steps"
                ));
            }
            for (i, step) in steps.iter().enumerate() {
                if step.holder().is_some_and(|k| k as usize >= parents) {
                    return fail("refers to a parent the root does not name");
                }
                match *step {
                    Step::Data { len, .. } if i > 0 || len == 0 || len > seg => {
                        return fail("has a data step that is not a segment's base");
                    }
                    Step::Blob { len, .. } if len > max_blob_len(seg) => {
                        return fail("has a blob longer than a segment's frame can be");
                    }
                    Step::Blob {
                        data_in: None,
                        blob,
                        len,
                    } if len == 0
                        || blob
                            .checked_add(len)
                            .is_none_or(|end| end > self.root.blob_bytes) =>
                    {
                        return fail("has a blob outside the blob region");
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks page number `index`, skipping the pages between the previous
    /// one and it (a partial read: only some components).
    ///
    /// # Errors
    ///
    /// As [`PageChecker::page`], and for a page before one already checked.
    pub fn page_at(&mut self, index: usize, page: &Page) -> Result<()> {
        if index < self.next_page {
            return Err(Error::inconsistent(format!(
                "page {index} read after page {}",
                self.next_page
            )));
        }
        while self.next_page < index {
            self.ordinal += self
                .root
                .pages
                .get(self.next_page)
                .map_or(0, |p| u64::from(p.entries));
            self.next_page += 1;
        }
        self.page(page)
    }

    /// Ends a partial check: each component whose pages were all read has
    /// the bytes the root says.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`].
    pub fn finish_partial(self) -> Result<LinkCheck> {
        for c in &self.root.components {
            let total = self
                .root
                .pages
                .iter()
                .filter(|p| p.component == c.name)
                .count();
            let read = self.pages_read.get(&c.name).copied().unwrap_or(0);
            if read == total && self.bytes[&c.name] != c.bytes {
                return Err(Error::inconsistent(format!(
                    "component {} lists {} bytes but has {}",
                    c.name, c.bytes, self.bytes[&c.name]
                )));
            }
        }
        Ok(self.links)
    }

    /// Ends the check: every page the root names was seen, and each
    /// component's bytes add up.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`].
    pub fn finish(self) -> Result<LinkCheck> {
        if self.next_page != self.root.pages.len() {
            return Err(Error::inconsistent(format!(
                "the root names {} pages but {} were read",
                self.root.pages.len(),
                self.next_page
            )));
        }
        for c in &self.root.components {
            let bytes = self.bytes[&c.name];
            if bytes != c.bytes {
                return Err(Error::inconsistent(format!(
                    "component {} lists {} bytes but has {bytes}",
                    c.name, c.bytes
                )));
            }
        }
        Ok(self.links)
    }
}

/// The second pass for hard links: every hard link's target must be a regular
/// file listed before the link. The first pass names the links
/// ([`LinkCheck::add_link`]); the second is fed every entry again, in order
/// ([`LinkCheck::entry`] or [`LinkCheck::page`]), and can be skipped when
/// [`LinkCheck::is_empty`]. Memory is bounded by the number of hard links.
#[derive(Debug, Default)]
pub struct LinkCheck {
    /// Each target, and the ordinal of the first link to it.
    pending: HashMap<Vec<u8>, u64>,
    found: HashSet<Vec<u8>>,
    ordinal: u64,
}

impl LinkCheck {
    /// Notes, in the first pass, that entry number `ordinal` (from 0, in
    /// archive order) is a hard link to `target`.
    pub fn add_link(&mut self, target: &[u8], ordinal: u64) {
        self.pending.entry(target.to_vec()).or_insert(ordinal);
    }

    /// Whether there is no hard link to check.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next entry of the second pass.
    pub fn entry(&mut self, path: &[u8], kind: EntryKind) {
        if kind == EntryKind::File
            && self
                .pending
                .get(path)
                .is_some_and(|&first_link| self.ordinal < first_link)
        {
            self.found.insert(path.to_vec());
        }
        self.ordinal += 1;
    }

    /// Skips `entries` entries in the second pass (pages a partial read does
    /// not cover).
    pub fn skip(&mut self, entries: u64) {
        self.ordinal += entries;
    }

    /// The entries of the next page, in the second pass.
    pub fn page(&mut self, page: &Page) {
        for e in &page.entries {
            self.entry(e.path.as_bytes(), e.kind);
        }
    }

    /// Ends the check.
    ///
    /// # Errors
    ///
    /// [`Error::Inconsistent`] naming a target that is not an earlier regular file.
    pub fn finish(self) -> Result<()> {
        let mut missing: Vec<&Vec<u8>> = self
            .pending
            .keys()
            .filter(|t| !self.found.contains(*t))
            .collect();
        missing.sort();
        match missing.first() {
            None => Ok(()),
            Some(t) => Err(Error::inconsistent(format!(
                "a hard link to {} does not point to an earlier regular file",
                crate::path::show_bytes(t)
            ))),
        }
    }
}
