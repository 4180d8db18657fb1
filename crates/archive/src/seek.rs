//! Random access: reading the manifest from the tail and extracting or verifying
//! parts of an archive with range reads.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use cairn_integrity::{Hasher, PublicKey, Sha256Digest, SignedSeal};
use cairn_manifest::v2::MAX_PAGE_BYTES;
use cairn_manifest::{
    AnyManifest, Entry, EntryKind, EntryPath, Frame, Manifest, Page, PageChecker, PageEntry, Root,
    SignedManifest,
};

use crate::chain::{Own, To};
use crate::codec::{Footer, MAX_FOOTER_LEN};
use crate::decode::Decoder;
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::pages::page_path;
use crate::reader::{ArchiveReader, Layout, Verified, check_seal_against, parent_of};
use crate::subtree::Subtree;
use crate::tar::{TarReader, padded, read_small};
use crate::unpack::{Extractor, Staged, UnpackOptions, UnpackStats, staging_dir};
use crate::verify::{
    Selection, Tail, check_digest, check_header, check_own_header, consume_data, expected_header,
    extract_other, is_metadata, observe, read_tail,
};
use crate::writer::timestamp_mtime;

/// A source of byte ranges: a file, a buffer, or an object store.
///
/// The storage layer implements it with HTTP range requests. It is `Send`:
/// a file stored by segments is rebuilt on a thread of its own while the
/// previous segment is written.
pub trait RangeRead: Send {
    /// The total length.
    ///
    /// # Errors
    ///
    /// Whatever the source reports.
    fn len(&mut self) -> io::Result<u64>;

    /// Whether the source is empty.
    ///
    /// # Errors
    ///
    /// Whatever the source reports.
    fn is_empty(&mut self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A reader of the bytes in `range`.
    ///
    /// # Errors
    ///
    /// Whatever the source reports.
    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>>;
}

/// Refuses a `range` that is not within a source of `len` bytes, naming
/// the source (`what`): the check every [`RangeRead`] makes first.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] for a range that ends before it starts
/// or past the end.
pub fn check_range(range: &Range<u64>, len: u64, what: &str) -> io::Result<()> {
    if range.start > range.end || range.end > len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("range {range:?} outside {what} ({len} bytes)"),
        ));
    }
    Ok(())
}

/// Any `Read + Seek` (a file, a `Cursor`) as a [`RangeRead`].
#[derive(Debug)]
pub struct SeekSource<T>(pub T);

impl<T: Read + Seek + Send> RangeRead for SeekSource<T> {
    fn len(&mut self) -> io::Result<u64> {
        self.0.seek(SeekFrom::End(0))
    }

    fn read_range(&mut self, range: Range<u64>) -> io::Result<Box<dyn Read + '_>> {
        self.0.seek(SeekFrom::Start(range.start))?;
        Ok(Box::new(
            (&mut self.0).take(range.end.saturating_sub(range.start)),
        ))
    }
}

/// An archive opened through its footer or seal, with its manifest verified,
/// ready for partial reads.
///
/// ```
/// # use cairn_archive::*;
/// # use cairn_integrity::SigningKey;
/// # use cairn_manifest::*;
/// # let key = SigningKey::generate()?;
/// # let meta = ArchiveMeta::new(TargetName::parse("web")?, OriginId::parse("org_doc")?);
/// # let mut w = ArchiveWriter::new(Vec::new(), meta, WriterOptions::default())?;
/// # w.append_reader(&ComponentName::parse("config")?, ComponentKind::File, b"app.toml",
/// #     EntryMeta::new(0o644, Mtime::new(0, 0)), 5, &mut &b"a = 1"[..], false)?;
/// # let archive = w.finish(&key)?.inner;
/// let mut a = SeekableArchive::open(SeekSource(std::io::Cursor::new(archive)), &key.public_key(), ReadOptions::default())?;
/// let mut content = Vec::new();
/// a.read_file(&EntryPath::parse(b"config/app.toml")?, &mut content)?;
/// assert_eq!(content, b"a = 1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SeekableArchive<S> {
    pub(crate) src: S,
    pub(crate) manifest: AnyManifest,
    size: u64,
    seal: Option<SignedSeal>,
    pub(crate) opts: ReadOptions,
    /// For an incremental archive, its parents in the root's order, once
    /// attached ([`SeekableArchive::attach_parents`]).
    pub(crate) parents: Vec<SeekableArchive<S>>,
    /// Format 2: each page's number among the pages stored here (its tar
    /// entry's name); `None` for a parent's page.
    own_numbers: Vec<Option<u32>>,
    /// Format 2: the indexes of the pages stored here, in order.
    own_pages: Vec<u32>,
}

/// The numbers of a manifest's own pages (see `SeekableArchive::own_numbers`).
fn own_numbers(manifest: &AnyManifest) -> Vec<Option<u32>> {
    manifest
        .v2()
        .map(|r| r.manifest().own_page_numbers())
        .unwrap_or_default()
}

/// The indexes of a manifest's own pages, in order.
fn own_pages(manifest: &AnyManifest) -> Vec<u32> {
    manifest.v2().map_or_else(Vec::new, |r| {
        (0u32..)
            .zip(&r.manifest().pages)
            .filter(|(_, p)| p.is_own())
            .map(|(i, _)| i)
            .collect()
    })
}

impl<S> std::fmt::Debug for SeekableArchive<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekableArchive")
            .field("backup_id", &self.manifest.backup_id())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<S: RangeRead> SeekableArchive<S> {
    /// Opens an archive through the footer at its end: two small reads, no seal
    /// needed.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] without a valid footer; [`Error::Verification`] if the
    /// manifest is not signed by `key`.
    pub fn open(mut src: S, key: &PublicKey, opts: ReadOptions) -> Result<Self> {
        let size = src
            .len()
            .map_err(Error::io("reading archive length", None))?;
        let footer = read_footer(&mut src, size)?.ok_or_else(|| {
            Error::corrupt("no Cairn footer at the end: truncated, or not a Cairn archive")
        })?;
        let end = footer.manifest_offset + footer.manifest_length;
        // A format 2 archive's root is in the last frames; its pages are
        // fetched when needed.
        let start = if footer.root_offset == 0 {
            footer.manifest_offset
        } else {
            footer.root_offset
        };
        let manifest = read_manifest(&mut src, start..end, key, &opts)?;
        let placed = match &manifest {
            AnyManifest::V1(_) => footer.root_offset == 0,
            AnyManifest::V2(r) => r.manifest().pages_end() == footer.root_offset,
        };
        if manifest.data_compressed_end() != footer.manifest_offset || !placed {
            return Err(Error::verification(
                "the archive's footer does not point at its manifest",
            ));
        }
        Ok(SeekableArchive {
            src,
            own_numbers: own_numbers(&manifest),
            own_pages: own_pages(&manifest),
            manifest,
            size,
            seal: None,
            opts,
            parents: Vec::new(),
        })
    }

    /// Opens an archive through its verified seal: the manifest's location and
    /// digest come from the seal, and the source's length must be the sealed one
    /// (for the seal of an encrypted archive, the plaintext's: `src` is then
    /// the decrypted archive).
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] if the archive is not the one sealed.
    pub fn open_sealed(
        mut src: S,
        seal: &SignedSeal,
        key: &PublicKey,
        opts: ReadOptions,
    ) -> Result<Self> {
        let s = seal.seal().plain();
        let size = src
            .len()
            .map_err(Error::io("reading archive length", None))?;
        if size != s.archive_size {
            return Err(Error::verification(format!(
                "archive of {} is {size} bytes, its seal says {}",
                s.backup_id, s.archive_size
            )));
        }
        let end = s
            .manifest_offset
            .checked_add(s.manifest_length)
            .filter(|&e| e <= size)
            .ok_or_else(|| Error::verification("seal places the manifest outside the archive"))?;
        // A format 2 archive is opened at its root, which the footer places
        // (the seal names the whole manifest region); a format 1 archive
        // needs no footer.
        let start = match read_footer(&mut src, size).ok().flatten() {
            Some(f)
                if f.root_offset != 0
                    && f.manifest_offset == s.manifest_offset
                    && f.manifest_length == s.manifest_length =>
            {
                f.root_offset
            }
            _ => s.manifest_offset,
        };
        let manifest = read_manifest(&mut src, start..end, key, &opts)?;
        check_seal_against(seal, &manifest)?;
        Ok(SeekableArchive {
            src,
            own_numbers: own_numbers(&manifest),
            own_pages: own_pages(&manifest),
            manifest,
            size,
            seal: Some(seal.clone()),
            opts,
            parents: Vec::new(),
        })
    }

    /// The verified manifest (format 1) or root (format 2).
    pub fn manifest(&self) -> &AnyManifest {
        &self.manifest
    }

    fn v1(&self) -> Option<&Manifest> {
        self.manifest.v1().map(SignedManifest::manifest)
    }

    /// Calls `f` with every entry, in archive order. A format 2 archive's
    /// pages are fetched one at a time and each is checked against the root
    /// and against the pages before it (as [`PageChecker`] does), so memory
    /// holds one page whatever the number of entries.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] for a page that is not the one the root names
    /// or entries that contradict each other; [`Error::Io`] reading; whatever
    /// `f` returns.
    pub fn for_each_entry(&mut self, f: impl FnMut(&Entry) -> Result<()>) -> Result<()> {
        self.for_each_entry_in(0..u64::MAX, f)
    }

    /// Calls `f` with the entries numbered `range` (from 0, in archive
    /// order; a range past the end stops at the end). A format 2 archive
    /// fetches only the pages that hold them, each checked against the root
    /// and against the other pages read (all of them for the whole range).
    ///
    /// # Errors
    ///
    /// As [`SeekableArchive::for_each_entry`].
    pub fn for_each_entry_in(
        &mut self,
        range: Range<u64>,
        mut f: impl FnMut(&Entry) -> Result<()>,
    ) -> Result<()> {
        if let Some(m) = self.v1() {
            let start = usize::try_from(range.start).unwrap_or(usize::MAX);
            let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
            return m.entries.iter().skip(start).take(len).try_for_each(f);
        }
        let root = self.root()?.clone();
        let mut checker = PageChecker::new(&root);
        let whole = range.start == 0 && range.end >= root.entry_count();
        let mut first = 0u64;
        for i in 0..root.pages.len() {
            let count = u64::from(root.pages[i].entries);
            let (from, to) = (first, first + count);
            first = to;
            if to <= range.start {
                continue;
            }
            if from >= range.end {
                break;
            }
            let page = self.fetch_page(i)?;
            checker.page_at(i, &page)?;
            for (k, pe) in (from..).zip(&page.entries) {
                if range.contains(&k) {
                    f(&pe.to_entry(&root)?)?;
                }
            }
        }
        if whole {
            checker.finish()?;
        } else {
            checker.finish_partial()?;
        }
        Ok(())
    }

    /// Calls `f` with the entries of `component`, in archive order: a
    /// format 2 archive fetches only that component's pages (checked as
    /// [`SeekableArchive::for_each_entry_in`] checks them).
    ///
    /// # Errors
    ///
    /// As [`SeekableArchive::for_each_entry`].
    pub fn for_each_entry_of(
        &mut self,
        component: &[u8],
        mut f: impl FnMut(&Entry) -> Result<()>,
    ) -> Result<()> {
        if let Some(m) = self.v1() {
            return m
                .entries
                .iter()
                .filter(|e| e.path.first() == component)
                .try_for_each(f);
        }
        let root = self.root()?.clone();
        // A component's pages are consecutive: its entries are one range.
        let (mut first, mut range) = (0u64, None::<Range<u64>>);
        for p in &root.pages {
            let count = u64::from(p.entries);
            if p.component.as_str().as_bytes() == component {
                range = Some(range.map_or(first..first + count, |r| r.start..first + count));
            }
            first += count;
        }
        match range {
            Some(r) => self.for_each_entry_in(r, |e| {
                if e.path.first() == component {
                    f(e)
                } else {
                    Ok(())
                }
            }),
            None => Ok(()),
        }
    }

    /// The archive's length.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The source.
    pub fn into_inner(self) -> S {
        self.src
    }

    /// Unpacks the selected components (all by default) into a new staging
    /// directory in `staging_parent`, reading only their frames.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] for any entry that differs from the manifest,
    /// [`Error::Corrupt`], [`Error::Io`].
    pub fn unpack_to_staging(
        &mut self,
        staging_parent: &Path,
        opts: &UnpackOptions,
    ) -> Result<Staged> {
        let sel = Selection::new(opts.components.as_deref());
        let staging = staging_dir(staging_parent, opts)?;
        let mut x = Extractor::new(staging.path().to_owned(), opts.owner())?;
        let mut sub = opts.subtree.as_ref().map(Subtree::new);
        let read = match &self.manifest {
            AnyManifest::V1(m) => {
                let m = m.manifest();
                sel.check_against(|c| m.component(c).is_some())?;
                if let Some(s) = &mut sub {
                    m.entries.iter().for_each(|e| s.note(e));
                    if !m.entries.iter().any(|e| s.holds(e.path.as_bytes())) {
                        return Err(Error::invalid(format!(
                            "the archive has no entry {}",
                            s.shown()
                        )));
                    }
                }
                let wanted: Vec<usize> = (0..m.entries.len())
                    .filter(|&i| sel.wants(&m.entries[i].path))
                    .filter(|&i| {
                        sub.as_ref()
                            .is_none_or(|s| s.wants(m.entries[i].path.as_bytes()))
                    })
                    .collect();
                runs(&wanted)
                    .into_iter()
                    .try_for_each(|run| self.read_run(run, Some(&mut x)))
            }
            AnyManifest::V2(r) => {
                let root = r.manifest().clone();
                sel.check_against(|c| root.component(c).is_some())?;
                match &mut sub {
                    None => self.unpack_pages(&root, &sel, &mut x),
                    Some(s) => self.unpack_subtree(&root, s, &mut x),
                }
            }
        };
        read.map_err(|e| x.refusal_or(e))?;
        x.finish()?;
        let stats = UnpackStats {
            entries: x.entries,
            bytes: x.bytes,
        };
        Ok(Staged::new(staging, self.manifest.clone(), stats))
    }

    /// Unpacks the selected components into `dest` (which must not exist or be
    /// empty) once they all verified.
    ///
    /// # Errors
    ///
    /// As [`SeekableArchive::unpack_to_staging`] and [`Staged::commit`].
    pub fn unpack(&mut self, dest: &Path, opts: &UnpackOptions) -> Result<AnyManifest> {
        let parent = parent_of(dest)?;
        self.unpack_to_staging(&parent, opts)?.commit(dest)
    }

    /// Verifies the entries at `indices` (of the manifest's entry list), reading
    /// only the frames that hold them. This is the `sample` verification tier.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] for the first entry that differs.
    pub fn verify_entries(&mut self, indices: &[usize]) -> Result<()> {
        let mut wanted = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let n = match &self.manifest {
            AnyManifest::V1(m) => m.manifest().entries.len() as u64,
            AnyManifest::V2(r) => r.manifest().entry_count(),
        };
        if wanted.last().is_some_and(|&i| i as u64 >= n) {
            return Err(Error::invalid(format!("the archive has only {n} entries")));
        }
        let Some(m) = self.v1() else {
            return self.verify_entries_v2(&wanted);
        };
        // Runs whose frames overlap are read once: the entries between them come
        // for free and are checked too.
        let mut merged: Vec<Range<usize>> = Vec::new();
        for run in runs(&wanted) {
            match merged.last_mut() {
                Some(last)
                    if m.span(run.start).compressed.start < m.span(last.end - 1).compressed.end =>
                {
                    last.end = run.end;
                }
                _ => merged.push(run),
            }
        }
        for run in merged {
            self.read_run(run, None)?;
        }
        Ok(())
    }

    /// The entry at `path`, if the archive has one (a format 2 archive
    /// reads the pages of its component, each checked against the root).
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] for a page that is not the one the root
    /// names; [`Error::Io`] reading.
    pub fn entry(&mut self, path: &EntryPath) -> Result<Option<Entry>> {
        if let Some(m) = self.v1() {
            return Ok(m.find(path).map(|i| m.entries[i].clone()));
        }
        let root = self.root()?.clone();
        Ok(self
            .find_v2(&root, path)?
            .map(|pe| pe.to_entry(&root))
            .transpose()?)
    }

    /// Streams one file's content to `out` and returns its length. Hard links are
    /// followed to their file.
    ///
    /// The content is checked against its signed digest as it streams: if the
    /// check fails at the end the bytes already written must be discarded.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if there is no such file; [`Error::Verification`] if
    /// the content differs from what was signed.
    pub fn read_file(&mut self, path: &EntryPath, out: &mut dyn Write) -> Result<u64> {
        let Some(m) = self.v1() else {
            return self.read_file_v2(path, out);
        };
        let mut i = m
            .find(path)
            .ok_or_else(|| Error::invalid(format!("the archive has no entry {path}")))?;
        if m.entries[i].kind == EntryKind::Hardlink {
            let target = m.entries[i]
                .link
                .as_ref()
                .map(cairn_manifest::LinkTarget::as_bytes)
                .unwrap_or_default();
            i = m
                .find(&EntryPath::parse(target)?)
                .ok_or_else(|| Error::invalid(format!("hard link {path} has no target")))?;
        }
        if m.entries[i].kind != EntryKind::File {
            return Err(Error::invalid(format!("{path} is not a regular file")));
        }
        let expected = m.entries[i].clone();
        let expected_raw = m.raw_offset(i);
        let mut tar = self.open_run(i..i + 1)?;
        stream_file(&mut tar, &expected, expected_raw, out)
    }
}

/// Reads the next entry of `tar`, which must be the file `expected` at
/// `expected_raw`, streaming its content to `out` and checking its digest.
fn stream_file<R: BufRead>(
    tar: &mut TarReader<R>,
    expected: &Entry,
    expected_raw: u64,
    out: &mut dyn Write,
) -> Result<u64> {
    {
        let path = &expected.path;
        let raw = tar
            .next_entry()?
            .ok_or_else(|| Error::corrupt(format!("the archive ends before {path}")))?;
        let seen = observe(&raw, tar.header_bytes())?;
        check_header(expected, expected_raw, &seen)?;
        let mut hasher = Hasher::new();
        loop {
            let chunk = tar.data()?;
            if chunk.is_empty() {
                break;
            }
            hasher.update(chunk);
            out.write_all(chunk).map_err(Error::io("writing", None))?;
            let n = chunk.len();
            tar.consume(n);
        }
        check_digest(expected, &hasher.finalize())?;
        Ok(expected.size)
    }
}

impl<S: RangeRead> SeekableArchive<S> {
    /// Reads the whole archive front to back and checks everything: every entry,
    /// the manifest region, the footer, and (when opened through a seal) the
    /// archive's size and SHA-256. This is the `full` verification tier.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] for anything that differs.
    pub fn verify_full(&mut self, key: &PublicKey) -> Result<Verified> {
        let size = self.size;
        let opts = self.opts.clone();
        let reader = self
            .src
            .read_range(0..size)
            .map_err(Error::io("reading archive", None))?;
        let Some(m) = self.manifest.v1().map(SignedManifest::manifest) else {
            // Format 2: the stream reader checks every page and entry with
            // bounded memory; its root must be the one at the tail.
            let verified = ArchiveReader::with_options(reader, opts)?
                .own_entries_only()
                .verify(key)?;
            if verified.manifest.sha256() != self.manifest.sha256() {
                return Err(Error::verification(
                    "the archive's manifest differs from the one at its tail",
                ));
            }
            let verified = finish_full(size, self.seal.as_ref(), verified)?;
            let root = self.root()?.clone();
            if root.is_incremental() {
                self.verify_reused(&root)?;
            }
            return Ok(verified);
        };
        let mut dec = Decoder::new(reader, true, opts.threads)?;
        let mut tar = TarReader::new(&mut dec, 0, opts.limits.max_extension_bytes).strict();
        for (i, want) in m.entries.iter().enumerate() {
            let raw = tar
                .next_entry()?
                .ok_or_else(|| Error::corrupt(format!("the archive ends before {}", want.path)))?;
            let seen = observe(&raw, tar.header_bytes())?;
            check_header(want, m.raw_offset(i), &seen)?;
            if want.kind == EntryKind::File {
                let d = consume_data(&mut tar, &seen, None, &*opts.progress)?;
                check_digest(want, &d)?;
            }
            opts.progress.entry(&want.path);
        }
        let raw = tar
            .next_entry()?
            .ok_or_else(|| Error::corrupt("the archive ends without its manifest"))?;
        if !is_metadata(&raw) {
            return Err(Error::verification(
                "the archive holds entries its manifest does not list",
            ));
        }
        let inner = read_tail(&mut tar, &raw, key, &opts.limits, None)?;
        if !matches!(&inner, Tail::V1(i) if i.sha256() == self.manifest.sha256()) {
            return Err(Error::verification(
                "the archive's manifest differs from the one at its tail",
            ));
        }
        let summary = dec.finish()?;
        crate::reader::check_stream(&Layout::v1(m), &summary)?;
        let verified = Verified {
            manifest: self.manifest.clone(),
            size: summary.size,
            sha256: summary.sha256,
        };
        finish_full(size, self.seal.as_ref(), verified)
    }

    /// Decodes the compressed bytes holding entries `run`, positioned at the first.
    fn open_run(&mut self, run: Range<usize>) -> Result<TarReader<Decoder<Box<dyn Read + '_>>>> {
        let m = self
            .v1()
            .ok_or_else(|| Error::invalid("not a format 1 archive"))?;
        let first = m.span(run.start);
        let last = m.span(run.end - 1);
        let range = first.compressed.start..last.compressed.end;
        let base = m.raw_offset(run.start);
        let frames = count_frames(&m.frames, &range);
        self.open_range(range, frames, first.skip, base)
    }

    /// Decodes compressed bytes `range` (holding `frames` frames), skips
    /// `skip` decompressed bytes and reads tar entries from there, the first
    /// at raw offset `base`.
    fn open_range(
        &mut self,
        range: Range<u64>,
        frames: usize,
        first_skip: u64,
        base: u64,
    ) -> Result<TarReader<Decoder<Box<dyn Read + '_>>>> {
        let max_ext = self.opts.limits.max_extension_bytes;
        let dec = self.open_raw(range, frames, first_skip)?;
        Ok(TarReader::new(dec, base, max_ext).strict())
    }

    /// Decodes compressed bytes `range` (holding `frames` frames) and skips
    /// `skip` decompressed bytes.
    pub(crate) fn open_raw(
        &mut self,
        range: Range<u64>,
        frames: usize,
        skip: u64,
    ) -> Result<Decoder<Box<dyn Read + '_>>> {
        open_raw_in(&mut self.src, self.opts.threads, range, frames, skip)
    }

    fn read_run(&mut self, run: Range<usize>, extractor: Option<&mut Extractor>) -> Result<()> {
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let m = self
            .v1()
            .ok_or_else(|| Error::invalid("not a format 1 archive"))?;
        let entries: Vec<(Entry, u64)> = run
            .clone()
            .map(|i| (m.entries[i].clone(), m.raw_offset(i)))
            .collect();
        let mut tar = self.open_run(run)?;
        check_entries(&mut tar, &entries, extractor, &*progress)
    }
}

/// Reads `entries` (each with its raw offset) one after another from `tar`,
/// checking each against what was signed, unpacking them when `extractor` is
/// given.
pub(crate) fn check_entries<R: BufRead>(
    tar: &mut TarReader<R>,
    entries: &[(Entry, u64)],
    mut extractor: Option<&mut Extractor>,
    progress: &dyn crate::options::Progress,
) -> Result<()> {
    {
        for (want, want_raw) in entries {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let raw = tar
                .next_entry()?
                .ok_or_else(|| Error::corrupt(format!("the archive ends before {}", want.path)))?;
            let seen = observe(&raw, tar.header_bytes())?;
            check_header(want, *want_raw, &seen)?;
            if want.kind == EntryKind::File {
                let d = consume_data(tar, &seen, extractor.as_deref_mut(), progress)?;
                check_digest(want, &d)?;
            } else if let Some(x) = extractor.as_deref_mut() {
                extract_other(x, &seen)?;
            }
            progress.entry(&want.path);
        }
        Ok(())
    }
}

/// The checks a full verification ends with: the length, and the seal.
fn finish_full(size: u64, seal: Option<&SignedSeal>, verified: Verified) -> Result<Verified> {
    if verified.size != size {
        return Err(Error::verification(
            "the archive's length changed while it was read",
        ));
    }
    if let Some(seal) = seal {
        verified.check_seal(seal)?;
    }
    Ok(verified)
}

/// The footer at the end of an archive of `size` bytes, if it has one that
/// describes it exactly.
fn read_footer<S: RangeRead>(src: &mut S, size: u64) -> Result<Option<Footer>> {
    let tail_start = size.saturating_sub(MAX_FOOTER_LEN as u64);
    let mut tail = Vec::new();
    src.read_range(tail_start..size)
        .and_then(|mut r| r.read_to_end(&mut tail))
        .map_err(Error::io("reading archive footer", None))?;
    let Some((footer, _, footer_len)) = Footer::find(&tail) else {
        return Ok(None);
    };
    let end = footer
        .manifest_offset
        .checked_add(footer.manifest_length)
        .and_then(|e| e.checked_add(footer_len as u64));
    if end != Some(size) {
        return Err(Error::corrupt(
            "the footer does not describe this file (truncated or appended to?)",
        ));
    }
    Ok(Some(footer))
}

/// How many of `frames` start inside compressed `range`.
fn count_frames(frames: &[Frame], range: &Range<u64>) -> usize {
    frames
        .iter()
        .filter(|f| f.offset >= range.start && f.offset < range.end)
        .count()
}

/// The frame holding uncompressed offset `raw`.
pub(crate) fn frame_holding(frames: &[Frame], raw: u64) -> Option<usize> {
    let i = frames.partition_point(|f| f.raw_offset + f.raw_size <= raw);
    (i < frames.len() && frames[i].raw_offset <= raw).then_some(i)
}

/// Format 2: pages and their entries, fetched by range.
impl<S: RangeRead> SeekableArchive<S> {
    pub(crate) fn root(&self) -> Result<&Root> {
        self.manifest
            .v2()
            .map(cairn_manifest::Signed::manifest)
            .ok_or_else(|| Error::invalid("not a format 2 archive"))
    }

    /// Fetches page `i` and checks it against the root. A parent's page is
    /// fetched from the parent (which must be attached) and its entries
    /// given as this archive reads them (`chain::for_child`).
    pub(crate) fn fetch_page(&mut self, i: usize) -> Result<Page> {
        let root = self.root()?;
        let named = root
            .pages
            .get(i)
            .cloned()
            .ok_or_else(|| Error::verification(format!("the root names no page {i}")))?;
        let Some(k) = named.data_in else {
            let n = self.own_numbers.get(i).copied().flatten().unwrap_or(0);
            return self.fetch_own_page(i, n as usize);
        };
        let id = self.manifest.backup_id();
        let holder = self.holder(k)?;
        let hid = holder.manifest.backup_id();
        let hroot = holder.root()?.clone();
        // Own pages are in the order of their offsets.
        let at = holder
            .own_pages
            .partition_point(|&j| hroot.pages[j as usize].offset < named.offset);
        let j = holder
            .own_pages
            .get(at)
            .map(|&j| j as usize)
            .filter(|&j| {
                let p = &hroot.pages[j];
                p.size == named.size && p.sha256.ct_eq(&named.sha256)
            })
            .ok_or_else(|| {
                Error::verification(format!(
                    "page {i} of {id} is not a page of its parent {hid}"
                ))
            })?;
        let page = holder.fetch_page(j).map_err(crate::chain::blame(hid))?;
        crate::chain::for_child(page, k, &hroot)
    }

    /// Fetches page `i` of the root, stored here as page number `n`.
    fn fetch_own_page(&mut self, i: usize, n: usize) -> Result<Page> {
        let root = self.root()?;
        let named = root.pages[i].clone();
        let mtime = timestamp_mtime(root.created_at);
        let max_ext = self.opts.limits.max_extension_bytes;
        let reader = self
            .src
            .read_range(named.offset..named.offset + named.size)
            .map_err(Error::io("reading a manifest page", None))?;
        let mut dec = Decoder::new(reader, false, 1)?;
        let mut tar = TarReader::new(&mut dec, 0, max_ext).strict();
        let raw = tar
            .next_entry()?
            .ok_or_else(|| Error::corrupt(format!("no manifest page {i} where the root points")))?;
        let name = page_path(n);
        if raw.path != name.as_bytes() {
            return Err(Error::verification(format!(
                "the root points at {} where manifest page {i} should be",
                String::from_utf8_lossy(&raw.path)
            )));
        }
        let header = Sha256Digest::of(tar.header_bytes());
        let bytes = read_small(&mut tar, raw.size, MAX_PAGE_BYTES, "manifest page")?;
        check_own_header(&name, bytes.len(), mtime, &header)?;
        Page::parse(&bytes, &named, i)
            .map_err(|e| Error::verification(format!("manifest page {i}: {e}")))
    }

    /// Opens the data of a run of consecutive entries of one page.
    fn open_entries(
        &mut self,
        root: &Root,
        first: &Entry,
        first_raw: u64,
        last: &Entry,
        last_raw: u64,
    ) -> Result<TarReader<Decoder<Box<dyn Read + '_>>>> {
        let end_raw = last_raw + expected_header(last).len() as u64 + padded(last.size);
        let (Some(a), Some(b)) = (
            frame_holding(&root.frames, first_raw),
            frame_holding(&root.frames, end_raw.saturating_sub(1).max(first_raw)),
        ) else {
            return Err(Error::verification(format!(
                "entry {} lies outside the archive's frames",
                first.path
            )));
        };
        let range = root.frames[a].offset..root.frames[b].offset + root.frames[b].size;
        let skip = first_raw - root.frames[a].raw_offset;
        self.open_range(range, b - a + 1, skip, first_raw)
    }

    /// Page entries as v1 entries with their raw offsets (entries with data
    /// here only).
    pub(crate) fn entries_of(root: &Root, entries: &[PageEntry]) -> Result<Vec<(Entry, u64)>> {
        entries
            .iter()
            .map(|pe| {
                let raw = root.raw_offset(pe).ok_or_else(|| {
                    Error::verification(format!("entry {} points outside its frame", pe.path))
                })?;
                Ok((pe.to_entry(root)?, raw))
            })
            .collect()
    }

    /// Unpacks the pages of the selected components, page by page: one page
    /// and one range read at a time.
    fn unpack_pages(&mut self, root: &Root, sel: &Selection, x: &mut Extractor) -> Result<()> {
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let mut checker = PageChecker::new(root);
        let wanted: Vec<usize> = (0..root.pages.len())
            .filter(|&i| sel.wants_component(&root.pages[i].component))
            .collect();
        for &i in &wanted {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let page = self.fetch_page(i)?;
            checker.page_at(i, &page)?;
            self.read_page_entries(root, &page.entries, To::Extract(x), Own::Read)?;
        }
        let mut links = checker.finish_partial()?;
        if !links.is_empty() {
            let mut next = 0;
            for &i in &wanted {
                links.skip(
                    root.pages[next..i]
                        .iter()
                        .map(|p| u64::from(p.entries))
                        .sum(),
                );
                links.page(&self.fetch_page(i)?);
                next = i + 1;
            }
        }
        links.finish()?;
        Ok(())
    }

    /// Unpacks a subtree of a format 2 archive: its component's pages are
    /// read once to find the hard links that reach out of it, then again,
    /// each page's wanted entries a run at a time.
    fn unpack_subtree(&mut self, root: &Root, sub: &mut Subtree, x: &mut Extractor) -> Result<()> {
        let wanted: Vec<usize> = (0..root.pages.len())
            .filter(|&i| root.pages[i].component.as_str().as_bytes() == sub.component())
            .collect();
        let mut checker = PageChecker::new(root);
        for &i in &wanted {
            let page = self.fetch_page(i)?;
            checker.page_at(i, &page)?;
            for pe in &page.entries {
                sub.note(&pe.to_entry(root)?);
            }
        }
        let mut links = checker.finish_partial()?;
        let (mut next, mut found) = (0, false);
        for &i in &wanted {
            let page = self.fetch_page(i)?;
            let keep: Vec<usize> = (0..page.entries.len())
                .filter(|&k| sub.wants(page.entries[k].path.as_bytes()))
                .collect();
            found |= keep
                .iter()
                .any(|&k| sub.holds(page.entries[k].path.as_bytes()));
            for run in runs(&keep) {
                self.read_page_entries(root, &page.entries[run], To::Extract(x), Own::Read)?;
            }
            if !links.is_empty() {
                links.skip(
                    root.pages[next..i]
                        .iter()
                        .map(|p| u64::from(p.entries))
                        .sum(),
                );
                links.page(&page);
                next = i + 1;
            }
        }
        links.finish()?;
        if !found {
            return Err(Error::invalid(format!(
                "the archive has no entry {}",
                sub.shown()
            )));
        }
        Ok(())
    }

    /// Reads the data of every entry whose data is in a parent, checking it
    /// against its digest (a full verification of an incremental archive,
    /// whose own entries the stream reader checked).
    /// Every page is checked again here, with the parents' pages it names
    /// (which the stream does not hold), and the hard links across them.
    fn verify_reused(&mut self, root: &Root) -> Result<()> {
        let mut checker = PageChecker::new(root);
        for i in 0..root.pages.len() {
            let page = self.fetch_page(i)?;
            checker.page(&page)?;
            self.read_page_entries(root, &page.entries, To::Check, Own::Skip)?;
        }
        let mut links = checker.finish()?;
        if !links.is_empty() {
            for i in 0..root.pages.len() {
                links.page(&self.fetch_page(i)?);
            }
        }
        links.finish()?;
        Ok(())
    }

    /// Format 2's `verify_entries`: entry ordinals to pages, then each entry
    /// read alone.
    fn verify_entries_v2(&mut self, wanted: &[usize]) -> Result<()> {
        let root = self.root()?.clone();
        let mut start = 0usize;
        let mut w = wanted.iter().peekable();
        for (i, named) in root.pages.iter().enumerate() {
            let end = start + named.entries as usize;
            if w.peek().is_some_and(|&&k| k < end) {
                let page = self.fetch_page(i)?;
                while let Some(&&k) = w.peek().filter(|&&&k| k < end) {
                    let one = std::slice::from_ref(&page.entries[k - start]);
                    self.read_page_entries(&root, one, To::Check, Own::Read)?;
                    w.next();
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Finds the entry at `path` in the pages of its component.
    fn find_v2(&mut self, root: &Root, path: &EntryPath) -> Result<Option<PageEntry>> {
        let component = path.first().to_vec();
        for i in 0..root.pages.len() {
            if root.pages[i].component.as_str().as_bytes() != component {
                continue;
            }
            let page = self.fetch_page(i)?;
            if let Some(pe) = page.entries.into_iter().find(|e| &e.path == path) {
                return Ok(Some(pe));
            }
        }
        Ok(None)
    }

    /// Format 2's `read_file`: the entry is found in its component's pages.
    fn read_file_v2(&mut self, path: &EntryPath, out: &mut dyn Write) -> Result<u64> {
        let root = self.root()?.clone();
        let mut e = self
            .find_v2(&root, path)?
            .ok_or_else(|| Error::invalid(format!("the archive has no entry {path}")))?;
        if e.kind == EntryKind::Hardlink {
            let target = e
                .link
                .as_ref()
                .map(cairn_manifest::LinkTarget::as_bytes)
                .unwrap_or_default();
            e = self
                .find_v2(&root, &EntryPath::parse(target)?)?
                .ok_or_else(|| Error::invalid(format!("hard link {path} has no target")))?;
        }
        if e.kind != EntryKind::File {
            return Err(Error::invalid(format!("{path} is not a regular file")));
        }
        if !e.is_stored_here() {
            self.read_page_entries(&root, std::slice::from_ref(&e), To::Write(out), Own::Read)?;
            return Ok(e.size);
        }
        let (e, raw) = Self::entries_of(&root, std::slice::from_ref(&e))?
            .pop()
            .ok_or_else(|| Error::invalid(format!("the archive has no entry {path}")))?;
        let mut tar = self.open_entries(&root, &e, raw, &e, raw)?;
        stream_file(&mut tar, &e, raw, out)
    }
}

/// Decodes compressed bytes `range` of `src` (holding `frames` frames, read
/// with up to `threads` threads) and skips `skip` decompressed bytes.
pub(crate) fn open_raw_in<S: RangeRead>(
    src: &mut S,
    threads: usize,
    range: Range<u64>,
    frames: usize,
    skip: u64,
) -> Result<Decoder<Box<dyn Read + '_>>> {
    let reader = src
        .read_range(range)
        .map_err(Error::io("reading archive", None))?;
    let mut dec = Decoder::new(reader, false, threads.min(frames).max(1))?;
    skip_bytes(&mut dec, skip)?;
    Ok(dec)
}

/// Consumes `n` decompressed bytes of `dec`.
pub(crate) fn skip_bytes<R: BufRead>(dec: &mut R, mut n: u64) -> Result<()> {
    while n > 0 {
        let got = dec
            .fill_buf()
            .map_err(|e| Error::from_io("reading archive", None, e))?
            .len();
        if got == 0 {
            return Err(Error::corrupt("the archive ends inside its frame index"));
        }
        let k = usize::try_from(n).map_or(got, |s| s.min(got));
        dec.consume(k);
        n -= k as u64;
    }
    Ok(())
}

/// Splits sorted indices into runs of consecutive entries (one range read each).
fn runs(sorted: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in sorted {
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Reads the manifest (format 1) or the root (format 2) in `range`: format 2
/// archives are opened at their root's frame, where the pages are already
/// behind.
fn read_manifest<S: RangeRead>(
    src: &mut S,
    range: Range<u64>,
    key: &PublicKey,
    opts: &ReadOptions,
) -> Result<AnyManifest> {
    let reader = src
        .read_range(range)
        .map_err(Error::io("reading manifest", None))?;
    let mut dec = Decoder::new(reader, false, 1)?;
    let mut tar = TarReader::new(&mut dec, 0, opts.limits.max_extension_bytes).strict();
    let first = tar
        .next_entry()?
        .ok_or_else(|| Error::corrupt("no manifest where the footer or seal points"))?;
    let manifest = match read_tail(&mut tar, &first, key, &opts.limits, None)? {
        Tail::V1(m) => AnyManifest::V1(m),
        Tail::V2(r, pages) => {
            if pages.len() != 0 {
                return Err(Error::verification(
                    "the footer's root offset points at the manifest's pages",
                ));
            }
            AnyManifest::V2(r)
        }
    };
    dec.finish()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_group_consecutive_indices() {
        assert!(runs(&[]).is_empty());
        assert_eq!(runs(&[0, 1, 2, 5, 7, 8]), vec![0..3, 5..6, 7..9]);
    }
}
