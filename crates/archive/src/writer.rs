//! Writing archives.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cairn_integrity::{Hasher, Seal, Sha256Digest, SignedSeal, SigningKey};
use cairn_manifest::{
    AnyManifest, BackupId, BackupKind, Component, ComponentKind, ComponentName, Compression, Entry,
    EntryKind, EntryOrder, EntryPath, FORMAT_TAG, FormatVersion, Frame, LinkCheck, Manifest, Mtime,
    OrderError, Origin, OriginId, PageEntry, PageRef, Root, SignedManifest, SignedRoot, SkipReason,
    Skipped, TargetName, UploadSource, Warning,
};

use crate::codec::Footer;
use crate::error::{Error, Result};
use crate::frames::FrameWriter;
use crate::options::{Progress, WriterOptions};
use crate::pages::{PageSpill, ROOT_PATH, ROOT_SIGNATURE_PATH, parse_page};
use crate::parent::{FileIdentity, Held, Parent};
use crate::segments::Blobs;
use crate::spill::{check_order, replay_one};
use crate::tar::{BLOCK, HeaderSpec, encode_header, padded};
use cairn_manifest::v2::Step;

/// Path of the manifest inside every archive.
pub const MANIFEST_PATH: &str = ".cairn/manifest.json";
/// Path of the manifest's signature inside every archive.
pub const SIGNATURE_PATH: &str = ".cairn/manifest.sig";

/// What the manifest says about the backup as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveMeta {
    /// The backup's id.
    pub backup_id: BackupId,
    /// The target.
    pub target: TargetName,
    /// Why it is made.
    pub kind: BackupKind,
    /// A short label.
    pub label: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// When capture started.
    pub created_at: jiff::Timestamp,
    /// Who makes it.
    pub origin: Origin,
}

impl ArchiveMeta {
    /// Metadata for a new manual backup of `target` made now by installation
    /// `origin_id`, with a fresh id.
    pub fn new(target: TargetName, origin_id: OriginId) -> Self {
        ArchiveMeta {
            backup_id: BackupId::generate(),
            target: target.clone(),
            kind: BackupKind::Manual,
            label: None,
            description: None,
            created_at: jiff::Timestamp::now(),
            origin: Origin {
                target,
                origin_id,
                hostname: None,
                model: None,
                serial: None,
                software_version: concat!("cairn/", env!("CARGO_PKG_VERSION")).to_owned(),
            },
        }
    }

    /// Sets the backup id.
    pub fn backup_id(mut self, id: BackupId) -> Self {
        self.backup_id = id;
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: BackupKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the creation time.
    pub fn created_at(mut self, at: jiff::Timestamp) -> Self {
        self.created_at = at;
        self
    }

    /// Sets the origin's host name.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.origin.hostname = Some(hostname.into());
        self
    }

    /// Sets the origin's device model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.origin.model = Some(model.into());
        self
    }

    /// Sets the origin's device serial number.
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.origin.serial = Some(serial.into());
        self
    }

    /// Sets the software that writes the archive (default `cairn/<version>`).
    pub fn software_version(mut self, version: impl Into<String>) -> Self {
        self.origin.software_version = version.into();
        self
    }
}

/// Metadata of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

impl EntryMeta {
    /// Metadata with owner 0:0.
    pub fn new(mode: u32, mtime: Mtime) -> Self {
        EntryMeta {
            mode: mode & 0o7777,
            mtime,
            uid: 0,
            gid: 0,
        }
    }

    /// Metadata of a file on disk.
    #[cfg(unix)]
    pub fn from_metadata(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let nanos = u32::try_from(m.mtime_nsec()).unwrap_or(0).min(999_999_999);
        EntryMeta {
            mode: m.mode() & 0o7777,
            mtime: Mtime::new(m.mtime(), nanos),
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
        }
    }
}

/// What [`ArchiveWriter::finish`] produces.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<W> {
    /// The output writer, flushed.
    pub inner: W,
    /// The archive's length.
    pub size: u64,
    /// The archive's SHA-256.
    pub sha256: Sha256Digest,
    /// The signed manifest (format 1) or root (format 2) stored at its end.
    pub manifest: AnyManifest,
    /// The signed seal to store beside it.
    pub seal: SignedSeal,
    /// Regular files whose entries refer to the parent's data instead of
    /// storing it ([`ArchiveWriter::set_parent`]): not read, because their
    /// metadata is unchanged, or read and found the same
    /// ([`ArchiveWriter::set_full_read`]).
    pub reused_files: u64,
    /// Their bytes.
    pub reused_bytes: u64,
}

/// Writes a Cairn archive to any `Write`.
///
/// Components are appended one after another; each is a directory tree
/// ([`ArchiveWriter::append_dir`]), one file ([`ArchiveWriter::append_file`]), one
/// stream of known size ([`ArchiveWriter::append_reader`]), or entries added one by
/// one after [`ArchiveWriter::begin_component`]. Then [`ArchiveWriter::finish`]
/// appends the signed manifest and the footer and returns the seal.
///
/// Call `finish` before dropping: a writer dropped without it leaves an incomplete
/// archive that every reader refuses (it has no manifest).
pub struct ArchiveWriter<W: Write> {
    fw: FrameWriter<W>,
    meta: ArchiveMeta,
    compression: Compression,
    progress: Arc<dyn Progress>,
    components: Vec<Component>,
    component_index: HashMap<ComponentName, usize>,
    /// What each component holds besides its root: how many entries, and
    /// whether the one entry is a file directly under the root.
    shapes: Vec<(u64, bool)>,
    /// Format 1: every entry, and the index of its frame.
    entries: Vec<Entry>,
    frame_of: Vec<usize>,
    /// Format 2: the pages.
    pages: Option<PageSpill>,
    /// How many entries were appended.
    count: u64,
    /// Refuses duplicates and entries below files or links: in canonical
    /// order without remembering every path, in any other order with 16 bytes
    /// an entry.
    order: EntryOrder,
    /// Hard links, checked against their targets when the archive is finished.
    links: LinkCheck,
    skipped: Vec<Skipped>,
    warnings: Vec<Warning>,
    source: Option<UploadSource>,
    started: Instant,
    /// The backup this one is incremental to, if any.
    parent: Option<Parent>,
    /// Trust no file's metadata: read each, and refer to the parent's data
    /// only when the content is the same.
    full_read: bool,
    /// Files referred to in the parent's chain, and their bytes.
    reused: (u64, u64),
    /// Whether an entry is stored by segments, and the blobs they wrote.
    segmented: bool,
    blobs: Blobs,
    segment_size: u64,
    spill_dir: Option<std::path::PathBuf>,
    /// Entries held back while the parent's page they are in may be reused.
    candidate: Option<Candidate>,
    /// The parent's page the walk was in at the last entry.
    parent_page: Option<usize>,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("backup_id", &self.meta.backup_id)
            .field("entries", &self.count)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive on `out`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if the options are out of range or the label or
    /// description too long; [`Error::Io`] if threads cannot be started.
    pub fn new(out: W, meta: ArchiveMeta, options: WriterOptions) -> Result<Self> {
        options.validate()?;
        if meta.origin.target != meta.target {
            return Err(Error::invalid("origin target must be the backup's target"));
        }
        if meta
            .label
            .as_ref()
            .is_some_and(|l| l.len() > cairn_manifest::MAX_LABEL_BYTES)
        {
            return Err(Error::invalid(format!(
                "label is longer than {} bytes",
                cairn_manifest::MAX_LABEL_BYTES
            )));
        }
        if meta
            .description
            .as_ref()
            .is_some_and(|d| d.len() > cairn_manifest::MAX_DESCRIPTION_BYTES)
        {
            return Err(Error::invalid(format!(
                "description is longer than {} bytes",
                cairn_manifest::MAX_DESCRIPTION_BYTES
            )));
        }
        let level = options.effective_level();
        let pages = if options.format == 2 {
            Some(PageSpill::new(
                options.spill_dir.as_deref(),
                timestamp_mtime(meta.created_at),
            )?)
        } else {
            None
        };
        let fw = FrameWriter::new(
            out,
            options.codec,
            level,
            options.frame_size,
            options.threads,
        )?;
        Ok(ArchiveWriter {
            fw,
            meta,
            compression: Compression {
                codec: options.codec,
                level,
                frame_size: options.frame_size as u64,
            },
            progress: options.progress,
            components: Vec::new(),
            component_index: HashMap::new(),
            shapes: Vec::new(),
            entries: Vec::new(),
            frame_of: Vec::new(),
            pages,
            count: 0,
            order: EntryOrder::canonical(),
            links: LinkCheck::default(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            source: None,
            started: Instant::now(),
            parent: None,
            full_read: false,
            reused: (0, 0),
            segmented: false,
            blobs: Blobs::default(),
            segment_size: options.segment_size,
            spill_dir: options.spill_dir.clone(),
            candidate: None,
            parent_page: None,
        })
    }

    /// With a parent ([`ArchiveWriter::set_parent`]), trusts no file's
    /// metadata: every file is read and hashed, and one whose size and
    /// SHA-256 equal its parent entry's refers to the parent's data instead
    /// of being stored again (a file that did change is read twice). What a
    /// scheduled full read proves is that metadata did not hide a change.
    pub fn set_full_read(&mut self, on: bool) {
        self.full_read = on;
    }

    /// Makes the archive incremental to `parent`: a regular file that the
    /// walk of [`ArchiveWriter::append_dir`] (or [`ArchiveWriter::append_file`])
    /// finds with the size, modification and status-change times, inode,
    /// mode and owner of the parent's entry is not read; its entry refers to
    /// the data the parent's chain holds. The root then names the chain
    /// (format 2.1, feature `parents`); if no file is unchanged it names none
    /// and the archive is full. A parent stored by segments sets the segment
    /// size (a chain keeps the one it started with, so that its segments
    /// stay aligned: [`WriterOptions::segment_size`] applies from the next
    /// full backup).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a format 1 writer, or after the first
    /// component was begun; or if the chain would be longer than
    /// [`MAX_PARENTS`](cairn_manifest::v2::MAX_PARENTS).
    pub fn set_parent(&mut self, parent: Parent) -> Result<()> {
        if self.pages.is_none() {
            return Err(Error::invalid("only format 2 archives can be incremental"));
        }
        if !self.components.is_empty() {
            return Err(Error::invalid(
                "the parent must be set before the first component",
            ));
        }
        if parent.depth() + 1 > cairn_manifest::v2::MAX_PARENTS {
            return Err(Error::invalid(format!(
                "backup {} already ends a chain of {} backups",
                parent.backup_id(),
                parent.depth() + 1
            )));
        }
        if let Some(seg) = parent.segment_size() {
            self.segment_size = seg;
        }
        self.parent = Some(parent);
        Ok(())
    }

    /// Appends the regular file at `path` as a reference to the parent's
    /// data if it is unchanged (see [`ArchiveWriter::set_parent`]); `false`
    /// if it is not, or there is no parent, and the caller reads it.
    pub(crate) fn append_unchanged(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        id: &FileIdentity,
    ) -> Result<bool> {
        let Some(parent) = self.parent.as_mut().filter(|_| !self.full_read) else {
            return Ok(false);
        };
        if !parent.find(path)? {
            return Ok(false);
        }
        let Some(p) = parent.current() else {
            return Ok(false);
        };
        if !crate::parent::unchanged(p, size, &meta, id) {
            return Ok(false);
        }
        let (Some(at), Some(sha256)) = (parent.locate(p, self.segment_size), p.sha256) else {
            return Ok(false);
        };
        self.push_reused(path, meta, (size, sha256, at), id)?;
        Ok(true)
    }

    /// Appends a file of `size` bytes with digest `sha256` whose data is at
    /// `at` in the parent's chain.
    fn push_reused(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        (size, sha256, at): (u64, Sha256Digest, Held),
        id: &FileIdentity,
    ) -> Result<()> {
        self.push(
            path,
            EntryKind::File,
            meta,
            None,
            Body::Elsewhere { size, sha256, at },
            Some(*id),
        )?;
        self.reused.0 += 1;
        self.reused.1 += size;
        Ok(())
    }

    /// Makes component `name` a `kind` component, optional or not (an
    /// ingest learns what a folder is only once it has read it). A `file` or
    /// `sqlite` component must hold exactly one regular file, directly under
    /// its root, and nothing else but the root directory itself.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an unknown component or one whose entries
    /// do not fit `kind`.
    pub fn set_component(
        &mut self,
        name: &ComponentName,
        kind: ComponentKind,
        optional: bool,
    ) -> Result<()> {
        let i = *self
            .component_index
            .get(name)
            .ok_or_else(|| Error::invalid(format!("no component {name} in the archive")))?;
        if kind != ComponentKind::Dir {
            let one_file = self.shapes[i] == (1, true);
            if !one_file {
                return Err(Error::invalid(format!(
                    "component {name} cannot be a {kind}: it must hold exactly one regular file and nothing else"
                )));
            }
        }
        self.components[i].kind = kind;
        self.components[i].optional = optional;
        Ok(())
    }

    /// Records a caveat about `path` in the manifest.
    pub(crate) fn warn(&mut self, path: EntryPath, message: String) {
        self.warnings.push(Warning { path, message });
    }

    /// Records what an uploaded archive was made from (the manifest's `source`).
    pub fn set_source(&mut self, source: UploadSource) {
        self.source = Some(source);
    }

    /// Starts a component; entries appended next belong to it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if the archive already has a component of that name.
    pub fn begin_component(
        &mut self,
        name: &ComponentName,
        kind: ComponentKind,
        optional: bool,
    ) -> Result<()> {
        if self.component_index.contains_key(name) {
            return Err(Error::invalid(format!(
                "component {name} is already in the archive"
            )));
        }
        // Held entries of the component before belong before this one.
        self.flush_candidate()?;
        self.component_index
            .insert(name.clone(), self.components.len());
        self.components.push(Component {
            name: name.clone(),
            kind,
            optional,
            entries: 0,
            bytes: 0,
        });
        self.shapes.push((0, false));
        if let Some(parent) = self.parent.as_mut() {
            parent.begin_component(name);
        }
        Ok(())
    }

    /// Whether a component of that name was begun.
    pub fn has_component(&self, name: &ComponentName) -> bool {
        self.component_index.contains_key(name)
    }

    /// Appends a directory tree as a `dir` component: the directory itself, then
    /// everything below it in name order. Links are archived as links, never
    /// followed (except `src` itself); hard links become hard-link entries; sockets,
    /// fifos and devices are skipped and listed in the manifest; files that vanish
    /// while the tree is read are skipped and listed too.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that could not be read, [`Error::InvalidInput`]
    /// if `src` is not a directory, [`Error::Unsupported`] for a path longer than
    /// 4096 bytes, [`Error::Cancelled`].
    pub fn append_dir(&mut self, name: &ComponentName, src: &Path, optional: bool) -> Result<()> {
        let root = fs::metadata(src).map_err(Error::io("reading", src.to_owned()))?;
        if !root.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                src.display()
            )));
        }
        self.begin_component(name, ComponentKind::Dir, optional)?;
        crate::capture::walk(self, name, src, &root)
    }

    /// Appends one file as a `file` or `sqlite` component; its entry is
    /// `<component>/<file name>`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read, [`Error::InvalidInput`] if it is not a
    /// regular file or its name is not usable.
    pub fn append_file(
        &mut self,
        name: &ComponentName,
        kind: ComponentKind,
        src: &Path,
        optional: bool,
    ) -> Result<()> {
        let mut file = fs::File::open(src).map_err(Error::io("opening", src.to_owned()))?;
        let meta = file
            .metadata()
            .map_err(Error::io("reading", src.to_owned()))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{} is not a regular file",
                src.display()
            )));
        }
        let file_name = src
            .file_name()
            .ok_or_else(|| Error::invalid(format!("{} has no file name", src.display())))?;
        let path = component_path(name, os_bytes(file_name))?;
        self.begin_component(name, kind, optional)?;
        self.append_file_data(&path, &meta, &mut file, src)
    }

    /// Appends an open regular file (`meta` its metadata, taken from the open
    /// file): a reference to the parent's data if it is unchanged, its bytes
    /// otherwise.
    pub(crate) fn append_file_data(
        &mut self,
        path: &EntryPath,
        meta: &fs::Metadata,
        file: &mut fs::File,
        src: &Path,
    ) -> Result<()> {
        let id = FileIdentity::from_metadata(meta);
        let em = EntryMeta::from_metadata(meta);
        if self.append_unchanged(path, em, meta.len(), &id)? {
            return Ok(());
        }
        if self.full_read && self.append_same_content(path, em, meta.len(), &id, file, src)? {
            return Ok(());
        }
        if self.append_segmented(path, em, meta.len(), &id, file, src)? {
            return Ok(());
        }
        self.push(
            path,
            EntryKind::File,
            em,
            None,
            Body::Read(file, meta.len(), Some(src)),
            Some(id),
        )
    }

    /// (Full read) Hashes `file`; if its content is its parent entry's, appends
    /// a reference to the parent's data and returns `true`; otherwise rewinds
    /// the file for reading again and returns `false`.
    fn append_same_content(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        id: &FileIdentity,
        file: &mut fs::File,
        src: &Path,
    ) -> Result<bool> {
        let Some(parent) = self.parent.as_mut() else {
            return Ok(false);
        };
        if size == 0 || !parent.find(path)? {
            return Ok(false);
        }
        let Some(p) = parent
            .current()
            .filter(|p| p.kind == EntryKind::File && p.size == size)
        else {
            return Ok(false);
        };
        let (Some(at), Some(sha256)) = (parent.locate(p, self.segment_size), p.sha256) else {
            return Ok(false);
        };
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io("reading", Some(src.to_owned()), e)),
            };
            hasher.update(&buf[..n]);
            read += n as u64;
            self.progress.bytes(n as u64);
        }
        if read == size && hasher.finalize().ct_eq(&sha256) {
            self.push_reused(path, meta, (size, sha256, at), id)?;
            return Ok(true);
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0))
            .map_err(|e| Error::from_io("reading", Some(src.to_owned()), e))?;
        Ok(false)
    }

    /// (Incremental, zstd) Stores a changed file of at least the segment size
    /// whose parent entry holds data by segments: each the parent's segment
    /// unchanged, a patch against it, or whole, whichever is smallest.
    /// `false` (nothing read) if the file does not qualify.
    fn append_segmented(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        id: &FileIdentity,
        file: &mut fs::File,
        src: &Path,
    ) -> Result<bool> {
        let seg = self.segment_size;
        if self.compression.codec != cairn_manifest::Codec::Zstd
            || self.pages.is_none()
            || size < seg
        {
            return Ok(false);
        }
        let Some(parent) = self.parent.as_mut() else {
            return Ok(false);
        };
        if !parent.find(path)? {
            return Ok(false);
        }
        let Some(p) = parent
            .current()
            .filter(|p| p.kind == EntryKind::File && p.size > 0 && p.sha256.is_some())
            .cloned()
        else {
            return Ok(false);
        };
        if p.parts.is_some() && parent.segment_size() != Some(seg) {
            return Ok(false);
        }
        let level = self.compression.level;
        let dir = self.spill_dir.as_deref();
        let mut hasher = Hasher::new();
        let mut parts = Vec::new();
        let mut buf = Vec::new();
        let mut done = 0u64;
        let mut parent_failed = None;
        while done < size {
            let want = seg.min(size - done);
            buf.clear();
            let got = (&mut *file)
                .take(want)
                .read_to_end(&mut buf)
                .map_err(|e| Error::from_io("reading", Some(src.to_owned()), e))?;
            if (got as u64) < want {
                if buf.is_empty() {
                    break;
                }
                buf.resize(usize::try_from(want).unwrap_or(usize::MAX), 0);
            }
            hasher.update(&buf);
            self.progress.bytes(got as u64);
            if self.progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let base = match parent_failed {
                Some(_) => None,
                None => parent.segment(&p, done / seg, seg).unwrap_or_else(|e| {
                    parent_failed = Some(e);
                    None
                }),
            };
            let mut own = |frame: Vec<u8>| -> Result<Step> {
                Ok(Step::Blob {
                    data_in: None,
                    blob: self.blobs.push(dir, &frame)?,
                    len: frame.len() as u64,
                })
            };
            let steps = match base {
                Some((steps, bytes)) if bytes == buf => steps,
                Some((mut steps, bytes)) if steps.len() < cairn_manifest::v2::MAX_STEPS => {
                    let patch = crate::segments::compress(level, Some(&bytes), &buf)?;
                    // A patch much smaller than the data is kept without
                    // compressing the data on its own to compare.
                    let plain = (patch.len() as u64 > want / 8)
                        .then(|| crate::segments::compress(level, None, &buf))
                        .transpose()?
                        .filter(|plain| plain.len() <= patch.len());
                    match plain {
                        Some(plain) => vec![own(plain)?],
                        None => {
                            steps.push(own(patch)?);
                            steps
                        }
                    }
                }
                _ => vec![own(crate::segments::compress(level, None, &buf)?)?],
            };
            parts.push(steps);
            done += got as u64;
            if (got as u64) < want {
                break;
            }
        }
        if let Some(e) = parent_failed {
            self.warnings.push(Warning {
                path: path.clone(),
                message: format!(
                    "the parent's copy could not be read ({e}): its segments were stored whole"
                ),
            });
        }
        if done < size {
            // The file shrank: its last segments are zeros, as copy_data
            // stores them.
            while (parts.len() as u64) < size.div_ceil(seg) {
                let want = seg.min(size - parts.len() as u64 * seg);
                buf.clear();
                buf.resize(usize::try_from(want).unwrap_or(usize::MAX), 0);
                hasher.update(&buf);
                let frame = crate::segments::compress(level, None, &buf)?;
                let blob = self.blobs.push(dir, &frame)?;
                parts.push(vec![Step::Blob {
                    data_in: None,
                    blob,
                    len: frame.len() as u64,
                }]);
            }
            self.warnings.push(shrank(path, done, size));
        } else if grew(file).map_err(|e| Error::from_io("reading", Some(src.to_owned()), e))? {
            self.warnings.push(grew_past(path, size));
        }
        let sha256 = hasher.finalize();
        self.push(
            path,
            EntryKind::File,
            meta,
            None,
            Body::Elsewhere {
                size,
                sha256,
                at: Held::Parts(parts),
            },
            Some(*id),
        )?;
        Ok(true)
    }

    /// Appends a stream of exactly `size` bytes as a one-file component named
    /// `<component>/<file_name>`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if reading fails, [`Error::InvalidInput`] for a bad name.
    // The component's three fields plus the file's five: grouping them in a struct
    // would only move the same list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn append_reader(
        &mut self,
        name: &ComponentName,
        kind: ComponentKind,
        file_name: &[u8],
        meta: EntryMeta,
        size: u64,
        reader: &mut dyn Read,
        optional: bool,
    ) -> Result<()> {
        let path = component_path(name, file_name)?;
        self.begin_component(name, kind, optional)?;
        self.append_data(&path, meta, size, reader, None)
    }

    /// Appends a directory entry to its component (the first component of `path`,
    /// which must have been begun).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if the component of `path` was not begun, or the path is taken.
    pub fn append_directory(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        self.push(path, EntryKind::Dir, meta, None, Body::None, None)
    }

    /// Appends a symbolic link entry to its component.
    ///
    /// # Errors
    ///
    /// As [`ArchiveWriter::append_directory`].
    pub fn append_symlink(
        &mut self,
        path: &EntryPath,
        target: &cairn_manifest::LinkTarget,
        meta: EntryMeta,
    ) -> Result<()> {
        self.push(
            path,
            EntryKind::Symlink,
            meta,
            Some(target.clone()),
            Body::None,
            None,
        )
    }

    /// Appends a hard link to an earlier regular file of the same component.
    ///
    /// # Errors
    ///
    /// As [`ArchiveWriter::append_directory`], and if `target` is in another
    /// component. Whether `target` is an earlier regular file is checked by
    /// [`ArchiveWriter::finish`], which fails if it is not (checking here
    /// would mean remembering every path).
    pub fn append_hardlink(
        &mut self,
        path: &EntryPath,
        target: &EntryPath,
        meta: EntryMeta,
    ) -> Result<()> {
        if target.first() != path.first() {
            return Err(Error::invalid(format!(
                "hard link {path} must point to an earlier regular file of its component, not {target}"
            )));
        }
        let link = cairn_manifest::LinkTarget::parse(target.as_bytes())?;
        self.push(
            path,
            EntryKind::Hardlink,
            meta,
            Some(link),
            Body::None,
            None,
        )
    }

    /// Appends a regular file of `size` bytes read from `reader` to its
    /// component. A reader that ends early is padded with zeros and one that has
    /// more is cut; both are recorded as warnings in the manifest. `source` names
    /// the file in error messages.
    ///
    /// # Errors
    ///
    /// As [`ArchiveWriter::append_directory`], and [`Error::Io`] if reading fails.
    pub fn append_data(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        reader: &mut dyn Read,
        source: Option<&Path>,
    ) -> Result<()> {
        self.push(
            path,
            EntryKind::File,
            meta,
            None,
            Body::Read(reader, size, source),
            None,
        )
    }

    pub(crate) fn skip(&mut self, path: EntryPath, reason: SkipReason) {
        self.skipped.push(Skipped { path, reason });
    }

    fn push(
        &mut self,
        path: &EntryPath,
        kind: EntryKind,
        meta: EntryMeta,
        link: Option<cairn_manifest::LinkTarget>,
        body: Body<'_>,
        id: Option<FileIdentity>,
    ) -> Result<()> {
        self.push_entry(path, kind, meta, link, body, id)
            .map(|_| ())
    }

    /// Appends `size` bytes of `reader` as a regular file (as
    /// [`ArchiveWriter::append_data`]) and returns the SHA-256 of what was
    /// stored, for a caller that checks it against a digest it trusts.
    pub(crate) fn append_data_digest(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<Sha256Digest> {
        self.push_entry(
            path,
            EntryKind::File,
            meta,
            None,
            Body::Read(reader, size, None),
            None,
        )?
        .ok_or_else(|| Error::invalid("a file without a digest"))
    }

    /// Records what another archive of the same state found but did not
    /// archive, and its caveats (an assembled archive keeps its source's).
    pub(crate) fn carry_notes(&mut self, skipped: Vec<Skipped>, warnings: Vec<Warning>) {
        self.skipped.extend(skipped);
        self.warnings.extend(warnings);
    }

    fn push_entry(
        &mut self,
        path: &EntryPath,
        kind: EntryKind,
        meta: EntryMeta,
        link: Option<cairn_manifest::LinkTarget>,
        body: Body<'_>,
        id: Option<FileIdentity>,
    ) -> Result<Option<Sha256Digest>> {
        if self.progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let index = std::str::from_utf8(path.first())
            .ok()
            .and_then(|n| ComponentName::parse(n).ok())
            .and_then(|n| self.component_index.get(&n).copied())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "entry {path} is not inside a component begun with begin_component"
                ))
            })?;
        if path.depth() == 1 && kind != EntryKind::Dir {
            return Err(Error::invalid(format!(
                "component root {path} must be a directory"
            )));
        }
        self.check_order(path, kind)?;
        let body = match self.offer(index, path, kind, meta, &link, body, id)? {
            Offered::Taken(sha256) => return Ok(sha256),
            Offered::Back(body) => body,
        };
        self.store_entry(index, path, kind, meta, link, body, id)
    }

    /// Stores an entry whose order was checked: its tar entry (unless its
    /// data is elsewhere) and its page entry.
    // The entry's fields, as `push_entry` has them.
    #[allow(clippy::too_many_arguments)]
    fn store_entry(
        &mut self,
        index: usize,
        path: &EntryPath,
        kind: EntryKind,
        meta: EntryMeta,
        link: Option<cairn_manifest::LinkTarget>,
        body: Body<'_>,
        id: Option<FileIdentity>,
    ) -> Result<Option<Sha256Digest>> {
        if kind == EntryKind::Hardlink
            && let Some(target) = &link
        {
            self.links.add_link(target.as_bytes(), self.count);
        }
        let size = match &body {
            Body::None => 0,
            Body::Read(_, size, _) | Body::Elsewhere { size, .. } => *size,
        };
        let (sha256, at) = if let Body::Elsewhere { sha256, at, .. } = body {
            (Some(sha256), Err(at))
        } else {
            let header = encode_header(&HeaderSpec {
                path: path.as_bytes(),
                kind,
                size,
                mode: meta.mode & 0o7777,
                mtime: meta.mtime,
                uid: meta.uid,
                gid: meta.gid,
                link: link.as_ref().map(cairn_manifest::LinkTarget::as_bytes),
            });
            self.fw.begin_entry(header.len() as u64 + padded(size))?;
            let at = self.fw.locate();
            self.fw.write_raw(&header)?;
            let sha256 = match body {
                Body::Read(reader, size, source) => {
                    Some(self.copy_data(path, reader, size, source)?)
                }
                _ => None,
            };
            (sha256, Ok(at))
        };
        self.account(index, path, kind, size);
        let entry = Entry {
            path: path.clone(),
            kind,
            size,
            mode: meta.mode & 0o7777,
            mtime: meta.mtime,
            uid: meta.uid,
            gid: meta.gid,
            sha256,
            link,
            frame: 0,
            pos: at.as_ref().map_or(0, |at| at.pos),
            stored_in: None,
        };
        let settled = id.filter(|id| self.settled(id));
        match (&mut self.pages, at) {
            (Some(pages), at) => {
                let mut pe = match at {
                    Ok(at) => PageEntry::from_entry(
                        entry,
                        u32::try_from(at.frame)
                            .map_err(|_| Error::invalid("more than 2^32 frames"))?,
                    ),
                    Err(Held::At(r)) => PageEntry {
                        frame: r.frame,
                        pos: r.pos,
                        data_in: Some(r.data_in),
                        ..PageEntry::from_entry(entry, 0)
                    },
                    Err(Held::Parts(parts)) => {
                        self.segmented = true;
                        PageEntry {
                            parts: Some(parts),
                            ..PageEntry::from_entry(entry, 0)
                        }
                    }
                };
                if let Some(id) = settled {
                    pe.ctime = Some(id.ctime);
                    pe.ino = Some(id.ino);
                }
                let name = &self.components[index].name;
                pages.push(name, &pe)?;
            }
            (None, Ok(at)) => {
                self.entries.push(entry);
                self.frame_of.push(at.frame);
            }
            (None, Err(_)) => {
                return Err(Error::invalid("only format 2 archives can be incremental"));
            }
        }
        self.progress.entry(path);
        Ok(sha256)
    }

    /// Counts an entry in its component and in the archive.
    fn account(&mut self, index: usize, path: &EntryPath, kind: EntryKind, size: u64) {
        let component = &mut self.components[index];
        component.entries += 1;
        component.bytes += size;
        if path.depth() > 1 {
            let shape = &mut self.shapes[index];
            *shape = (
                shape.0 + 1,
                shape.0 == 0 && path.depth() == 2 && kind == EntryKind::File,
            );
        }
        self.count += 1;
    }

    /// Offers an entry for reuse of the parent's page it is in: between two
    /// pages, an entry equal to the first of a parent's page starts holding
    /// entries back; while each next one equals the page's next entry they
    /// are held, and when the page's last one is, the page is reused whole
    /// (nothing of it is written: its folders and links have no tar entry
    /// here either). Any other entry writes the held ones as usual first.
    // The entry's fields, as `push_entry` has them.
    #[allow(clippy::too_many_arguments)]
    fn offer<'b>(
        &mut self,
        index: usize,
        path: &EntryPath,
        kind: EntryKind,
        meta: EntryMeta,
        link: &Option<cairn_manifest::LinkTarget>,
        body: Body<'b>,
        id: Option<FileIdentity>,
    ) -> Result<Offered<'b>> {
        if self.pages.is_none() || self.parent.is_none() {
            return Ok(Offered::Back(body));
        }
        let kept = match &body {
            Body::None => Some(Kept::None),
            Body::Read(_, 0, _) => Some(Kept::Empty),
            Body::Elsewhere { size, sha256, at } => Some(Kept::Elsewhere {
                size: *size,
                sha256: *sha256,
                at: at.clone(),
            }),
            Body::Read(..) => None,
        };
        let seg = self.segment_size;
        let Some(parent) = self.parent.as_mut() else {
            return Ok(Offered::Back(body));
        };
        let found = parent.find(path)?;
        let now = parent.cursor_page();
        let place = match &kept {
            Some(kept) if found => parent.place().filter(|_| {
                parent.current().is_some_and(|p| {
                    same_entry(
                        p,
                        kind,
                        meta,
                        link,
                        kept,
                        id,
                        // Only segments need locating: a reference in one
                        // piece was made from this very entry.
                        match kept {
                            Kept::Elsewhere {
                                at: Held::Parts(_), ..
                            } => parent.locate(p, seg),
                            _ => None,
                        }
                        .as_ref(),
                    )
                })
            }),
            _ => None,
        };
        let held = |kept| HeldEntry {
            index,
            path: path.clone(),
            kind,
            meta,
            link: link.clone(),
            kept,
            id,
        };
        // A candidate goes on with the page's next entry, or ends.
        if let Some(c) = self.candidate.as_mut() {
            if let (Some((page, at, len)), Some(kept)) = (place, kept.as_ref())
                && c.page == page
                && c.next == at
            {
                let entry = held(kept.clone());
                let sha256 = entry.sha256();
                c.held.push(entry);
                c.next += 1;
                if c.next == len {
                    self.commit_candidate()?;
                }
                return Ok(Offered::Taken(sha256));
            }
            self.flush_candidate()?;
        }
        // Pages follow the parent's: an entry in a later page of the parent
        // starts a page here too, so that the parent's next unchanged page
        // can be reused whole.
        if now.is_some() && now != self.parent_page {
            if let Some(pages) = self.pages.as_mut() {
                pages.close()?;
            }
            self.parent_page = now;
        }
        let between = self.pages.as_ref().is_some_and(PageSpill::is_between_pages);
        match (place, kept) {
            (Some((page, 0, len)), Some(kept)) if between => {
                let entry = held(kept);
                let sha256 = entry.sha256();
                self.candidate = Some(Candidate {
                    page,
                    next: 1,
                    held: vec![entry],
                });
                if len == 1 {
                    self.commit_candidate()?;
                }
                Ok(Offered::Taken(sha256))
            }
            _ => Ok(Offered::Back(body)),
        }
    }

    /// Writes the entries held back for a page that will not be reused, as
    /// if they had not been held.
    fn flush_candidate(&mut self) -> Result<()> {
        let Some(c) = self.candidate.take() else {
            return Ok(());
        };
        for e in c.held {
            let body = match e.kept {
                Kept::None => Body::None,
                Kept::Empty => Body::Read(&mut io::empty(), 0, None),
                Kept::Elsewhere { size, sha256, at } => Body::Elsewhere { size, sha256, at },
            };
            self.store_entry(e.index, &e.path, e.kind, e.meta, e.link, body, e.id)?;
        }
        Ok(())
    }

    /// Reuses the parent's page whose every entry was held: the entries are
    /// counted, the page is named by the root as the parent's.
    fn commit_candidate(&mut self) -> Result<()> {
        let (Some(c), Some(parent)) = (self.candidate.take(), self.parent.as_ref()) else {
            return Ok(());
        };
        let Some(r) = parent.page_for_child(c.page) else {
            return Err(Error::invalid(
                "a parent's page that its root does not name",
            ));
        };
        let entries = parent.page_entries().to_vec();
        for e in &c.held {
            if e.kind == EntryKind::Hardlink
                && let Some(target) = &e.link
            {
                self.links.add_link(target.as_bytes(), self.count);
            }
            if matches!(
                e.kept,
                Kept::Elsewhere {
                    at: Held::Parts(_),
                    ..
                }
            ) {
                self.segmented = true;
            }
            let size = match e.kept {
                Kept::Elsewhere { size, .. } => size,
                _ => 0,
            };
            self.account(e.index, &e.path, e.kind, size);
            self.progress.entry(&e.path);
        }
        if let Some(pages) = self.pages.as_mut() {
            pages.push_reused(r, &entries)?;
        }
        Ok(())
    }

    /// Whether a file's identity can tell the next backup that it did not
    /// change: its status changed at least [`SETTLED`] before this backup
    /// began. A file changed within the clock's granularity of being read
    /// could change again without its times moving (git's "racy clean"
    /// files), so the next backup reads it again.
    fn settled(&self, id: &FileIdentity) -> bool {
        let began = timestamp_mtime(self.meta.created_at);
        let limit = Mtime::new(began.secs().saturating_sub(SETTLED_SECS), began.nanos());
        id.ctime < limit
    }

    /// Refuses a duplicate or an entry below a file or link. Entries arrive in
    /// canonical order from a walk; the first that does not switches the
    /// check to one that remembers every path, fed the entries so far.
    fn check_order(&mut self, path: &EntryPath, kind: EntryKind) -> Result<()> {
        let pages = &mut self.pages;
        let entries = &self.entries;
        let verdict = check_order(&mut self.order, path.as_bytes(), kind, |any| {
            match pages {
                Some(pages) => {
                    pages.close()?;
                    for spilled in pages.pages().to_vec() {
                        for e in pages.read_page(&spilled)?.entries {
                            replay_one(any, e.path.as_bytes(), e.kind)?;
                        }
                    }
                }
                None => {
                    for e in entries {
                        replay_one(any, e.path.as_bytes(), e.kind)?;
                    }
                }
            }
            Ok(())
        })?;
        match verdict {
            Ok(()) => Ok(()),
            Err(OrderError::BelowLeaf) => Err(Error::Unsafe {
                path: path.to_string(),
                reason: "lies below a file or a link of the archive",
            }),
            Err(OrderError::HoldsEntries) => Err(Error::Unsafe {
                path: path.to_string(),
                reason: "is not a folder, and earlier entries of the archive lie below it",
            }),
            Err(_) => Err(Error::invalid(format!(
                "entry {path} is already in the archive"
            ))),
        }
    }

    fn copy_data(
        &mut self,
        path: &EntryPath,
        reader: &mut dyn Read,
        size: u64,
        source: Option<&Path>,
    ) -> Result<Sha256Digest> {
        let mut hasher = Hasher::new();
        let mut done = 0u64;
        let chunk = self.compression.frame_size;
        while done < size {
            let want = (size - done).min(chunk);
            let got = self
                .fw
                .fill_from(reader, want, &mut hasher)?
                .map_err(|e| Error::from_io("reading", source.map(Path::to_owned), e))?;
            done += got;
            self.progress.bytes(got);
            if self.progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if got < want {
                break;
            }
        }
        if done < size {
            // The source shrank: keep the stream well-formed and say so.
            let zeros = [0u8; 8 * 1024];
            let mut left = size - done;
            while left > 0 {
                let n = usize::try_from(left).map_or(zeros.len(), |l| l.min(zeros.len()));
                hasher.update(&zeros[..n]);
                self.fw.write_raw(&zeros[..n])?;
                left -= n as u64;
            }
            self.warnings.push(shrank(path, done, size));
        } else if grew(reader)
            .map_err(|e| Error::from_io("reading", source.map(Path::to_owned), e))?
        {
            self.warnings.push(grew_past(path, size));
        }
        let pad = padded(size) - size;
        if pad > 0 {
            self.fw.write_raw(&[0u8; BLOCK as usize][..pad as usize])?;
        }
        Ok(hasher.finalize())
    }

    /// Writes the signed manifest (format 1) or the pages and the signed root
    /// (format 2) and the footer, flushes, and returns the output with the
    /// archive's size, digest, manifest and seal.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if writing fails; [`Error::InvalidInput`] if a hard link
    /// does not point to an earlier regular file of its component, or the
    /// archive would be inconsistent otherwise.
    pub fn finish(mut self, key: &SigningKey) -> Result<Finished<W>> {
        self.flush_candidate()?;
        let frames = self.fw.drain()?.to_vec();
        let fw = &mut self.fw;
        self.blobs.copy_to(|piece| fw.write_verbatim(piece))?;
        let data_end = self.fw.written();
        let (manifest, root_offset) = match self.pages.take() {
            None => (AnyManifest::V1(self.sign_v1(frames, key)?), 0),
            Some(pages) => {
                let (root, root_offset) = self.write_pages(pages, frames, key)?;
                (AnyManifest::V2(root), root_offset)
            }
        };
        let (json, sig) = match &manifest {
            AnyManifest::V1(m) => ((MANIFEST_PATH, m.bytes()), (SIGNATURE_PATH, m.signature())),
            AnyManifest::V2(r) => ((ROOT_PATH, r.bytes()), (ROOT_SIGNATURE_PATH, r.signature())),
        };
        // The manifest (or root): frames of its own, then the end-of-archive
        // marker.
        self.fw.cut()?;
        let mtime = timestamp_mtime(self.meta.created_at);
        for (name, bytes) in [json, (sig.0, &sig.1.as_bytes()[..])] {
            self.fw.write_raw(&small_file(name, bytes, mtime))?;
        }
        self.fw.write_raw(&[0u8; 2 * BLOCK as usize])?;
        self.fw.drain()?;
        let footer = Footer {
            manifest_offset: data_end,
            manifest_length: self.fw.written() - data_end,
            root_offset,
        };
        self.fw
            .write_verbatim(&footer.encode(self.compression.codec))?;
        let (inner, sha256, size) = self.fw.finish()?;
        let seal = Seal {
            backup_id: self.meta.backup_id.to_string(),
            archive_size: size,
            archive_sha256: sha256,
            manifest_sha256: manifest.sha256(),
            manifest_offset: footer.manifest_offset,
            manifest_length: footer.manifest_length,
            signer: key.key_id(),
            encryption: None,
        }
        .sign(key)?;
        Ok(Finished {
            inner,
            size,
            sha256,
            manifest,
            seal,
            reused_files: self.reused.0,
            reused_bytes: self.reused.1,
        })
    }

    /// Format 1: the manifest listing every entry, signed.
    fn sign_v1(&mut self, frames: Vec<Frame>, key: &SigningKey) -> Result<SignedManifest> {
        let mut entries = std::mem::take(&mut self.entries);
        for e in &entries {
            self.links.entry(e.path.as_bytes(), e.kind);
        }
        self.take_links()?;
        for (e, &k) in entries.iter_mut().zip(&self.frame_of) {
            e.frame = frames
                .get(k)
                .map(|f| f.offset)
                .ok_or_else(|| Error::invalid("entry in a frame that was never written"))?;
        }
        // Everything but the entries is what a format 2 root says.
        let manifest = Manifest {
            version: FormatVersion::CURRENT,
            ..self.root(key, frames, Vec::new()).into_listing(entries)
        };
        Ok(SignedManifest::sign(manifest, key)?)
    }

    /// Format 2: copies the pages from the spill into frames of their own
    /// (each page starts and ends a frame), checking hard links on the way,
    /// and signs the root naming them. Returns it with the offset of the
    /// frame the root will start.
    fn write_pages(
        &mut self,
        mut pages: PageSpill,
        frames: Vec<Frame>,
        key: &SigningKey,
    ) -> Result<(SignedRoot, u64)> {
        pages.close()?;
        let spilled = pages.pages().to_vec();
        let check_links = !self.links.is_empty();
        let mut bounds = Vec::with_capacity(spilled.len());
        for p in &spilled {
            let entry = pages.read_entry(p)?;
            if check_links {
                let start = p.header_len as usize;
                for e in parse_page(&entry[start..start + p.page_len as usize])?.entries {
                    self.links.entry(e.path.as_bytes(), e.kind);
                }
            }
            if p.reused.is_some() {
                // A parent's page: named, not written.
                bounds.push(0..0);
                continue;
            }
            let first = self.fw.frames_submitted();
            self.fw.write_raw(&entry)?;
            self.fw.cut()?;
            bounds.push(first..self.fw.frames_submitted());
        }
        self.take_links()?;
        let all = self.fw.drain()?;
        let mut refs = Vec::with_capacity(spilled.len());
        for (p, range) in spilled.into_iter().zip(bounds) {
            if let Some(r) = p.reused {
                refs.push(r);
                continue;
            }
            let held = all
                .get(range)
                .filter(|f| !f.is_empty())
                .ok_or_else(|| Error::invalid("a page in a frame that was never written"))?;
            refs.push(PageRef {
                component: p.component,
                entries: p.entries,
                sha256: p.sha256,
                offset: held[0].offset,
                size: held.iter().map(|f| f.size).sum(),
                data_in: None,
            });
        }
        let root_offset = self.fw.written();
        let root = self.root(key, frames, refs);
        Ok((SignedRoot::sign(root, key)?, root_offset))
    }

    /// The format 2 root of what was written, naming `pages`.
    fn root(&mut self, key: &SigningKey, frames: Vec<Frame>, pages: Vec<PageRef>) -> Root {
        let reuses_pages = pages.iter().any(|p| !p.is_own());
        let parents = match &self.parent {
            Some(p) if self.reused.0 > 0 || self.segmented || reuses_pages => p.chain(),
            _ => Vec::new(),
        };
        let mut features = Vec::new();
        if !parents.is_empty() {
            features.push(cairn_manifest::v2::FEATURE_PARENTS.to_owned());
        }
        if self.segmented {
            features.push(cairn_manifest::v2::FEATURE_SEGMENTS.to_owned());
        }
        if reuses_pages {
            features.push(cairn_manifest::v2::FEATURE_PARENT_PAGES.to_owned());
        }
        Root {
            format: FORMAT_TAG.to_owned(),
            version: cairn_manifest::v2::VERSION,
            backup_id: self.meta.backup_id,
            target: self.meta.target.clone(),
            kind: self.meta.kind,
            label: self.meta.label.clone(),
            description: self.meta.description.clone(),
            created_at: self.meta.created_at,
            duration_ms: self.duration_ms(),
            origin: self.meta.origin.clone(),
            compression: self.compression,
            signer: key.key_id(),
            components: std::mem::take(&mut self.components),
            canonical_order: self.order.is_canonical(),
            pages,
            frames,
            skipped: std::mem::take(&mut self.skipped),
            warnings: std::mem::take(&mut self.warnings),
            source: self.source.take(),
            features,
            parents,
            segment_size: self.segmented.then_some(self.segment_size),
            blob_bytes: self.blobs.len(),
        }
    }

    /// Ends the hard-link check (its second pass was fed every entry).
    fn take_links(&mut self) -> Result<()> {
        std::mem::take(&mut self.links)
            .finish()
            .map_err(|e| Error::invalid(format!("{e}")))
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// How long before a backup begins a file's status must have last changed
/// for its identity to be recorded (see `ArchiveWriter::settled`).
const SETTLED_SECS: i64 = 2;

/// Whether [`ArchiveWriter::offer`] took an entry (holding it back, or as
/// part of a reused page; its digest) or gives it back to be stored.
enum Offered<'a> {
    Taken(Option<Sha256Digest>),
    Back(Body<'a>),
}

/// What a held-back entry holds: nothing to read.
#[derive(Clone)]
enum Kept {
    None,
    Empty,
    Elsewhere {
        size: u64,
        sha256: Sha256Digest,
        at: Held,
    },
}

/// An entry held back while the parent's page it is in may be reused.
struct HeldEntry {
    index: usize,
    path: EntryPath,
    kind: EntryKind,
    meta: EntryMeta,
    link: Option<cairn_manifest::LinkTarget>,
    kept: Kept,
    id: Option<FileIdentity>,
}

impl HeldEntry {
    /// The digest of its data, as storing it returns.
    fn sha256(&self) -> Option<Sha256Digest> {
        match &self.kept {
            Kept::None => None,
            Kept::Empty => Some(Hasher::new().finalize()),
            Kept::Elsewhere { sha256, .. } => Some(*sha256),
        }
    }
}

/// Entries held back from page number `page` of the parent, the next one
/// expected at `next`.
struct Candidate {
    page: usize,
    next: usize,
    held: Vec<HeldEntry>,
}

/// Whether an entry about to be written equals the parent's entry `p` at
/// its path, so that the parent's page may stand for it: the same type,
/// metadata and link, and for a file the same data, found where the
/// parent's page says, with the identity the parent recorded. A reference
/// in one piece was made from `p` itself (by `Parent::locate`, when the
/// file was found unchanged or with the same content), so only segments
/// are compared with `located`, the parent's recipes as a child names them
/// (a changed file's segments differ from them).
fn same_entry(
    p: &PageEntry,
    kind: EntryKind,
    meta: EntryMeta,
    link: &Option<cairn_manifest::LinkTarget>,
    kept: &Kept,
    id: Option<FileIdentity>,
    located: Option<&Held>,
) -> bool {
    let identity = || id.is_some_and(|id| p.ctime == Some(id.ctime) && p.ino == Some(id.ino));
    p.kind == kind
        && p.mode == meta.mode & 0o7777
        && p.mtime == meta.mtime
        && p.uid == meta.uid
        && p.gid == meta.gid
        && p.link == *link
        && match kept {
            Kept::None => kind != EntryKind::File,
            Kept::Empty => kind == EntryKind::File && p.size == 0 && identity(),
            Kept::Elsewhere { size, sha256, at } => {
                kind == EntryKind::File
                    && p.size == *size
                    && p.sha256.is_some_and(|d| d.ct_eq(sha256))
                    && match at {
                        Held::At(_) => true,
                        Held::Parts(_) => located == Some(at),
                    }
                    && identity()
            }
        }
}

/// What an entry holds.
enum Body<'a> {
    /// Nothing: a folder or a link.
    None,
    /// `size` bytes from a reader (`source` names it in errors).
    Read(&'a mut dyn Read, u64, Option<&'a Path>),
    /// Data the parent's chain holds, or segments rebuilt from it and this
    /// archive's blobs.
    Elsewhere {
        size: u64,
        sha256: Sha256Digest,
        at: Held,
    },
}

/// The warning for a file that held only `done` of its `size` bytes when read.
fn shrank(path: &EntryPath, done: u64, size: u64) -> Warning {
    Warning {
        path: path.clone(),
        message: format!(
            "changed while being read: only {done} of {size} bytes could be read; the rest was stored as zeros"
        ),
    }
}

/// The warning for a file that grew past its `size` while read.
fn grew_past(path: &EntryPath, size: u64) -> Warning {
    Warning {
        path: path.clone(),
        message: format!(
            "changed while being read: it grew past {size} bytes; the first {size} were stored"
        ),
    }
}

/// Whether `reader` has a byte more.
fn grew(reader: &mut dyn Read) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The tar entry of a small file of the manifest region.
fn small_file(name: &str, bytes: &[u8], mtime: Mtime) -> Vec<u8> {
    let mut out = encode_header(&HeaderSpec {
        path: name.as_bytes(),
        kind: EntryKind::File,
        size: bytes.len() as u64,
        mode: 0o644,
        mtime,
        uid: 0,
        gid: 0,
        link: None,
    });
    out.extend_from_slice(bytes);
    out.resize(
        out.len() + (padded(bytes.len() as u64) - bytes.len() as u64) as usize,
        0,
    );
    out
}

/// `<component>/<name>` as an entry path.
fn component_path(component: &ComponentName, name: &[u8]) -> Result<EntryPath> {
    let base = EntryPath::parse(component.as_str().as_bytes())?;
    base.join(name)
        .map_err(|e| Error::invalid(format!("file name not usable in an archive: {e}")))
}

#[cfg(unix)]
pub(crate) fn os_bytes(s: &std::ffi::OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes()
}

pub(crate) fn timestamp_mtime(t: jiff::Timestamp) -> Mtime {
    let secs = t.as_second();
    let nanos = t.subsec_nanosecond();
    if nanos >= 0 {
        Mtime::new(secs, nanos.unsigned_abs())
    } else {
        Mtime::new(secs - 1, (1_000_000_000 + nanos).unsigned_abs())
    }
}
