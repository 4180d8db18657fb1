//! Cutting the tar stream into independent frames and compressing them in
//! parallel, with bounded memory.
//!
//! The caller's thread fills a frame buffer (reading files straight into it) and
//! hands full frames to `threads − 1` compression threads through a bounded queue,
//! compressing a frame itself whenever they are all busy. The compressed frames are
//! written to the output in order on the caller's thread, which also hashes them.
//! At most `3 × (threads − 1) + 2` frames are alive at once, so memory stays near
//! that many times `2 × frame_size` whatever the archive's size.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use cairn_integrity::{Hasher, Sha256Digest};
use cairn_manifest::{Codec, Frame};

use crate::error::{Error, Result};
use crate::pool::Pool;

/// A frame for a pool thread to compress.
struct CompressJob {
    codec: Codec,
    level: i32,
    raw: Vec<u8>,
    len: usize,
    out: Vec<u8>,
    reply: mpsc::SyncSender<Done>,
}

struct Done {
    raw: Vec<u8>,
    out: Vec<u8>,
    result: io::Result<()>,
}

/// A zstd compression context and the level it was made for.
type Compressor = (i32, zstd::bulk::Compressor<'static>);

/// Compresses one frame into `out` (cleared first), with `zstd`'s context
/// (made, or made again, for `level`).
fn compress(
    zstd: &mut Option<Compressor>,
    codec: Codec,
    level: i32,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    match codec {
        Codec::Zstd => {
            let c = match zstd {
                Some((made_for, c)) if *made_for == level => c,
                _ => {
                    let mut c = zstd::bulk::Compressor::new(level)?;
                    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
                    &mut zstd.insert((level, c)).1
                }
            };
            out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            c.compress_to_buffer(raw, out)?;
        }
        Codec::Gzip => {
            let level = u32::try_from(level).unwrap_or(6);
            let mut enc =
                flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::new(level));
            enc.write_all(raw)?;
            *out = enc.finish()?;
        }
    }
    Ok(())
}

/// Compresses one frame on a pool thread and sends it back.
fn compress_job(zstd: &mut Option<Compressor>, job: CompressJob) {
    let mut out = job.out;
    let result = compress(zstd, job.codec, job.level, &job.raw[..job.len], &mut out);
    // The writer may have been dropped after an error; nothing to report then.
    let _ = job.reply.send(Done {
        raw: job.raw,
        out,
        result,
    });
}

/// Frames queued per worker: enough that a worker never runs dry while the
/// caller's thread compresses a frame of its own or reads many small files.
const QUEUE_PER_WORKER: usize = 3;

/// Where an entry starts: the index of its frame and its offset inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Locator {
    pub(crate) frame: usize,
    pub(crate) pos: u64,
}

/// A frame on its way to the output, in order.
enum Slot {
    /// Being compressed by a worker.
    InFlight(mpsc::Receiver<Done>, usize),
    /// Compressed by the caller's thread.
    Ready(Done, usize),
}

/// Writes a tar stream as independent compressed frames.
///
/// With `threads` = N, N − 1 worker threads compress frames and the caller's
/// thread compresses one itself whenever every worker is busy, so no more than N
/// threads ever compete for the CPU (oversubscribing a 2-core machine costs a
/// quarter of zstd's speed in cache thrashing).
pub(crate) struct FrameWriter<W: Write> {
    out: W,
    hasher: Hasher,
    written: u64,
    frame_size: usize,
    codec: Codec,
    level: i32,
    /// The frame being filled: always `frame_size` long, `filled` bytes used.
    cur: Vec<u8>,
    filled: usize,
    submitted: usize,
    pending: VecDeque<Slot>,
    in_flight: usize,
    max_in_flight: usize,
    frames: Vec<Frame>,
    spare_raw: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    failed: bool,
    inline: Option<Compressor>,
    pool: Pool<CompressJob>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer compressing on `threads − 1` threads and the caller's.
    pub(crate) fn new(
        out: W,
        codec: Codec,
        level: i32,
        frame_size: usize,
        threads: usize,
    ) -> Result<Self> {
        let workers = threads.saturating_sub(1);
        // Room for every frame the writer may hand out: submitting never
        // waits, the writer compresses a frame itself instead.
        let max_in_flight = QUEUE_PER_WORKER * workers;
        let pool = Pool::new(
            "cairn-compress",
            workers,
            max_in_flight,
            || None,
            compress_job,
        )
        .map_err(Error::io("starting compression threads", None))?;
        Ok(FrameWriter {
            out,
            hasher: Hasher::new(),
            written: 0,
            frame_size,
            codec,
            level,
            cur: vec![0; frame_size],
            filled: 0,
            submitted: 0,
            pending: VecDeque::new(),
            in_flight: 0,
            max_in_flight,
            frames: Vec::new(),
            spare_raw: Vec::new(),
            spare_out: Vec::new(),
            failed: false,
            inline: None,
            pool,
        })
    }

    /// Where the next byte will land.
    pub(crate) fn locate(&self) -> Locator {
        Locator {
            frame: self.submitted,
            pos: self.filled as u64,
        }
    }

    /// Prepares for an entry of `raw_len` bytes: an entry that does not fit in what
    /// is left of the current frame starts a new one. Small entries are thus never
    /// split, and a large entry never shares its first frame with small ones (which
    /// would make reading them fetch part of it).
    pub(crate) fn begin_entry(&mut self, raw_len: u64) -> Result<()> {
        if self.filled > 0 && self.filled as u64 + raw_len > self.frame_size as u64 {
            self.cut()?;
        }
        Ok(())
    }

    /// Appends bytes to the uncompressed stream.
    pub(crate) fn write_raw(&mut self, mut data: &[u8]) -> Result<()> {
        self.check()?;
        while !data.is_empty() {
            let n = (self.frame_size - self.filled).min(data.len());
            self.cur[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == self.frame_size {
                self.cut()?;
            }
        }
        Ok(())
    }

    /// Reads up to `len` bytes from `r` straight into the stream, hashing them with
    /// `hasher`. Returns how many were read: fewer than `len` only at end of input.
    pub(crate) fn fill_from(
        &mut self,
        r: &mut dyn Read,
        len: u64,
        hasher: &mut Hasher,
    ) -> Result<std::result::Result<u64, io::Error>> {
        self.check()?;
        let mut done = 0u64;
        while done < len {
            let room = self.frame_size - self.filled;
            let want = usize::try_from(len - done).map_or(room, |l| l.min(room));
            let slot = &mut self.cur[self.filled..self.filled + want];
            let n = match r.read(slot) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Err(e)),
            };
            hasher.update(&slot[..n]);
            self.filled += n;
            done += n as u64;
            if self.filled == self.frame_size {
                self.cut()?;
            }
        }
        Ok(Ok(done))
    }

    /// Closes the current frame, if it holds anything.
    pub(crate) fn cut(&mut self) -> Result<()> {
        self.check()?;
        if self.filled == 0 {
            return Ok(());
        }
        // Write out whatever is finished, without waiting.
        self.collect(false)?;
        let fresh = self
            .spare_raw
            .pop()
            .unwrap_or_else(|| vec![0; self.frame_size]);
        let raw = std::mem::replace(&mut self.cur, fresh);
        let len = std::mem::take(&mut self.filled);
        let mut out = self.spare_out.pop().unwrap_or_default();
        if self.in_flight < self.max_in_flight {
            let (reply, done) = mpsc::sync_channel(1);
            let job = CompressJob {
                codec: self.codec,
                level: self.level,
                raw,
                len,
                out,
                reply,
            };
            if !self.pool.submit(job) {
                self.failed = true;
                return Err(Error::io("compressing", None)(io::Error::other(
                    "compression threads stopped",
                )));
            }
            self.pending.push_back(Slot::InFlight(done, len));
            self.in_flight += 1;
        } else {
            // Every worker is busy: compress here rather than wait.
            let result = compress(
                &mut self.inline,
                self.codec,
                self.level,
                &raw[..len],
                &mut out,
            );
            self.pending
                .push_back(Slot::Ready(Done { raw, out, result }, len));
        }
        self.submitted += 1;
        // Bound memory: at most one frame beyond those in flight waits to be
        // written.
        while self.pending.len() > self.max_in_flight + 1 {
            self.collect_front(true)?;
        }
        Ok(())
    }

    /// Writes finished frames from the front of the queue; with `wait`, all of them.
    fn collect(&mut self, wait: bool) -> Result<()> {
        while !self.pending.is_empty() {
            if !self.collect_front(wait)? {
                break;
            }
        }
        Ok(())
    }

    /// Writes the front frame if it is finished (or, with `wait`, once it is).
    /// Returns whether it was written.
    fn collect_front(&mut self, wait: bool) -> Result<bool> {
        let (done, raw_len) = match self.pending.front() {
            None => return Ok(false),
            Some(Slot::Ready(..)) => match self.pending.pop_front() {
                Some(Slot::Ready(done, len)) => (done, len),
                _ => return Ok(false),
            },
            Some(Slot::InFlight(rx, len)) => {
                let len = *len;
                let received = if wait {
                    rx.recv().map_err(|_| ())
                } else {
                    match rx.try_recv() {
                        Ok(d) => Ok(d),
                        Err(mpsc::TryRecvError::Empty) => return Ok(false),
                        Err(mpsc::TryRecvError::Disconnected) => Err(()),
                    }
                };
                let done = received.map_err(|()| {
                    self.failed = true;
                    Error::io("compressing", None)(io::Error::other("a compression thread died"))
                })?;
                self.pending.pop_front();
                self.in_flight -= 1;
                (done, len)
            }
        };
        if let Err(e) = done.result {
            self.failed = true;
            return Err(Error::io("compressing", None)(e));
        }
        let raw_offset = self.frames.last().map_or(0, |f| f.raw_offset + f.raw_size);
        self.emit(&done.out)?;
        self.frames.push(Frame {
            offset: self.written - done.out.len() as u64,
            size: done.out.len() as u64,
            raw_offset,
            raw_size: raw_len as u64,
        });
        self.spare_raw.push(done.raw);
        self.spare_out.push(done.out);
        Ok(true)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.out.write_all(bytes) {
            self.failed = true;
            return Err(Error::io("writing archive", None)(e));
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Cuts the current frame and waits until every frame is written. Returns the
    /// frames written so far.
    pub(crate) fn drain(&mut self) -> Result<&[Frame]> {
        self.cut()?;
        self.collect(true)?;
        Ok(&self.frames)
    }

    /// How many frames were cut so far: the index the next frame will have.
    pub(crate) fn frames_submitted(&self) -> usize {
        self.submitted
    }

    /// Compressed bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Writes bytes to the output as they are, after every pending frame.
    pub(crate) fn write_verbatim(&mut self, bytes: &[u8]) -> Result<()> {
        self.drain()?;
        self.emit(bytes)
    }

    /// Flushes and returns the output, the archive's SHA-256 and its size.
    pub(crate) fn finish(mut self) -> Result<(W, Sha256Digest, u64)> {
        self.drain()?;
        self.out
            .flush()
            .map_err(Error::io("flushing archive", None))?;
        let FrameWriter {
            out,
            hasher,
            written,
            ..
        } = self;
        Ok((out, hasher.finalize(), written))
    }

    fn check(&self) -> Result<()> {
        if self.failed {
            return Err(Error::invalid("archive writer failed earlier"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decompress_all(codec: Codec, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match codec {
            Codec::Zstd => {
                zstd::stream::read::Decoder::new(bytes)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Codec::Gzip => {
                flate2::read::MultiGzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn frames_concatenate_to_the_input() {
        for codec in [Codec::Zstd, Codec::Gzip] {
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let mut fw = FrameWriter::new(Vec::new(), codec, 3, 65536, 3).unwrap();
            fw.write_raw(&data[..100_000]).unwrap();
            let mut h = Hasher::new();
            let n = fw
                .fill_from(&mut &data[100_000..], 900_000, &mut h)
                .unwrap()
                .unwrap();
            assert_eq!(n, 900_000);
            assert_eq!(h.finalize(), Sha256Digest::of(&data[100_000..]));
            let frames = fw.drain().unwrap().to_vec();
            assert_eq!(frames.len(), 1_000_000usize.div_ceil(65536));
            assert!(frames.iter().all(|f| f.raw_size <= 65536));
            let (out, digest, len) = fw.finish().unwrap();
            assert_eq!(len, out.len() as u64);
            assert_eq!(digest, Sha256Digest::of(&out));
            assert_eq!(decompress_all(codec, &out), data);
            // Every frame decompresses on its own.
            for f in &frames {
                let part =
                    decompress_all(codec, &out[f.offset as usize..(f.offset + f.size) as usize]);
                assert_eq!(
                    part,
                    &data[f.raw_offset as usize..(f.raw_offset + f.raw_size) as usize]
                );
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 13) as u8).collect();
        let run = |threads| {
            let mut fw = FrameWriter::new(Vec::new(), Codec::Zstd, 3, 65536, threads).unwrap();
            fw.write_raw(&data).unwrap();
            fw.finish().unwrap().0
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn small_entries_are_not_split() {
        let mut fw = FrameWriter::new(Vec::new(), Codec::Zstd, 3, 65536, 1).unwrap();
        fw.write_raw(&vec![1u8; 60_000]).unwrap();
        fw.begin_entry(10_000).unwrap();
        assert_eq!(fw.locate(), Locator { frame: 1, pos: 0 });
        // A large entry starts a frame of its own.
        fw.write_raw(&[2u8; 100]).unwrap();
        fw.begin_entry(1_000_000).unwrap();
        assert_eq!(fw.locate(), Locator { frame: 2, pos: 0 });
    }

    #[test]
    fn write_errors_are_reported_and_sticky() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut fw = FrameWriter::new(Full, Codec::Zstd, 3, 65536, 1).unwrap();
        fw.write_raw(&[0u8; 1000]).unwrap();
        let err = fw.drain().unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(fw.write_raw(b"more").is_err());
    }
}
