//! The backup an incremental archive is written against.
//!
//! The writer walks a tree in canonical order; [`Parent`] walks the parent's
//! pages of the same component in the same order beside it (a merge: one page
//! in memory, no map of the parent's entries), so that a file whose metadata
//! did not change is found without reading it and its entry refers to the
//! bytes the chain already holds.

use std::cmp::Ordering;

use cairn_integrity::Sha256Digest;
use cairn_manifest::{
    BackupId, ComponentName, EntryKind, EntryPath, Mtime, Page, PageEntry, Root, canonical_cmp,
};

use crate::error::{Error, Result};
use crate::seek::{RangeRead, SeekableArchive};
use cairn_manifest::v2::{ParentRef, Step};

/// Pages of a backup, fetched one at a time and checked against its root,
/// and the segments of its large files.
pub trait PageSource: Send {
    /// Page number `index` of the root.
    ///
    /// # Errors
    ///
    /// Whatever reading or checking the page reports.
    fn page(&mut self, index: usize) -> Result<Page>;

    /// Segment number `i`, of `segment_size` bytes, of the data of `entry`
    /// (an entry of this backup's pages): how a child of this backup refers
    /// to it, and its bytes. `None` past the end of the data.
    ///
    /// # Errors
    ///
    /// Whatever reading the data reports.
    fn segment(
        &mut self,
        entry: &PageEntry,
        i: u64,
        segment_size: u64,
    ) -> Result<Option<(Vec<Step>, Vec<u8>)>>;
}

impl<S: RangeRead + Send> PageSource for SeekableArchive<S> {
    fn page(&mut self, index: usize) -> Result<Page> {
        self.fetch_page(index)
    }

    fn segment(
        &mut self,
        entry: &PageEntry,
        i: u64,
        segment_size: u64,
    ) -> Result<Option<(Vec<Step>, Vec<u8>)>> {
        self.segment_for_child(entry, i, segment_size)
    }
}

/// What identifies a file on disk beyond its [`EntryMeta`](crate::EntryMeta):
/// when these and the metadata equal the parent's, the file is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// Status-change time.
    pub ctime: Mtime,
    /// Inode number.
    pub ino: u64,
}

impl FileIdentity {
    /// The identity of a file on disk.
    #[cfg(unix)]
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let nanos = u32::try_from(m.ctime_nsec()).unwrap_or(0).min(999_999_999);
        FileIdentity {
            ctime: Mtime::new(m.ctime(), nanos),
            ino: m.ino(),
        }
    }
}

/// Where a file's data already is: parent number `data_in` of the child's
/// parent list, frame `frame` of that backup, offset `pos` of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataRef {
    pub(crate) data_in: u32,
    pub(crate) frame: u32,
    pub(crate) pos: u64,
}

/// A verified format 2 backup in canonical order, read page by page beside
/// a walk of the same tree.
pub struct Parent {
    id: BackupId,
    root: Root,
    root_sha256: Sha256Digest,
    pages: Box<dyn PageSource>,
    /// The pages of the current component not fetched yet, in order.
    todo: std::vec::IntoIter<usize>,
    /// The current page's entries and the next one to compare, and the
    /// page's index in the root.
    page: Vec<PageEntry>,
    next: usize,
    page_no: Option<usize>,
}

impl std::fmt::Debug for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parent")
            .field("backup_id", &self.id)
            .field("depth", &self.root.parents.len())
            .finish_non_exhaustive()
    }
}

impl Parent {
    /// The parent read from `archive` (opened through its seal or footer,
    /// hence verified). For an incremental parent, attach its own parents
    /// first ([`SeekableArchive::attach_parents`]): the segments of a changed
    /// large file are compared with the parent's, which may be in them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if it is not a format 2 archive whose entries
    /// are in canonical order (an ingested foreign tarball): such a backup
    /// cannot be a parent.
    pub fn new<S: RangeRead + Send + 'static>(archive: SeekableArchive<S>) -> Result<Self> {
        let manifest = archive.manifest();
        let Some(root) = manifest.v2().map(cairn_manifest::Signed::manifest) else {
            return Err(Error::invalid(format!(
                "backup {} is in format 1 and cannot be a parent",
                manifest.backup_id()
            )));
        };
        if !root.canonical_order {
            return Err(Error::invalid(format!(
                "backup {} is not in canonical order and cannot be a parent",
                root.backup_id
            )));
        }
        Ok(Parent {
            id: root.backup_id,
            root: root.clone(),
            root_sha256: manifest.sha256(),
            pages: Box::new(archive),
            todo: Vec::new().into_iter(),
            page: Vec::new(),
            next: 0,
            page_no: None,
        })
    }

    /// The parent's id.
    pub fn backup_id(&self) -> &BackupId {
        &self.id
    }

    /// How many parents the parent has itself (0 for a full backup).
    pub fn depth(&self) -> usize {
        self.root.parents.len()
    }

    /// The parent list of a child of this backup: this backup, then its own
    /// parents.
    pub(crate) fn chain(&self) -> Vec<ParentRef> {
        let mut chain = vec![ParentRef {
            backup_id: self.id,
            root_sha256: self.root_sha256,
        }];
        chain.extend(self.root.parents.iter().cloned());
        chain
    }

    /// The segment size of the parent's segmented files, if it has any.
    pub(crate) fn segment_size(&self) -> Option<u64> {
        self.root.segment_size
    }

    /// Segment `i` of `seg` bytes of the parent's entry `e`, as
    /// [`PageSource::segment`] gives it.
    pub(crate) fn segment(
        &mut self,
        e: &PageEntry,
        i: u64,
        seg: u64,
    ) -> Result<Option<(Vec<Step>, Vec<u8>)>> {
        self.pages.segment(e, i, seg)
    }

    /// Starts comparing the entries of component `name`.
    pub(crate) fn begin_component(&mut self, name: &ComponentName) {
        let pages: Vec<usize> = self.root.pages_of(name).collect();
        self.todo = pages.into_iter();
        self.page.clear();
        self.next = 0;
        self.page_no = None;
    }

    /// Whether the parent has an entry at `path` (then [`Parent::current`]);
    /// paths must be asked in canonical order within a component.
    pub(crate) fn find(&mut self, path: &EntryPath) -> Result<bool> {
        loop {
            if self.next == self.page.len() {
                let Some(i) = self.todo.next() else {
                    return Ok(false);
                };
                self.page = self.pages.page(i)?.entries;
                self.next = 0;
                self.page_no = Some(i);
                continue;
            }
            match canonical_cmp(self.page[self.next].path.as_bytes(), path.as_bytes()) {
                Ordering::Less => self.next += 1,
                Ordering::Equal => return Ok(true),
                Ordering::Greater => return Ok(false),
            }
        }
    }

    /// The entry [`Parent::find`] found.
    pub(crate) fn current(&self) -> Option<&PageEntry> {
        self.page.get(self.next)
    }

    /// Where the entry [`Parent::find`] found is: the index of its page in
    /// the root, its place in the page, and the page's length.
    pub(crate) fn place(&self) -> Option<(usize, usize, usize)> {
        let page = self.page_no?;
        (self.next < self.page.len()).then_some((page, self.next, self.page.len()))
    }

    /// The index in the root of the page the walk of the parent is in.
    pub(crate) fn cursor_page(&self) -> Option<usize> {
        self.page_no
    }

    /// The entries of the page [`Parent::place`] names.
    pub(crate) fn page_entries(&self) -> &[PageEntry] {
        &self.page
    }

    /// Page `i` of the parent as a child of it names it, to reuse it: where
    /// it is stored (the parent, or the archive the parent took it from).
    pub(crate) fn page_for_child(&self, i: usize) -> Option<cairn_manifest::PageRef> {
        let p = self.root.pages.get(i)?;
        let data_in = match p.data_in {
            None => 0,
            Some(j) => j.checked_add(1)?,
        };
        Some(cairn_manifest::PageRef {
            data_in: Some(data_in),
            ..p.clone()
        })
    }

    /// Where the data of `e` (an entry of this parent) is, for a child whose
    /// parent list is [`Parent::chain`] and whose segments are `seg` bytes:
    /// in this parent after the entry's header, wherever this parent's own
    /// reference points, or in the segments it names. `None` if the position
    /// does not resolve inside the frames, or the segments are of another
    /// size (the entry is then stored anew).
    pub(crate) fn locate(&self, e: &PageEntry, seg: u64) -> Option<Held> {
        if let Some(parts) = &e.parts {
            if self.root.segment_size != Some(seg) {
                return None;
            }
            let child: Option<Vec<Vec<Step>>> = parts
                .iter()
                .map(|steps| steps.iter().map(Step::for_child).collect())
                .collect();
            return child.map(Held::Parts);
        }
        if let Some(k) = e.data_in {
            return Some(Held::At(DataRef {
                data_in: k.checked_add(1)?,
                frame: e.frame,
                pos: e.pos,
            }));
        }
        let (frame, pos) = crate::chain::data_start(&self.root, e)?;
        Some(Held::At(DataRef {
            data_in: 0,
            frame,
            pos,
        }))
    }
}

/// Where the data of a parent's entry is, for its child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Held {
    /// In one piece.
    At(DataRef),
    /// In segments, each rebuilt by its recipe.
    Parts(Vec<Vec<Step>>),
}

/// Whether a file with this metadata and identity is the parent's entry
/// `p` unchanged: a non-empty regular file whose size, times, inode, mode and
/// owner are equal.
pub(crate) fn unchanged(
    p: &PageEntry,
    size: u64,
    meta: &crate::EntryMeta,
    id: &FileIdentity,
) -> bool {
    p.kind == EntryKind::File
        && p.size == size
        && size > 0
        && p.sha256.is_some()
        && p.mtime == meta.mtime
        && p.ctime == Some(id.ctime)
        && p.ino == Some(id.ino)
        && p.mode == meta.mode & 0o7777
        && p.uid == meta.uid
        && p.gid == meta.gid
}
