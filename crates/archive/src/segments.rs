//! Large files stored by segments in an incremental archive.
//!
//! A changed file of at least the segment size whose parent entry holds
//! data is cut into aligned segments. Each is the parent's segment
//! unchanged (its recipe is copied), a zstd frame compressed against the
//! parent's segment (zstd's "patch from": the parent's bytes are the
//! frame's prefix), or a plain zstd frame, whichever is smaller. The frames
//! (**blobs**) are kept in zstd skippable frames between the data frames and
//! the pages, where every zstd decoder passes over them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter};

use cairn_manifest::v2::Step;
use cairn_manifest::{BackupId, PageEntry, Root};

use crate::chain::{Sink, To, blame, copy_checked, frames_of, meta_of};
use crate::error::{Error, Result};
use crate::seek::{RangeRead, SeekableArchive, frame_holding};

/// The skippable frame magic of a blob (`0x184D2A5B`), distinct from the
/// footer's.
pub(crate) const BLOB_MAGIC: [u8; 4] = [0x5b, 0x2a, 0x4d, 0x18];

/// The largest window a patch needs: a prefix and a segment of the largest
/// size (64 MiB each).
const MAX_WINDOW_LOG: u32 = 27;

fn zstd_error(what: &str) -> impl Fn(usize) -> Error + '_ {
    move |code| Error::corrupt(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// `data` as one zstd frame at `level`, compressed against `base` when
/// given (which a reader must then give again).
pub(crate) fn compress(level: i32, base: Option<&[u8]>, data: &[u8]) -> Result<Vec<u8>> {
    let mut cctx = CCtx::create();
    let set = |c: &mut CCtx<'_>, p| {
        c.set_parameter(p)
            .map(|_| ())
            .map_err(zstd_error("setting up a segment's compression"))
    };
    set(&mut cctx, CParameter::CompressionLevel(level))?;
    set(&mut cctx, CParameter::ChecksumFlag(true))?;
    set(&mut cctx, CParameter::ContentSizeFlag(true))?;
    if let Some(base) = base {
        // The window must reach back over the whole prefix.
        let span = (base.len() + data.len()).max(1) as u64;
        let log = (64 - (span - 1).leading_zeros()).clamp(10, MAX_WINDOW_LOG);
        set(&mut cctx, CParameter::WindowLog(log))?;
        // As `zstd --patch-from` does: the fast strategies' tables cannot
        // reach a large prefix, long-distance matching does.
        set(&mut cctx, CParameter::EnableLongDistanceMatching(true))?;
        cctx.ref_prefix(base)
            .map_err(zstd_error("setting a segment's base"))?;
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut out, data)
        .map_err(zstd_error("compressing a segment"))?;
    Ok(out)
}

/// Decompresses one blob (against `base` if it is a patch), which must
/// declare and hold at most `max` bytes, into `out` (emptied first; a
/// buffer used before spares the page faults of a new one).
pub(crate) fn decompress(
    frame: &[u8],
    base: Option<&[u8]>,
    max: u64,
    mut out: Vec<u8>,
) -> Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| Error::corrupt("a segment's blob is not a zstd frame"))?
        .ok_or_else(|| Error::corrupt("a segment's blob does not declare its size"))?;
    if declared > max {
        return Err(Error::corrupt(format!(
            "a segment's blob declares {declared} bytes, more than {max}"
        )));
    }
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
        .map_err(zstd_error("setting up a segment's decompression"))?;
    if let Some(base) = base {
        dctx.ref_prefix(base)
            .map_err(zstd_error("setting a segment's base"))?;
    }
    out.clear();
    out.reserve(usize::try_from(declared).unwrap_or(0));
    let n = dctx
        .decompress(&mut out, frame)
        .map_err(zstd_error("decompressing a segment's blob"))?;
    if n as u64 != declared {
        return Err(Error::corrupt(
            "a segment's blob holds another size than it declares",
        ));
    }
    Ok(out)
}

/// The blobs of an archive being written, kept in an unnamed temporary file
/// until the data frames are written, each already in its skippable frame.
#[derive(Debug, Default)]
pub(crate) struct Blobs {
    file: Option<File>,
    len: u64,
}

impl Blobs {
    /// Adds a blob; returns its offset from the start of the region (where
    /// its zstd frame starts, after the skippable frame's 8 bytes).
    pub(crate) fn push(&mut self, dir: Option<&Path>, frame: &[u8]) -> Result<u64> {
        let len = u32::try_from(frame.len())
            .map_err(|_| Error::invalid("a segment's blob is larger than 4 GiB"))?;
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                match dir {
                    Some(d) => tempfile::tempfile_in(d),
                    None => tempfile::tempfile(),
                }
                .map_err(Error::io("creating a temporary file for segments", None))?,
            ),
        };
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&BLOB_MAGIC);
        head[4..].copy_from_slice(&len.to_le_bytes());
        file.write_all(&head)
            .and_then(|()| file.write_all(frame))
            .map_err(Error::io("writing segments to a temporary file", None))?;
        let at = self.len + 8;
        self.len = at + u64::from(len);
        Ok(at)
    }

    /// The region's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Hands the region to `out`, in pieces.
    pub(crate) fn copy_to(&mut self, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(0))
            .map_err(Error::io("reading segments back", None))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(Error::io("reading segments back", None))?;
            if n == 0 {
                return Ok(());
            }
            out(&buf[..n])?;
        }
    }
}

impl<S: RangeRead> SeekableArchive<S> {
    /// This archive (`None`) or parent `k` of it, with its id.
    fn archive_mut(&mut self, holder: Option<u32>) -> Result<&mut SeekableArchive<S>> {
        match holder {
            None => Ok(self),
            Some(k) => self.holder(k),
        }
    }

    /// `len` bytes of the tar stream of `holder`, from `pos` bytes into its
    /// frame number `frame`, in `out` (emptied first).
    fn read_raw(
        &mut self,
        holder: Option<u32>,
        (frame, pos, len): (u32, u64, u64),
        mut out: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let a = self.archive_mut(holder)?;
        let id = a.manifest.backup_id();
        let root = a.root()?;
        let span = root
            .frames
            .get(frame as usize)
            .filter(|f| pos < f.raw_size)
            .and_then(|f| {
                let start = f.raw_offset + pos;
                Some(start..start.checked_add(len)?)
            })
            .filter(|s| s.end <= root.data_end())
            .ok_or_else(|| {
                Error::verification(format!("a segment points outside the data of {id}"))
            })?;
        if root.compression.codec == cairn_manifest::Codec::Zstd && len > 0 {
            return zstd_span(a, &span, out).map_err(blame_if(holder, id));
        }
        let (range, frames, skip) = frames_of(&root.frames, &span)?;
        let threads = a.opts.threads;
        let mut dec = crate::seek::open_raw_in(&mut a.src, threads, range, frames, skip)
            .map_err(blame_if(holder, id))?;
        out.clear();
        out.reserve(usize::try_from(len).map_err(|_| Error::invalid("segment too large"))?);
        let got = (&mut dec)
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| blame_if(holder, id)(Error::from_io("reading archive", None, e)))?;
        if got as u64 != len {
            return Err(blame_if(holder, id)(Error::corrupt(format!(
                "{id} ends inside a segment"
            ))));
        }
        Ok(out)
    }

    /// The zstd frame of blob `blob` (`len` bytes) in `holder`'s blob region.
    fn read_blob(
        &mut self,
        holder: Option<u32>,
        blob: u64,
        len: u64,
    ) -> Result<(Vec<u8>, BackupId)> {
        let a = self.archive_mut(holder)?;
        let id = a.manifest.backup_id();
        let root = a.root()?;
        let outside = || {
            Error::verification(format!(
                "a segment's blob lies outside the blob region of {id}"
            ))
        };
        let end = blob.checked_add(len).ok_or_else(outside)?;
        let longest = cairn_manifest::v2::max_blob_len(
            root.segment_size
                .unwrap_or(cairn_manifest::v2::MAX_SEGMENT_SIZE),
        );
        if blob < 8 || end > root.blob_bytes || len > longest {
            return Err(outside());
        }
        let start = root.blobs_offset() + blob - 8;
        let mut bytes = Vec::with_capacity(usize::try_from(len + 8).unwrap_or(0));
        a.src
            .read_range(start..root.blobs_offset() + end)
            .and_then(|mut r| r.read_to_end(&mut bytes))
            .map_err(Error::io("reading archive", None))?;
        let len32 = u32::try_from(len).map_err(|_| outside())?;
        if bytes.len() as u64 != len + 8
            || bytes[..4] != BLOB_MAGIC
            || bytes[4..8] != len32.to_le_bytes()
        {
            return Err(Error::verification(format!(
                "{id}: a segment's blob is not where its entry places it"
            )));
        }
        bytes.drain(..8);
        Ok((bytes, id))
    }

    /// Rebuilds a segment from its recipe (in this archive's terms): at most
    /// `max` bytes at each step. Buffers are taken from `spares` and those
    /// done with are put back.
    pub(crate) fn rebuild(
        &mut self,
        steps: &[Step],
        max: u64,
        spares: &mut Vec<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut cur: Option<Vec<u8>> = None;
        for (i, step) in steps.iter().enumerate() {
            let out = spares.pop().unwrap_or_default();
            let next = match *step {
                Step::Data {
                    data_in,
                    frame,
                    pos,
                    len,
                } if i == 0 => {
                    if len > max {
                        return Err(Error::verification(format!(
                            "a segment's base of {len} bytes is longer than a segment"
                        )));
                    }
                    self.read_raw(Some(data_in), (frame, pos, len), out)?
                }
                Step::Blob { data_in, blob, len } => {
                    let (frame, id) = self.read_blob(data_in, blob, len)?;
                    decompress(&frame, cur.as_deref(), max, out).map_err(blame_if(data_in, id))?
                }
                Step::Data { .. } => {
                    return Err(Error::verification(
                        "a segment's recipe has a data step after its first",
                    ));
                }
            };
            if let Some(done) = cur.replace(next) {
                spares.push(done);
            }
        }
        cur.ok_or_else(|| Error::verification("a segment has an empty recipe"))
    }

    /// Segment `i` (of `seg` bytes) of entry `e` of this archive's root
    /// `root`: its recipe as a child of this archive names it, and its bytes.
    /// `None` past the entry's end, or for an entry that holds no data.
    pub(crate) fn segment_for_child(
        &mut self,
        e: &PageEntry,
        i: u64,
        seg: u64,
    ) -> Result<Option<(Vec<Step>, Vec<u8>)>> {
        let root = self.root()?;
        let own_seg = root.segment_size.unwrap_or(seg);
        let header = match (&e.parts, e.data_in) {
            (None, None) => crate::verify::expected_header(&e.to_entry(root)?).len() as u64,
            _ => 0,
        };
        if let Some(parts) = &e.parts {
            let Some(steps) = usize::try_from(i).ok().and_then(|i| parts.get(i)) else {
                return Ok(None);
            };
            let bytes = self.rebuild(steps, own_seg, &mut Vec::new())?;
            let child: Option<Vec<Step>> = steps.iter().map(Step::for_child).collect();
            return Ok(child.map(|c| (c, bytes)));
        }
        let off = i.saturating_mul(seg);
        if e.kind != cairn_manifest::EntryKind::File || off >= e.size {
            return Ok(None);
        }
        let len = seg.min(e.size - off);
        let (holder, frame, pos) = match e.data_in {
            Some(k) => (Some(k), e.frame, e.pos),
            None => (None, e.frame, e.pos + header),
        };
        let frames = &self.archive_mut(holder)?.root()?.frames;
        let Some(start) = frames.get(frame as usize).map(|f| f.raw_offset + pos + off) else {
            return Ok(None);
        };
        let Some(f) = frame_holding(frames, start) else {
            return Ok(None);
        };
        let pos = start - frames[f].raw_offset;
        let frame = u32::try_from(f).map_err(|_| Error::invalid("more than 2^32 frames"))?;
        let bytes = self.read_raw(holder, (frame, pos, len), Vec::new())?;
        let data_in = holder.map_or(Some(0), |k| k.checked_add(1));
        Ok(data_in.map(|data_in| {
            (
                vec![Step::Data {
                    data_in,
                    frame,
                    pos,
                    len,
                }],
                bytes,
            )
        }))
    }

    /// Reads an entry stored by segments into `to`, checking each segment's
    /// length and the whole against the entry's digest.
    pub(crate) fn read_segmented(&mut self, root: &Root, e: &PageEntry, to: To<'_>) -> Result<()> {
        let (Some(parts), Some(seg)) = (e.parts.as_deref(), root.segment_size) else {
            return Err(Error::invalid("the entry is not stored by segments"));
        };
        let progress = std::sync::Arc::clone(&self.opts.progress);
        let id = self.manifest.backup_id();
        // One thread rebuilds the next segment while this one checks and
        // writes the current one; a rendezvous channel keeps at most one
        // rebuilt segment waiting.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(0);
            // Segments read come back, to be filled again.
            let (back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
            let archive = &mut *self;
            let size = e.size;
            scope.spawn(move || {
                // Three segment buffers in all, each allocated once: the
                // one being written, and the base and output of the one
                // being rebuilt (the written one comes back as the next is
                // taken). Dropping and allocating one per segment instead
                // fragments the allocator: 81-97 MiB of peak RSS, against
                // 80-81 MiB, restoring a 7-deep chain (`docs/performance.md`).
                let mut spares = Vec::new();
                for (i, steps) in parts.iter().enumerate() {
                    spares.extend(returned.try_iter().filter(|b| b.capacity() > 0));
                    spares.truncate(2);
                    let i = i as u64;
                    let want = seg.min(size.saturating_sub(i * seg));
                    let made = archive.rebuild(steps, seg, &mut spares).and_then(|bytes| {
                        if bytes.len() as u64 == want {
                            Ok(bytes)
                        } else {
                            Err(Error::verification(format!(
                                "segment {i} has {} bytes, not {want}",
                                bytes.len()
                            )))
                        }
                    });
                    let failed = made.is_err();
                    if tx.send(made).is_err() || failed {
                        return;
                    }
                }
            });
            let mut r = PartsRead {
                rx,
                back,
                buf: Vec::new(),
                at: 0,
                err: None,
            };
            let done = match to {
                To::Assemble(a) => {
                    let d = a.file(&e.path, meta_of(e), e.size, &mut r);
                    d.and_then(|d| {
                        if e.sha256.is_some_and(|want| want.ct_eq(&d)) {
                            progress.entry(&e.path);
                            Ok(())
                        } else {
                            Err(Error::verification(format!(
                                "{}: its segments do not match its SHA-256",
                                e.path
                            )))
                        }
                    })
                }
                To::Extract(x) => copy_checked(&mut r, e, &id, &mut Sink::Extract(x), &*progress),
                To::Check => copy_checked(&mut r, e, &id, &mut Sink::Check, &*progress),
                To::Write(w) => copy_checked(&mut r, e, &id, &mut Sink::Write(w), &*progress),
            };
            match r.err.take() {
                Some(err) if done.is_err() => Err(err),
                _ => done,
            }
        })
    }
}

/// (zstd) Bytes `span` of the tar stream of archive `a`, each frame
/// decompressed straight into its place in `out` (emptied first) on the
/// archive's threads: a segment's base is read without a copy. The
/// compressed frames are read one after the other, a few ahead of the
/// threads (never the whole span: memory stays a few frames).
fn zstd_span<S: RangeRead>(
    a: &mut SeekableArchive<S>,
    span: &std::ops::Range<u64>,
    mut out: Vec<u8>,
) -> Result<Vec<u8>> {
    let root = a.root()?;
    let id = a.manifest.backup_id();
    let (Some(first), Some(last)) = (
        frame_holding(&root.frames, span.start),
        frame_holding(&root.frames, span.end - 1),
    ) else {
        return Err(Error::verification(format!(
            "a segment points outside the data of {id}"
        )));
    };
    let frames = root.frames[first..=last].to_vec();
    let base = frames[0].offset;
    let end = frames[frames.len() - 1].offset + frames[frames.len() - 1].size;
    let threads = a.opts.threads.clamp(1, frames.len());
    let len =
        usize::try_from(span.end - span.start).map_err(|_| Error::invalid("segment too large"))?;
    out.clear();
    out.resize(len, 0);
    // Each frame with the part of `out` its bytes of the span go to.
    let mut pieces = Vec::with_capacity(frames.len());
    let mut rest: &mut [u8] = &mut out;
    for f in &frames {
        let from = f.raw_offset.max(span.start);
        let to = (f.raw_offset + f.raw_size).min(span.end);
        let (mine, more) = rest.split_at_mut((to - from) as usize);
        rest = more;
        pieces.push((*f, (from - f.raw_offset) as usize, mine));
    }
    let mut reader = a
        .src
        .read_range(base..end)
        .map_err(Error::io("reading archive", None))?;
    let damaged = |e: std::io::Error| Error::corrupt(format!("a frame of {id} is damaged: {e}"));
    type Job<'o> = (cairn_manifest::Frame, usize, &'o mut [u8], Vec<u8>);
    let (jobs, queue) = std::sync::mpsc::sync_channel::<Job<'_>>(threads);
    let queue = std::sync::Mutex::new(queue);
    // Compressed buffers come back once decompressed, or the first failure
    // does.
    let (done, back) = std::sync::mpsc::channel::<Result<Vec<u8>>>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (queue, done) = (&queue, done.clone());
            scope.spawn(move || {
                let mut dctx = None;
                let mut scratch = Vec::new();
                loop {
                    let job = queue
                        .lock()
                        .map_err(|_| ())
                        .and_then(|q| q.recv().map_err(|_| ()));
                    let Ok((f, from, target, src)) = job else {
                        return;
                    };
                    let made = decompress_piece(&mut dctx, &mut scratch, f, from, target, &src)
                        .map_err(damaged)
                        .and_then(|n| {
                            if n as u64 == f.raw_size {
                                Ok(src)
                            } else {
                                Err(Error::corrupt(format!(
                                    "a frame of {id} holds another size than its root says"
                                )))
                            }
                        });
                    let failed = made.is_err();
                    if done.send(made).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(done);
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut in_flight = 0usize;
        let mut at = base;
        let result = (|| -> Result<()> {
            for (f, from, target) in pieces {
                // At most `threads` frames queued and one being read.
                if in_flight > threads {
                    spare.push(back.recv().map_err(|_| lost())??);
                    in_flight -= 1;
                }
                // The root's frames follow each other; anything between
                // two is passed over.
                let gap = f
                    .offset
                    .checked_sub(at)
                    .ok_or_else(|| Error::corrupt(format!("the frames of {id} overlap")))?;
                std::io::copy(&mut (&mut reader).take(gap), &mut std::io::sink())
                    .map_err(Error::io("reading archive", None))?;
                at = f.offset + f.size;
                let mut src = spare.pop().unwrap_or_default();
                src.clear();
                (&mut reader)
                    .take(f.size)
                    .read_to_end(&mut src)
                    .map_err(Error::io("reading archive", None))?;
                if src.len() as u64 != f.size {
                    return Err(Error::corrupt(format!("{id} ends inside a segment")));
                }
                jobs.send((f, from, target, src)).map_err(|_| lost())?;
                in_flight += 1;
            }
            Ok(())
        })();
        drop(jobs);
        // Every frame's outcome, the first failure first.
        let rest: Result<Vec<_>> = back.iter().take(in_flight).collect();
        result.and(rest.map(drop))
    })?;
    drop(queue);
    Ok(out)
}

/// A decompression thread that stopped without saying why.
fn lost() -> Error {
    Error::invalid("a decompression thread stopped")
}

/// Decompresses frame `f` (`src`) and puts its bytes from `from` on into
/// `target`: straight there when `target` takes the whole frame, through
/// `scratch` otherwise. The frame's decompressed length.
fn decompress_piece(
    dctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    scratch: &mut Vec<u8>,
    f: cairn_manifest::Frame,
    from: usize,
    target: &mut [u8],
    src: &[u8],
) -> std::io::Result<usize> {
    let d = match dctx {
        Some(d) => d,
        None => dctx.insert(zstd::bulk::Decompressor::new()?),
    };
    if target.len() as u64 == f.raw_size {
        return d.decompress_to_buffer(src, target);
    }
    scratch.clear();
    scratch.resize(f.raw_size as usize, 0);
    let n = d.decompress_to_buffer(src, scratch.as_mut_slice())?;
    let piece = scratch
        .get(from..from + target.len())
        .ok_or_else(|| std::io::Error::other("frame shorter than its root says"))?;
    target.copy_from_slice(piece);
    Ok(n)
}

/// Names archive `id` in an error about its data when it is a parent
/// (`holder` is `Some`); this archive's own damage stays what it is.
fn blame_if(holder: Option<u32>, id: BackupId) -> impl Fn(Error) -> Error {
    move |e| match holder {
        Some(_) => blame(id)(e),
        None => e,
    }
}

/// An entry's segments, as a thread rebuilds them, as a reader; what failed
/// is kept in `err` (the reader reports it as an I/O error). Dropping it
/// stops the thread at its next segment.
struct PartsRead {
    rx: std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    back: std::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
    err: Option<Error>,
}

impl std::io::BufRead for PartsRead {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.at == self.buf.len() && self.err.is_none() {
            // The segment read goes back before the next is taken (the
            // thread is gone once every segment is sent: then it is dropped).
            let _ = self.back.send(std::mem::take(&mut self.buf));
            self.at = 0;
            match self.rx.recv() {
                Ok(Ok(bytes)) => self.buf = bytes,
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    self.err = Some(e);
                    return Err(std::io::Error::other(msg));
                }
                // Every segment was read.
                Err(_) => {}
            }
        }
        Ok(&self.buf[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }
}

impl Read for PartsRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_needs_its_base_and_is_small() {
        // Incompressible on its own: a xorshift sequence.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let base: Vec<u8> = (0..500_000)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        let mut data = base.clone();
        for i in (0..data.len()).step_by(100_000) {
            data[i] ^= 0xff;
        }
        let plain = compress(3, None, &data).unwrap();
        let patch = compress(3, Some(&base), &data).unwrap();
        assert!(
            patch.len() * 20 < plain.len(),
            "{} vs {}",
            patch.len(),
            plain.len()
        );
        let out = Vec::new();
        let out = decompress(&patch, Some(&base), 4 << 20, out).unwrap();
        assert_eq!(out, data);
        assert_eq!(decompress(&plain, None, 4 << 20, out).unwrap(), data);
        assert!(decompress(&patch, None, 4 << 20, Vec::new()).is_err());
        let err = decompress(&plain, None, 1000, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1000"), "{err}");
    }
}
