//! Reading archives as a stream: verification and unpacking.

use std::io::Read;
use std::path::Path;

use cairn_integrity::{PublicKey, Sha256Digest, SignedSeal};
use cairn_manifest::{
    AnyManifest, Codec, EntryKind, EntryOrder, Frame, Manifest, OrderError, Page, PageChecker,
    PageRef, Root,
};

use crate::codec::Format;
use crate::decode::{Decoder, StreamSummary};
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::pages::page_path;
use crate::spill::{ObservedLog, PageLog, check_order, replay_one};
use crate::tar::TarReader;
use crate::unpack::{Extractor, Staged, UnpackOptions, UnpackStats, staging_dir};
use crate::verify::{
    Budget, Selection, Tail, check_digest, check_header, check_own_header, consume_data,
    extract_other, is_metadata, observe, read_tail,
};
use crate::writer::timestamp_mtime;

/// The outcome of reading a whole archive: its signed manifest, checked against
/// every entry, and the archive's size and SHA-256.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The verified manifest (format 1) or root (format 2).
    pub manifest: AnyManifest,
    /// The archive's length in bytes.
    pub size: u64,
    /// The archive's SHA-256 (`None` after an unpack, which skips it: every
    /// entry and the manifest are authenticated, and a seal is checked with
    /// [`ArchiveReader::verify`]).
    pub sha256: Option<Sha256Digest>,
}

impl Verified {
    /// Checks that `seal` (already verified with the trusted key) describes this
    /// archive: same backup, size, digest and manifest.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] naming what differs.
    pub fn check_seal(&self, seal: &SignedSeal) -> Result<()> {
        check_seal_against(seal, &self.manifest)?;
        let sha256 = self
            .sha256
            .ok_or_else(|| Error::invalid("this read did not compute the archive's digest"))?;
        seal.seal().plain().check_archive(self.size, &sha256)?;
        Ok(())
    }
}

pub(crate) fn check_seal_against(seal: &SignedSeal, manifest: &AnyManifest) -> Result<()> {
    let s = seal.seal();
    let id = manifest.backup_id().to_string();
    if s.backup_id != id {
        return Err(Error::verification(format!(
            "seal is for {}, the archive holds {id}",
            s.backup_id
        )));
    }
    if !s.manifest_sha256.ct_eq(&manifest.sha256()) {
        return Err(Error::verification(format!(
            "the manifest of {id} is not the one its seal names"
        )));
    }
    if s.manifest_offset != manifest.data_compressed_end() {
        return Err(Error::verification(format!(
            "seal of {id} places the manifest elsewhere"
        )));
    }
    Ok(())
}

/// Reads an archive from any `Read`, once, front to back.
///
/// The manifest is at the end of the stream, so entries are checked against the
/// path rules and [`crate::Limits`] as they come, and against the signed manifest
/// once it has been read and verified. Unpacking therefore goes to a staging
/// directory that is removed unless everything checks out.
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
/// let verified = ArchiveReader::new(&archive[..])?.verify(&key.public_key())?;
/// assert_eq!(verified.manifest.entry_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ArchiveReader<R: Read> {
    decoder: Decoder<R>,
    opts: ReadOptions,
    /// Whether an incremental archive's own entries may be checked alone (the
    /// caller checks the data in its parents).
    own_entries_only: bool,
}

impl<R: Read> std::fmt::Debug for ArchiveReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("format", &self.decoder.format())
            .finish_non_exhaustive()
    }
}

impl<R: Read> ArchiveReader<R> {
    /// Wraps `r`, detecting the compression from its first bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if it is not zstd, gzip or tar.
    pub fn new(r: R) -> Result<Self> {
        Self::with_options(r, ReadOptions::default())
    }

    /// Wraps `r` with options.
    ///
    /// # Errors
    ///
    /// As [`ArchiveReader::new`].
    pub fn with_options(r: R, opts: ReadOptions) -> Result<Self> {
        Ok(ArchiveReader {
            decoder: Decoder::new(r, true, opts.threads)?,
            opts,
            own_entries_only: false,
        })
    }

    /// Accepts an incremental archive, checking only what it holds itself:
    /// the caller checks the data its entries find in parents.
    pub(crate) fn own_entries_only(mut self) -> Self {
        self.own_entries_only = true;
        self
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.decoder.format()
    }

    /// Reads the whole archive and checks the manifest's signature with `key`, and
    /// every entry (metadata, position and content digest) against it.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] if anything differs from what was signed or the key
    /// is not the signer's; [`Error::Corrupt`] for damaged or truncated data;
    /// [`Error::Unsafe`] and [`Error::Limit`] for hostile content.
    pub fn verify(mut self, key: &PublicKey) -> Result<Verified> {
        self.run(key, None, &Selection::new(None))
    }

    /// Verifies the archive while unpacking it into a new staging directory in
    /// `staging_parent`. Nothing outside that directory is touched; on any error it
    /// is removed.
    ///
    /// # Errors
    ///
    /// As [`ArchiveReader::verify`], plus [`Error::Io`] for failures writing files.
    pub fn unpack_to_staging(
        mut self,
        key: &PublicKey,
        staging_parent: &Path,
        opts: &UnpackOptions,
    ) -> Result<Staged> {
        // Every entry and the manifest are authenticated: the archive's own digest
        // would cost a third of the CPU of an unpack for nothing.
        if opts.subtree.is_some() {
            return Err(Error::invalid(
                "a single file or folder is unpacked from a seekable archive",
            ));
        }
        self.decoder.stop_hashing();
        let staging = staging_dir(staging_parent, opts)?;
        let mut x = Extractor::new(staging.path().to_owned(), opts.owner())?;
        let sel = Selection::new(opts.components.as_deref());
        let verified = self
            .run(key, Some(&mut x), &sel)
            .map_err(|e| x.refusal_or(e))?;
        sel.check_against(|c| match &verified.manifest {
            AnyManifest::V1(m) => m.manifest().component(c).is_some(),
            AnyManifest::V2(r) => r.manifest().component(c).is_some(),
        })?;
        x.finish()?;
        let stats = UnpackStats {
            entries: x.entries,
            bytes: x.bytes,
        };
        Ok(Staged::new(staging, verified.manifest, stats))
    }

    /// Verifies and unpacks into `dest`, which must not exist or be empty. The tree
    /// appears there only once everything checked out.
    ///
    /// # Errors
    ///
    /// As [`ArchiveReader::unpack_to_staging`] and [`Staged::commit`].
    pub fn unpack(self, key: &PublicKey, dest: &Path, opts: &UnpackOptions) -> Result<AnyManifest> {
        let parent = parent_of(dest)?;
        self.unpack_to_staging(key, &parent, opts)?.commit(dest)
    }

    fn run(
        &mut self,
        key: &PublicKey,
        mut extractor: Option<&mut Extractor>,
        sel: &Selection,
    ) -> Result<Verified> {
        let limits = self.opts.limits;
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let spill_dir = self.opts.spill_dir.clone();
        let mut tar = TarReader::new(&mut self.decoder, 0, limits.max_extension_bytes).strict();
        // What was seen waits in a temporary file for the manifest at the end.
        let mut log = ObservedLog::new(spill_dir.as_deref())?;
        let mut order = EntryOrder::canonical();
        let mut budget = Budget::default();
        let tail = loop {
            let raw = tar.next_entry()?.ok_or_else(|| {
                Error::corrupt(
                    "the archive ends without a manifest (incomplete, or not a Cairn archive)",
                )
            })?;
            if is_metadata(&raw) {
                break read_tail(&mut tar, &raw, key, &limits, spill_dir.as_deref())?;
            }
            let mut seen = observe(&raw, tar.header_bytes())?;
            budget.admit(&limits, &seen.path, seen.size)?;
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            // Duplicates and entries below a file or link are refused before
            // anything is made for them.
            check_order(&mut order, seen.path.as_bytes(), seen.kind, |any| {
                let mut earlier = log.iter()?;
                while let Some(o) = earlier.next()? {
                    replay_one(any, o.path.as_bytes(), o.kind)?;
                }
                Ok(())
            })?
            .map_err(|why| Error::Unsafe {
                path: seen.path.to_string(),
                reason: match why {
                    OrderError::BelowLeaf => "a parent directory is a link or a file",
                    OrderError::HoldsEntries => {
                        "a file or link where earlier entries need a folder"
                    }
                    _ => "appears twice in the archive",
                },
            })?;
            let x = extractor.as_deref_mut().filter(|_| sel.wants(&seen.path));
            if seen.kind == EntryKind::File {
                seen.sha256 = Some(consume_data(&mut tar, &seen, x, &*progress)?);
            } else if let Some(x) = x {
                extract_other(x, &seen)?;
            }
            progress.entry(&seen.path);
            log.push(&seen)?;
        };
        let summary = self.decoder.finish()?;
        let manifest = match tail {
            Tail::V1(m) => {
                compare_v1(m.manifest(), &mut log)?;
                check_stream(&Layout::v1(m.manifest()), &summary)?;
                AnyManifest::V1(m)
            }
            Tail::V2(r, mut pages) => {
                let root = r.manifest();
                if let Some(p) = root.parents.first()
                    && (extractor.is_some() || !self.own_entries_only)
                {
                    return Err(Error::invalid(format!(
                        "backup {} is incremental: its unchanged files are in {} and earlier \
                         backups; read it from its store, or download it whole",
                        root.backup_id, p.backup_id
                    )));
                }
                compare_v2(root, &mut pages, &mut log)?;
                check_stream(&Layout::v2(r.manifest()), &summary)?;
                AnyManifest::V2(r)
            }
        };
        Ok(Verified {
            manifest,
            size: summary.size,
            sha256: summary.sha256,
        })
    }
}

/// The directory in which to stage an unpack to `dest`.
pub(crate) fn parent_of(dest: &Path) -> Result<std::path::PathBuf> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::invalid(format!(
            "{} does not exist: create the destination's parent first",
            parent.display()
        )));
    }
    Ok(parent)
}

/// Compares every entry read from a stream with the verified format 1 manifest.
fn compare_v1(m: &Manifest, log: &mut ObservedLog) -> Result<()> {
    if log.len() != m.entries.len() as u64 {
        return Err(Error::verification(format!(
            "the archive holds {} entries, its signed manifest lists {}",
            log.len(),
            m.entries.len()
        )));
    }
    let mut seen = log.iter()?;
    for (i, want) in m.entries.iter().enumerate() {
        let o = seen
            .next()?
            .ok_or_else(|| Error::verification("the archive holds fewer entries than listed"))?;
        check_header(want, m.raw_offset(i), &o)?;
        if let Some(d) = &o.sha256 {
            check_digest(want, d)?;
        }
    }
    Ok(())
}

/// Compares every entry read from a stream with the pages of the verified
/// format 2 root: each page is checked against the root's digest for it and
/// by a [`PageChecker`], one page in memory at a time.
fn compare_v2(root: &Root, pages: &mut PageLog, log: &mut ObservedLog) -> Result<()> {
    let own = root.pages.iter().filter(|p| p.is_own()).count();
    if pages.len() != own {
        return Err(Error::verification(format!(
            "the archive holds {} manifest pages, its signed root names {own}",
            pages.len(),
        )));
    }
    // Pages of parents are not in the stream: they, and the hard links that
    // may cross them, are checked where the parents are read
    // (`SeekableArchive::verify_full`).
    let reuses = own != root.pages.len();
    if !root.is_incremental() && log.len() != root.entry_count() {
        return Err(Error::verification(format!(
            "the archive holds {} entries, its signed manifest lists {}",
            log.len(),
            root.entry_count()
        )));
    }
    let mtime = timestamp_mtime(root.created_at);
    let mut checker = PageChecker::new(root);
    let mut seen = log.iter()?;
    let mut n = 0;
    for (i, named) in root.pages.iter().enumerate() {
        if !named.is_own() {
            continue;
        }
        let (bytes, header) = pages.get(n)?;
        check_own_header(&page_path(n), bytes.len(), mtime, &header)?;
        n += 1;
        let page = Page::parse(&bytes, named, i)
            .map_err(|e| Error::verification(format!("manifest page {i}: {e}")))?;
        checker.page_at(i, &page)?;
        for pe in &page.entries {
            if !pe.is_stored_here() {
                // Its data is in a parent; it has no tar entry here.
                continue;
            }
            let want = pe.to_entry(root)?;
            let raw = root.raw_offset(pe).unwrap_or(u64::MAX);
            let o = seen.next()?.ok_or_else(|| {
                Error::verification("the archive holds fewer entries than listed")
            })?;
            check_header(&want, raw, &o)?;
            if let Some(d) = &o.sha256 {
                check_digest(&want, d)?;
            }
        }
    }
    if seen.next()?.is_some() {
        return Err(Error::verification(
            "the archive holds entries its signed manifest does not list",
        ));
    }
    if reuses {
        checker.finish_partial()?;
        return Ok(());
    }
    let mut links = checker.finish()?;
    if !links.is_empty() {
        for i in 0..root.pages.len() {
            links.page(&Page::decode(&pages.get(i)?.0)?);
        }
    }
    links.finish()?;
    Ok(())
}

/// Where a manifest says its frames, pages and root are.
pub(crate) struct Layout<'a> {
    frames: &'a [Frame],
    codec: Codec,
    pages: &'a [PageRef],
    /// Where the root's frame starts (format 2), or 0.
    root_offset: u64,
    data_compressed_end: u64,
    /// Where the blob region is (format 2.1 with segments), or empty.
    blobs: std::ops::Range<u64>,
}

impl<'a> Layout<'a> {
    pub(crate) fn v1(m: &'a Manifest) -> Self {
        Layout {
            frames: &m.frames,
            codec: m.compression.codec,
            pages: &[],
            root_offset: 0,
            data_compressed_end: m.data_compressed_end(),
            blobs: 0..0,
        }
    }

    pub(crate) fn v2(r: &'a Root) -> Self {
        Layout {
            frames: &r.frames,
            codec: r.compression.codec,
            pages: &r.pages,
            root_offset: r.pages_end(),
            data_compressed_end: r.data_compressed_end(),
            blobs: r.blobs_offset()..r.data_compressed_end(),
        }
    }
}

/// Checks what the decoder saw of the compressed stream: the frame index
/// (and, in format 2, the pages' frames and the root's), no foreign frames,
/// and exactly one footer, last, pointing at the manifest.
pub(crate) fn check_stream(m: &Layout<'_>, summary: &StreamSummary) -> Result<()> {
    if !summary.frames.is_empty() {
        if summary.frames.get(..m.frames.len()) != Some(m.frames) {
            return Err(Error::verification(
                "the frame index in the signed manifest does not match the archive",
            ));
        }
        let mut rest = &summary.frames[m.frames.len()..];
        for (i, p) in m.pages.iter().enumerate().filter(|(_, p)| p.is_own()) {
            let mut held = 0u64;
            while held < p.size {
                match rest.split_first() {
                    Some((f, more)) if f.offset == p.offset + held => {
                        held += f.size;
                        rest = more;
                    }
                    _ => break,
                }
            }
            if held != p.size {
                return Err(Error::verification(format!(
                    "manifest page {i} is not where the signed root places it"
                )));
            }
        }
        if m.pages.iter().any(PageRef::is_own)
            && rest.first().map(|f| f.offset) != Some(m.root_offset)
        {
            return Err(Error::verification(
                "the manifest root is not where the pages end",
            ));
        }
    }
    let blobs_placed = if m.blobs.is_empty() {
        summary.blobs.is_empty()
    } else {
        summary.blobs == [m.blobs.clone()]
    };
    if !blobs_placed {
        return Err(Error::verification(
            "the segments' blobs are not where the signed root places them",
        ));
    }
    if summary.foreign_frames > 0 {
        return Err(Error::verification(
            "the archive contains skippable frames Cairn does not write",
        ));
    }
    match summary.footer {
        Some(_) if !summary.footer_last => {
            Err(Error::verification("the archive has data after its footer"))
        }
        Some(f)
            if f.manifest_offset == m.data_compressed_end
                && f.root_offset == m.root_offset
                && f.manifest_offset
                    .checked_add(f.manifest_length)
                    .and_then(|e| e.checked_add(crate::codec::footer_len(m.codec) as u64))
                    == Some(summary.size) =>
        {
            Ok(())
        }
        Some(_) => Err(Error::verification(
            "the archive's footer does not point at its manifest",
        )),
        None => Err(Error::corrupt("the archive has no footer (truncated?)")),
    }
}
