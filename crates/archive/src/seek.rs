//! Random access: reading the manifest from the tail and extracting or verifying
//! parts of an archive with range reads.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use cairn_integrity::{Hasher, PublicKey, SignedSeal};
use cairn_manifest::{EntryKind, EntryPath, SignedManifest};

use crate::codec::{Footer, MAX_FOOTER_LEN};
use crate::decode::Decoder;
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::reader::{Verified, check_seal_against, parent_of};
use crate::tar::TarReader;
use crate::unpack::{Extractor, Staged, UnpackOptions, UnpackStats, staging_dir};
use crate::verify::{
    Selection, check_digest, check_header, consume_data, extract_other, is_metadata, observe,
    read_manifest_region,
};

/// A source of byte ranges: a file, a buffer, or an object store.
///
/// The storage layer implements it with HTTP range requests.
pub trait RangeRead {
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

/// Any `Read + Seek` (a file, a `Cursor`) as a [`RangeRead`].
#[derive(Debug)]
pub struct SeekSource<T>(pub T);

impl<T: Read + Seek> RangeRead for SeekSource<T> {
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
    src: S,
    manifest: SignedManifest,
    size: u64,
    seal: Option<SignedSeal>,
    opts: ReadOptions,
}

impl<S> std::fmt::Debug for SeekableArchive<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekableArchive")
            .field("backup_id", &self.manifest.manifest().backup_id)
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
        let tail_start = size.saturating_sub(MAX_FOOTER_LEN as u64);
        let mut tail = Vec::new();
        src.read_range(tail_start..size)
            .and_then(|mut r| r.read_to_end(&mut tail))
            .map_err(Error::io("reading archive footer", None))?;
        let (footer, _, footer_len) = Footer::find(&tail).ok_or_else(|| {
            Error::corrupt("no Cairn footer at the end: truncated, or not a Cairn archive")
        })?;
        let end = footer
            .manifest_offset
            .checked_add(footer.manifest_length)
            .and_then(|e| e.checked_add(footer_len as u64));
        if end != Some(size) {
            return Err(Error::corrupt(
                "the footer does not describe this file (truncated or appended to?)",
            ));
        }
        let range = footer.manifest_offset..footer.manifest_offset + footer.manifest_length;
        let manifest = read_manifest(&mut src, range, key, &opts)?;
        if manifest.manifest().data_compressed_end() != footer.manifest_offset {
            return Err(Error::verification(
                "the archive's footer does not point at its manifest",
            ));
        }
        Ok(SeekableArchive {
            src,
            manifest,
            size,
            seal: None,
            opts,
        })
    }

    /// Opens an archive through its verified seal: the manifest's location and
    /// digest come from the seal, and the source's length must be the sealed one.
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
        let s = seal.seal();
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
        let manifest = read_manifest(&mut src, s.manifest_offset..end, key, &opts)?;
        check_seal_against(seal, &manifest)?;
        Ok(SeekableArchive {
            src,
            manifest,
            size,
            seal: Some(seal.clone()),
            opts,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &SignedManifest {
        &self.manifest
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
        sel.check_against(self.manifest.manifest())?;
        let staging = staging_dir(staging_parent, opts)?;
        let mut x = Extractor::new(staging.path().to_owned(), opts.owner())?;
        let wanted: Vec<usize> = (0..self.manifest.manifest().entries.len())
            .filter(|&i| sel.wants(&self.manifest.manifest().entries[i].path))
            .collect();
        for run in runs(&wanted) {
            self.read_run(run, Some(&mut x))?;
        }
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
    pub fn unpack(&mut self, dest: &Path, opts: &UnpackOptions) -> Result<SignedManifest> {
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
        let n = self.manifest.manifest().entries.len();
        if wanted.last().is_some_and(|&i| i >= n) {
            return Err(Error::invalid(format!("the archive has only {n} entries")));
        }
        // Runs whose frames overlap are read once: the entries between them come
        // for free and are checked too.
        let m = self.manifest.manifest();
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
        let m = self.manifest.manifest();
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
        let raw = tar
            .next_entry()?
            .ok_or_else(|| Error::corrupt(format!("the archive ends before {path}")))?;
        let seen = observe(&raw, tar.header_bytes())?;
        check_header(&expected, expected_raw, &seen)?;
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
        check_digest(&expected, &hasher.finalize())?;
        Ok(expected.size)
    }

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
        let mut dec = Decoder::new(reader, true, opts.threads)?;
        let m = self.manifest.manifest();
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
        let inner = read_manifest_region(&mut tar, &raw, key, &opts.limits)?;
        if inner.bytes() != self.manifest.bytes() {
            return Err(Error::verification(
                "the archive's manifest differs from the one at its tail",
            ));
        }
        let summary = dec.finish()?;
        crate::reader::check_stream(m, &summary)?;
        let verified = Verified {
            manifest: self.manifest.clone(),
            size: summary.size,
            sha256: summary.sha256,
        };
        if summary.size != size {
            return Err(Error::verification(
                "the archive's length changed while it was read",
            ));
        }
        if let Some(seal) = &self.seal {
            verified.check_seal(seal)?;
        }
        Ok(verified)
    }

    /// Decodes the compressed bytes holding entries `run`, positioned at the first.
    fn open_run(&mut self, run: Range<usize>) -> Result<TarReader<Decoder<Box<dyn Read + '_>>>> {
        let m = self.manifest.manifest();
        let first = m.span(run.start);
        let last = m.span(run.end - 1);
        let range = first.compressed.start..last.compressed.end;
        let frames = m
            .frames
            .iter()
            .filter(|f| f.offset >= range.start && f.offset < range.end)
            .count();
        let threads = self.opts.threads.min(frames).max(1);
        let base = m.raw_offset(run.start);
        let max_ext = self.opts.limits.max_extension_bytes;
        let reader = self
            .src
            .read_range(range)
            .map_err(Error::io("reading archive", None))?;
        let mut dec = Decoder::new(reader, false, threads)?;
        let mut skip = first.skip;
        while skip > 0 {
            let n = dec
                .fill_buf()
                .map_err(|e| Error::from_io("reading archive", None, e))?
                .len();
            if n == 0 {
                return Err(Error::corrupt("the archive ends inside its frame index"));
            }
            let k = usize::try_from(skip).map_or(n, |s| s.min(n));
            dec.consume(k);
            skip -= k as u64;
        }
        Ok(TarReader::new(dec, base, max_ext).strict())
    }

    fn read_run(&mut self, run: Range<usize>, mut extractor: Option<&mut Extractor>) -> Result<()> {
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let entries: Vec<(cairn_manifest::Entry, u64)> = run
            .clone()
            .map(|i| {
                (
                    self.manifest.manifest().entries[i].clone(),
                    self.manifest.manifest().raw_offset(i),
                )
            })
            .collect();
        let mut tar = self.open_run(run)?;
        for (want, want_raw) in &entries {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let raw = tar
                .next_entry()?
                .ok_or_else(|| Error::corrupt(format!("the archive ends before {}", want.path)))?;
            let seen = observe(&raw, tar.header_bytes())?;
            check_header(want, *want_raw, &seen)?;
            if want.kind == EntryKind::File {
                let d = consume_data(&mut tar, &seen, extractor.as_deref_mut(), &*progress)?;
                check_digest(want, &d)?;
            } else if let Some(x) = extractor.as_deref_mut() {
                extract_other(x, &seen)?;
            }
            progress.entry(&want.path);
        }
        Ok(())
    }
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

fn read_manifest<S: RangeRead>(
    src: &mut S,
    range: Range<u64>,
    key: &PublicKey,
    opts: &ReadOptions,
) -> Result<SignedManifest> {
    let reader = src
        .read_range(range)
        .map_err(Error::io("reading manifest", None))?;
    let mut dec = Decoder::new(reader, false, 1)?;
    let mut tar = TarReader::new(&mut dec, 0, opts.limits.max_extension_bytes).strict();
    let first = tar
        .next_entry()?
        .ok_or_else(|| Error::corrupt("no manifest where the footer or seal points"))?;
    let manifest = read_manifest_region(&mut tar, &first, key, &opts.limits)?;
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
