//! Reading an incremental archive: the data its entries find in parents.
//!
//! An entry whose data is in a parent names the parent (by its index in the
//! root's parent list) and the position of the data's first byte among that
//! parent's frames. Reading it never walks the chain: the writer resolved the
//! reference to the archive that holds the bytes. What is read is checked
//! against the **child's** signed digest, whichever archive holds it.

use std::io::{BufRead, Write};
use std::ops::Range;

use cairn_integrity::Hasher;
use cairn_manifest::v2::ParentRef;
use cairn_manifest::{BackupId, PageEntry};

use crate::error::{Error, Result};
use crate::seek::{RangeRead, SeekableArchive, frame_holding};
use crate::unpack::Extractor;
use crate::writer::EntryMeta;

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
    fn holder(&mut self, k: u32) -> Result<&mut SeekableArchive<S>> {
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

    /// Reads the data of `run`, entries of this archive whose data is all in
    /// one parent, in increasing positions there, into `sink`.
    pub(crate) fn read_reused(&mut self, run: &[PageEntry], sink: Sink<'_>) -> Result<()> {
        let Some(k) = run.first().and_then(|e| e.data_in) else {
            return Ok(());
        };
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let holder = self.holder(k)?;
        let id = holder.manifest.backup_id();
        holder
            .read_data(run, sink, &*progress)
            .map_err(|e| match e {
                Error::Corrupt { reason } => Error::Verification {
                    subject: format!("parent {id}: {reason}"),
                },
                e => e,
            })
    }

    /// As the holder of `run`'s data: reads each entry's `size` bytes at its
    /// position, checking them against the entry's digest.
    fn read_data(
        &mut self,
        run: &[PageEntry],
        mut sink: Sink<'_>,
        progress: &dyn crate::options::Progress,
    ) -> Result<()> {
        let id = self.manifest.backup_id();
        let root = self.root()?;
        let mut spans = Vec::with_capacity(run.len());
        for e in run {
            let start = root
                .frames
                .get(e.frame as usize)
                .filter(|f| e.pos < f.raw_size)
                .map(|f| f.raw_offset + e.pos);
            let span = start.and_then(|s| Some(s..s.checked_add(e.size)?));
            match span {
                Some(span) if span.end <= root.data_end() => spans.push(span),
                _ => {
                    return Err(Error::verification(format!(
                        "entry {} points outside the data of {id}",
                        e.path
                    )));
                }
            }
        }
        if spans.windows(2).any(|w| w[1].start < w[0].end) {
            return Err(Error::invalid("reused data read out of order"));
        }
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Ok(());
        };
        let (Some(a), Some(b)) = (
            frame_holding(&root.frames, first.start),
            frame_holding(&root.frames, last.end - 1),
        ) else {
            return Err(Error::verification(format!(
                "reused data lies outside the frames of {id}"
            )));
        };
        let range = root.frames[a].offset..root.frames[b].offset + root.frames[b].size;
        let skip = first.start - root.frames[a].raw_offset;
        let mut at = first.start;
        let mut dec = self.open_raw(range, b - a + 1, skip)?;
        for (e, span) in run.iter().zip(spans) {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            crate::seek::skip_bytes(&mut dec, span.start - at)?;
            copy_checked(&mut dec, e, &id, &mut sink, progress)?;
            at = span.end;
        }
        Ok(())
    }
}

/// Copies entry `e`'s `size` bytes from `dec` into `sink`, checking them
/// against its digest.
fn copy_checked<R: BufRead>(
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
        x.finish_file(
            &e.path,
            EntryMeta {
                mode: e.mode,
                mtime: e.mtime,
                uid: e.uid,
                gid: e.gid,
            },
        )?;
    }
    progress.entry(&e.path);
    Ok(())
}

impl<S: RangeRead> SeekableArchive<S> {
    /// Splits a page's entries into runs read together: consecutive entries
    /// with data here (`None`), or consecutive entries with data in the same
    /// parent, each starting after the previous one ends and at most one
    /// frame later.
    pub(crate) fn groups(&self, entries: &[PageEntry]) -> Vec<(Option<u32>, Range<usize>)> {
        let mut out: Vec<(Option<u32>, Range<usize>)> = Vec::new();
        // The holder's frame and raw offset where the previous reused entry ends.
        let mut prev_end: Option<(usize, u64)> = None;
        for (i, e) in entries.iter().enumerate() {
            let here = e.data_in.and_then(|k| {
                let frames = &self.parents.get(k as usize)?.root().ok()?.frames;
                let start = frames.get(e.frame as usize)?.raw_offset + e.pos;
                let end = start.checked_add(e.size)?;
                Some((start, frame_holding(frames, end - 1)?, end))
            });
            if let Some((k, r)) = out.last_mut()
                && *k == e.data_in
            {
                let near = match (k, prev_end, here) {
                    (None, _, _) => true,
                    (Some(_), Some((end_frame, end)), Some((start, _, _))) => {
                        start >= end && e.frame as usize <= end_frame + 1
                    }
                    _ => false,
                };
                if near {
                    r.end = i + 1;
                    prev_end = here.map(|(_, f, end)| (f, end));
                    continue;
                }
            }
            prev_end = here.map(|(_, f, end)| (f, end));
            out.push((e.data_in, i..i + 1));
        }
        out
    }
}
