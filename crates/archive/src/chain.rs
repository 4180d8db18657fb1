//! Reading an incremental archive: the data its entries find in parents.
//!
//! An entry whose data is in a parent names the parent (by its index in the
//! root's parent list) and the position of the data's first byte among that
//! parent's frames. Reading it never walks the chain: the writer resolved the
//! reference to the archive that holds the bytes. What is read is checked
//! against the **child's** signed digest, whichever archive holds it.

use std::io::{BufRead, Read, Write};
use std::ops::Range;

use std::collections::HashMap;

use cairn_integrity::{Hasher, Sha256Digest};
use cairn_manifest::v2::ParentRef;
use cairn_manifest::{BackupId, EntryKind, EntryPath, Frame, LinkTarget, PageEntry, Root};

use crate::error::{Error, Result};
use crate::seek::{RangeRead, SeekableArchive, frame_holding};
use crate::tar::{TarReader, padded};
use crate::unpack::Extractor;
use crate::verify::expected_header;
use crate::writer::{ArchiveWriter, EntryMeta};

/// Where reused data goes.
pub(crate) enum Sink<'a> {
    /// Checked only.
    Check,
    /// Unpacked.
    Extract(&'a mut Extractor),
    /// Streamed (one file).
    Write(&'a mut dyn Write),
}

impl<S: RangeRead> SeekableArchive<S> {
    /// The backups whose data this archive's entries partly refer to, nearest
    /// first (empty for a full backup). Reading those entries needs them
    /// attached with [`SeekableArchive::attach_parents`].
    pub fn parents_named(&self) -> &[ParentRef] {
        self.manifest
            .v2()
            .map_or(&[], |r| r.manifest().parents.as_slice())
    }

    /// Attaches the parents this incremental archive names, in its order, each
    /// opened through its own seal (or footer) with the trusted key.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] naming the first parent that is not the one the
    /// root names (another backup, or one whose root has another digest:
    /// tampered with or replaced); [`Error::InvalidInput`] for a count that
    /// differs.
    pub fn attach_parents(&mut self, parents: Vec<SeekableArchive<S>>) -> Result<()> {
        let named = self.parents_named();
        if parents.len() != named.len() {
            return Err(Error::invalid(format!(
                "backup {} names {} parents, {} were given",
                self.manifest.backup_id(),
                named.len(),
                parents.len()
            )));
        }
        for (want, got) in named.iter().zip(&parents) {
            let got_id = got.manifest.backup_id();
            if want.backup_id != got_id || !want.root_sha256.ct_eq(&got.manifest.sha256()) {
                return Err(Error::verification(format!(
                    "parent {} is not the backup {} was made from (its root differs)",
                    want.backup_id,
                    self.manifest.backup_id()
                )));
            }
        }
        self.parents = parents;
        Ok(())
    }

    /// The attached parent holding the data of entries with `data_in == k`.
    pub(crate) fn holder(&mut self, k: u32) -> Result<&mut SeekableArchive<S>> {
        let id = self.manifest.backup_id();
        let named = self.parents_named().get(k as usize).map(|p| p.backup_id);
        let Some(named) = named else {
            return Err(Error::verification(format!(
                "an entry of {id} refers to parent {k}, which it does not name"
            )));
        };
        self.parents.get_mut(k as usize).ok_or_else(|| {
            Error::invalid(format!(
                "backup {id} is incremental: its parent {named} is needed to read it"
            ))
        })
    }
}

/// Copies entry `e`'s `size` bytes from `dec` into `sink`, checking them
/// against its digest.
pub(crate) fn copy_checked<R: BufRead>(
    dec: &mut R,
    e: &PageEntry,
    holder: &BackupId,
    sink: &mut Sink<'_>,
    progress: &dyn crate::options::Progress,
) -> Result<()> {
    if let Sink::Extract(x) = sink {
        x.create_file(&e.path)?;
    }
    let mut hasher = Hasher::new();
    let mut left = e.size;
    while left > 0 {
        let buf = dec
            .fill_buf()
            .map_err(|err| Error::from_io("reading archive", None, err))?;
        if buf.is_empty() {
            return Err(Error::corrupt(format!(
                "{holder} ends inside the data of {}",
                e.path
            )));
        }
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        for piece in buf[..n].chunks(64 * 1024) {
            hasher.update(piece);
            match sink {
                Sink::Check => {}
                Sink::Extract(x) => x.write_chunk(piece)?,
                Sink::Write(w) => w.write_all(piece).map_err(Error::io("writing", None))?,
            }
        }
        dec.consume(n);
        left -= n as u64;
        progress.bytes(n as u64);
    }
    let digest = hasher.finalize();
    if !e.sha256.is_some_and(|want| want.ct_eq(&digest)) {
        return Err(Error::verification(format!(
            "{}: its data in {holder} does not match its SHA-256",
            e.path
        )));
    }
    if let Sink::Extract(x) = sink {
        x.finish_file(&e.path, meta_of(e))?;
    }
    progress.entry(&e.path);
    Ok(())
}

/// What a window read does with the entries it reads: check them, unpack
/// them, or write them into a new archive of the whole state.
pub(crate) enum To<'a> {
    Check,
    Extract(&'a mut Extractor),
    Assemble(&'a mut dyn Assemble),
    /// One file's data, streamed (entries whose data is in a parent only).
    Write(&'a mut dyn Write),
}

impl To<'_> {
    pub(crate) fn reborrow(&mut self) -> To<'_> {
        match self {
            To::Check => To::Check,
            To::Extract(x) => To::Extract(x),
            To::Assemble(a) => To::Assemble(&mut **a),
            To::Write(w) => To::Write(&mut **w),
        }
    }
}

/// Where an assembled archive's entries go: an [`ArchiveWriter`] whose
/// components were begun.
pub(crate) trait Assemble {
    fn dir(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()>;
    fn symlink(&mut self, path: &EntryPath, target: &LinkTarget, meta: EntryMeta) -> Result<()>;
    fn hardlink(&mut self, path: &EntryPath, target: &EntryPath, meta: EntryMeta) -> Result<()>;
    /// Stores `size` bytes of `r` and returns their SHA-256.
    fn file(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        r: &mut dyn Read,
    ) -> Result<Sha256Digest>;
}

impl<W: Write> Assemble for ArchiveWriter<W> {
    fn dir(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        self.append_directory(path, meta)
    }

    fn symlink(&mut self, path: &EntryPath, target: &LinkTarget, meta: EntryMeta) -> Result<()> {
        self.append_symlink(path, target, meta)
    }

    fn hardlink(&mut self, path: &EntryPath, target: &EntryPath, meta: EntryMeta) -> Result<()> {
        self.append_hardlink(path, target, meta)
    }

    fn file(
        &mut self,
        path: &EntryPath,
        meta: EntryMeta,
        size: u64,
        r: &mut dyn Read,
    ) -> Result<Sha256Digest> {
        self.append_data_digest(path, meta, size, r)
    }
}

/// The data of the current entry of a tar stream, as a `Read`.
struct TarData<'a, R: BufRead>(&'a mut TarReader<R>);

impl<R: BufRead> Read for TarData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let chunk = self.0.data().map_err(std::io::Error::other)?;
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.0.consume(n);
        Ok(n)
    }
}

/// Writes the next entry of `tar`, which must be `want` at `want_raw`, into
/// `a`, checking its header and its data's digest.
fn assemble_own<R: BufRead>(
    tar: &mut TarReader<R>,
    want: &cairn_manifest::Entry,
    want_raw: u64,
    a: &mut dyn Assemble,
) -> Result<()> {
    let raw = tar
        .next_entry()?
        .ok_or_else(|| Error::corrupt(format!("the archive ends before {}", want.path)))?;
    let seen = crate::verify::observe(&raw, tar.header_bytes())?;
    crate::verify::check_header(want, want_raw, &seen)?;
    let meta = seen.meta();
    let link = || {
        want.link
            .clone()
            .ok_or_else(|| Error::verification(format!("link {} has no target", want.path)))
    };
    match want.kind {
        EntryKind::File => {
            let d = a.file(&want.path, meta, want.size, &mut TarData(tar))?;
            crate::verify::check_digest(want, &d)
        }
        EntryKind::Dir => a.dir(&want.path, meta),
        EntryKind::Symlink => a.symlink(&want.path, &link()?, meta),
        EntryKind::Hardlink => a.hardlink(&want.path, &EntryPath::parse(link()?.as_bytes())?, meta),
    }
}

/// Whether a window read reads the entries whose data is in this archive
/// (`Read`) or only those whose data is in parents (`Skip`: the stream reader
/// has checked the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    Read,
    Skip,
}

/// What a window read does for an entry.
enum Span {
    /// Nothing: it is not read.
    Skip,
    /// It has no data here or in a parent (a folder, a link or an empty
    /// file of a parent's page): it is made from its metadata.
    Meta,
    /// Its bytes: in this archive (`None`) or parent `k`'s, the raw range.
    At(Option<u32>, Range<u64>),
}

/// How far ahead an open stream skips rather than being opened again at the
/// next entry's frame: decompressing this much costs about what a new range
/// request and a frame's start do.
const GAP: u64 = 4 << 20;

impl<S: RangeRead> SeekableArchive<S> {
    /// Reads a page's entries in order, each from the archive that holds its
    /// data, checking each against the signed manifest (and unpacking it when
    /// `x` is given). The page is read in windows: within one, each archive
    /// (this one and every parent its entries name) is one forward-only
    /// stream, opened once; a window ends where an archive would have to go
    /// back or skip more than [`GAP`].
    pub(crate) fn read_page_entries(
        &mut self,
        root: &Root,
        page: &[PageEntry],
        mut to: To<'_>,
        own: Own,
    ) -> Result<()> {
        // A file stored by segments is read on its own, segment by segment.
        let mut start = 0;
        while start < page.len() {
            if page[start].parts.is_some() {
                self.read_segmented(root, &page[start], to.reborrow())?;
                start += 1;
                continue;
            }
            let end = page[start..]
                .iter()
                .position(|e| e.parts.is_some())
                .map_or(page.len(), |n| start + n);
            self.read_windows(root, &page[start..end], to.reborrow(), own)?;
            start = end;
        }
        Ok(())
    }

    /// Reads a run of entries none of which is stored by segments (see
    /// [`SeekableArchive::read_page_entries`]).
    fn read_windows(
        &mut self,
        root: &Root,
        page: &[PageEntry],
        mut to: To<'_>,
        own: Own,
    ) -> Result<()> {
        let spans = self.spans(root, page, own)?;
        let mut start = 0;
        while start < page.len() {
            let mut last: HashMap<Option<u32>, u64> = HashMap::new();
            let mut end = start;
            while end < page.len() {
                if let Span::At(key @ Some(_), span) = &spans[end] {
                    match last.get(key) {
                        Some(&prev) if span.start < prev || span.start - prev > GAP => break,
                        _ => {
                            last.insert(*key, span.end);
                        }
                    }
                }
                end += 1;
            }
            self.read_window(root, &page[start..end], &spans[start..end], to.reborrow())?;
            start = end;
        }
        Ok(())
    }

    /// Where each entry's bytes are: this archive's raw stream (`None`) or
    /// parent `k`'s (`Some(k)`), from the header (here) or the first data
    /// byte (in a parent). `None` for an entry not to read.
    fn spans(&mut self, root: &Root, page: &[PageEntry], own: Own) -> Result<Vec<Span>> {
        let mut out = Vec::with_capacity(page.len());
        for e in page {
            let Some(k) = e.data_in else {
                if own == Own::Skip {
                    out.push(Span::Skip);
                    continue;
                }
                // Entries here are contiguous in the stream: where each
                // starts is enough; the window's end is its last entry's.
                let raw = root.raw_offset(e).ok_or_else(|| {
                    Error::verification(format!("entry {} points outside its frame", e.path))
                })?;
                out.push(Span::At(None, raw..raw));
                continue;
            };
            if e.kind != EntryKind::File || e.size == 0 {
                out.push(Span::Meta);
                continue;
            }
            let holder = self.holder(k)?;
            let id = holder.manifest.backup_id();
            let proot = holder.root()?;
            let start = proot
                .frames
                .get(e.frame as usize)
                .filter(|f| e.pos < f.raw_size)
                .map(|f| f.raw_offset + e.pos);
            match start.and_then(|s| Some(s..s.checked_add(e.size)?)) {
                Some(span) if span.end <= proot.data_end() => out.push(Span::At(Some(k), span)),
                _ => {
                    return Err(Error::verification(format!(
                        "entry {} points outside the data of {id}",
                        e.path
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Reads one window (see [`SeekableArchive::read_page_entries`]).
    fn read_window(
        &mut self,
        root: &Root,
        page: &[PageEntry],
        spans: &[Span],
        mut to: To<'_>,
    ) -> Result<()> {
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let threads = self.opts.threads;
        let max_ext = self.opts.limits.max_extension_bytes;
        let own: Vec<PageEntry> = page
            .iter()
            .zip(spans)
            .filter(|(_, s)| matches!(s, Span::At(None, _)))
            .map(|(e, _)| e.clone())
            .collect();
        let own = Self::entries_of(root, &own)?;
        // The range of each archive the window reads.
        let mut reach: HashMap<Option<u32>, Range<u64>> = HashMap::new();
        for (key, span) in spans.iter().filter_map(|s| match s {
            Span::At(key, span) => Some((key, span)),
            _ => None,
        }) {
            reach
                .entry(*key)
                .and_modify(|r| r.end = r.end.max(span.end))
                .or_insert_with(|| span.clone());
        }
        if let (Some((last, raw)), Some(r)) = (own.last(), reach.get_mut(&None)) {
            r.end = raw + expected_header(last).len() as u64 + padded(last.size);
        }
        let SeekableArchive { src, parents, .. } = self;
        let mut tar = match (own.first(), own.last(), reach.get(&None)) {
            (Some(_), Some(_), Some(r)) => {
                let (range, frames, skip) = frames_of(&root.frames, r)?;
                let dec = crate::seek::open_raw_in(src, threads, range, frames, skip)?;
                Some(TarReader::new(dec, r.start, max_ext).strict())
            }
            _ => None,
        };
        let mut streams = Vec::with_capacity(parents.len());
        for (k, p) in parents.iter_mut().enumerate() {
            let Some(r) = u32::try_from(k).ok().and_then(|k| reach.get(&Some(k))) else {
                streams.push(None);
                continue;
            };
            let id = p.manifest.backup_id();
            let (range, frames, skip) = frames_of(&p.root()?.frames, r)?;
            let dec = crate::seek::open_raw_in(&mut p.src, threads, range, frames, skip)
                .map_err(blame(id))?;
            streams.push(Some((dec, r.start, id)));
        }
        let mut own = own.iter();
        for (e, span) in page.iter().zip(spans) {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match span {
                Span::Skip => {}
                Span::Meta => {
                    meta_entry(e, to.reborrow())?;
                    progress.entry(&e.path);
                }
                Span::At(None, _) => {
                    let (Some(tar), Some(one)) = (tar.as_mut(), own.next()) else {
                        return Err(Error::invalid("an entry of this archive was not planned"));
                    };
                    match to.reborrow() {
                        To::Assemble(a) => {
                            assemble_own(tar, &one.0, one.1, a)?;
                            progress.entry(&one.0.path);
                        }
                        To::Extract(x) => crate::seek::check_entries(
                            tar,
                            std::slice::from_ref(one),
                            Some(x),
                            &*progress,
                        )?,
                        To::Check => crate::seek::check_entries(
                            tar,
                            std::slice::from_ref(one),
                            None,
                            &*progress,
                        )?,
                        To::Write(_) => {
                            return Err(Error::invalid(
                                "only data kept in a parent is streamed this way",
                            ));
                        }
                    }
                }
                Span::At(Some(k), span) => {
                    let Some(Some((dec, at, id))) = streams.get_mut(*k as usize) else {
                        return Err(Error::invalid("a parent of this window was not opened"));
                    };
                    crate::seek::skip_bytes(dec, span.start - *at).map_err(blame(*id))?;
                    let mut sink = match to.reborrow() {
                        To::Extract(x) => Sink::Extract(x),
                        To::Check => Sink::Check,
                        To::Write(w) => Sink::Write(w),
                        To::Assemble(a) => {
                            let meta = meta_of(e);
                            let d = a
                                .file(&e.path, meta, e.size, &mut (&mut *dec).take(e.size))
                                .map_err(blame(*id))?;
                            if !e.sha256.is_some_and(|want| want.ct_eq(&d)) {
                                return Err(Error::verification(format!(
                                    "{}: its data in {id} does not match its SHA-256",
                                    e.path
                                )));
                            }
                            progress.entry(&e.path);
                            *at = span.end;
                            continue;
                        }
                    };
                    copy_checked(dec, e, id, &mut sink, &*progress).map_err(blame(*id))?;
                    *at = span.end;
                }
            }
        }
        Ok(())
    }
}

/// Makes an entry that has no data from its metadata: a folder, a link or an
/// empty file of a parent's page.
fn meta_entry(e: &PageEntry, to: To<'_>) -> Result<()> {
    let meta = meta_of(e);
    let link = || {
        e.link
            .clone()
            .ok_or_else(|| Error::verification(format!("link {} has no target", e.path)))
    };
    if e.kind == EntryKind::File && !e.sha256.is_some_and(|d| d.ct_eq(&Hasher::new().finalize())) {
        return Err(Error::verification(format!(
            "{}: an empty file whose SHA-256 is not that of nothing",
            e.path
        )));
    }
    match (to, e.kind) {
        (To::Check | To::Write(_), EntryKind::File) | (To::Check, _) => Ok(()),
        (To::Write(_), _) => Err(Error::invalid("only a file's data is streamed")),
        (To::Extract(x), EntryKind::Dir) => x.create_dir(&e.path, meta),
        (To::Extract(x), EntryKind::Symlink) => x.create_symlink(&e.path, e.link.as_ref(), meta),
        (To::Extract(x), EntryKind::Hardlink) => x.create_hardlink(&e.path, e.link.as_ref()),
        (To::Extract(x), EntryKind::File) => {
            x.create_file(&e.path)?;
            x.finish_file(&e.path, meta)
        }
        (To::Assemble(a), EntryKind::Dir) => a.dir(&e.path, meta),
        (To::Assemble(a), EntryKind::Symlink) => a.symlink(&e.path, &link()?, meta),
        (To::Assemble(a), EntryKind::Hardlink) => {
            a.hardlink(&e.path, &EntryPath::parse(link()?.as_bytes())?, meta)
        }
        (To::Assemble(a), EntryKind::File) => {
            a.file(&e.path, meta, 0, &mut std::io::empty()).map(|_| ())
        }
    }
}

/// Where the data of `e`, an entry stored in the archive of `root`, starts:
/// its frame and the offset in it, past the entry's tar header. `None` if it
/// does not resolve inside the frames.
pub(crate) fn data_start(root: &Root, e: &PageEntry) -> Option<(u32, u64)> {
    let header = expected_header(&e.to_entry(root).ok()?);
    let mut frame = e.frame as usize;
    let mut pos = e.pos.checked_add(header.len() as u64)?;
    while pos >= root.frames.get(frame)?.raw_size {
        pos -= root.frames[frame].raw_size;
        frame += 1;
    }
    Some((u32::try_from(frame).ok()?, pos))
}

/// Page of parent `k` (an own page of that archive, whose root is
/// `holder`) as the child that reuses it reads it: every reference one
/// archive further up the child's chain, the entries stored in the parent
/// referring to it (files by their data's first byte; folders, links and
/// empty files by `in` alone, with no data).
pub(crate) fn for_child(
    mut page: cairn_manifest::Page,
    k: u32,
    holder: &Root,
) -> Result<cairn_manifest::Page> {
    let overflow = || Error::verification("a parent's page refers past the longest chain");
    let up = |j: u32| {
        k.checked_add(1)
            .and_then(|n| n.checked_add(j))
            .ok_or_else(overflow)
    };
    for e in &mut page.entries {
        if let Some(parts) = &mut e.parts {
            for step in parts.iter_mut().flatten() {
                *step = step.seen_from(k).ok_or_else(overflow)?;
            }
            continue;
        }
        match e.data_in {
            Some(j) => e.data_in = Some(up(j)?),
            None if e.kind == EntryKind::File && e.size > 0 => {
                let (frame, pos) = data_start(holder, e).ok_or_else(|| {
                    Error::verification(format!("entry {} points outside its frame", e.path))
                })?;
                (e.data_in, e.frame, e.pos) = (Some(k), frame, pos);
            }
            None => (e.data_in, e.frame, e.pos) = (Some(k), 0, 0),
        }
    }
    Ok(page)
}

/// The metadata a page entry gives its file.
pub(crate) fn meta_of(e: &PageEntry) -> EntryMeta {
    EntryMeta {
        mode: e.mode,
        mtime: e.mtime,
        uid: e.uid,
        gid: e.gid,
    }
}

/// Names parent `id` in an error about its data: a damaged frame there is
/// a failed verification of the child that needs it.
pub(crate) fn blame(id: BackupId) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Corrupt { reason } => Error::Verification {
            subject: format!("parent {id}: {reason}"),
        },
        e => e,
    }
}

/// The compressed range of `frames` holding raw bytes `raw`, how many frames
/// it holds, and how far into the first frame `raw` starts.
pub(crate) fn frames_of(frames: &[Frame], raw: &Range<u64>) -> Result<(Range<u64>, usize, u64)> {
    let (Some(a), Some(b)) = (
        frame_holding(frames, raw.start),
        frame_holding(frames, raw.end.saturating_sub(1).max(raw.start)),
    ) else {
        return Err(Error::verification(
            "data lies outside the archive's frames",
        ));
    };
    Ok((
        frames[a].offset..frames[b].offset + frames[b].size,
        b - a + 1,
        raw.start - frames[a].raw_offset,
    ))
}

impl<S: RangeRead> SeekableArchive<S> {
    /// Writes the whole state this archive describes into `w`, a new writer
    /// with no component yet: every entry in order, each file's data from
    /// whichever archive of the chain holds it and checked against this
    /// archive's digests, with the components, skipped files and warnings.
    /// What `w` finishes is a full archive that GNU tar extracts whole,
    /// signed by whoever finishes it. An incremental archive's parents must
    /// be attached ([`SeekableArchive::attach_parents`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a format 1 archive or a writer that has
    /// components; [`Error::Verification`] for data that differs from the
    /// digests (naming the parent that holds it) or a parent that is needed
    /// and not attached; whatever writing reports.
    pub fn assemble_into<W: Write>(&mut self, w: &mut ArchiveWriter<W>) -> Result<()> {
        let root = self.root()?.clone();
        if root.components.iter().any(|c| w.has_component(&c.name)) {
            return Err(Error::invalid(
                "an archive is assembled into a writer with no component",
            ));
        }
        w.carry_notes(root.skipped.clone(), root.warnings.clone());
        let mut checker = cairn_manifest::PageChecker::new(&root);
        for i in 0..root.pages.len() {
            let page = self.fetch_page(i)?;
            checker.page(&page)?;
            if !w.has_component(&page.component) {
                let c = root.component(&page.component).ok_or_else(|| {
                    Error::verification(format!("page {i} is of an unlisted component"))
                })?;
                w.begin_component(&c.name, c.kind, c.optional)?;
            }
            self.read_page_entries(&root, &page.entries, To::Assemble(w), Own::Read)?;
        }
        // Hard links are checked by the writer when it finishes.
        checker.finish()?;
        Ok(())
    }
}
