//! zstd input split into frames by walking frame and block headers (RFC 8878),
//! which costs nothing next to decompression. Frames that record their size
//! and are at most [`crate::MAX_FRAME_SIZE`] (every frame Cairn writes) are
//! decompressed in parallel by a [`Pool`] and handed out in order; other
//! frames (a foreign `.tar.zst` is usually one huge frame) are decompressed
//! inline as a stream, with bounded memory either way.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::mpsc;

use cairn_manifest::Frame;
use zstd::stream::raw::Operation as _;

use crate::codec::{FOOTER_SKIPPABLE_MAGIC, Footer, ZSTD_MAGIC};
use crate::decode::StreamSummary;
use crate::error::{Error, Result};
use crate::options::MAX_FRAME_SIZE;
use crate::pool::Pool;
use crate::segments::BLOB_MAGIC;
use crate::source::{Source, read_buffered};

const ZSTD_BLOCK_MAX: u64 = 128 * 1024;
const MAX_SKIPPABLE: u64 = 1 << 20;

/// A parsed zstd frame header.
#[derive(Debug)]
struct FrameHead {
    header_len: usize,
    content_size: Option<u64>,
    checksum: bool,
}

fn parse_frame_head(b: &[u8], offset: u64) -> Result<FrameHead> {
    let bad = |what: &str| Error::corrupt(format!("{what} in zstd frame at offset {offset}"));
    if b.len() < 6 {
        return Err(bad("truncated header"));
    }
    let fhd = b[4];
    if fhd & 0x08 != 0 {
        return Err(bad("reserved bit set"));
    }
    let single_segment = fhd & 0x20 != 0;
    let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let window_len = usize::from(!single_segment);
    let header_len = 5 + window_len + dict_len + fcs_len;
    if b.len() < header_len {
        return Err(bad("truncated header"));
    }
    let dict_at = 5 + window_len;
    if b[dict_at..dict_at + dict_len].iter().any(|&x| x != 0) {
        return Err(Error::Unsupported {
            reason: format!("zstd frame at offset {offset} needs a dictionary"),
        });
    }
    let fcs_at = dict_at + dict_len;
    let mut fcs = [0u8; 8];
    fcs[..fcs_len].copy_from_slice(&b[fcs_at..fcs_at + fcs_len]);
    let value = u64::from_le_bytes(fcs);
    let content_size = match fcs_len {
        0 => None,
        2 => Some(value + 256),
        _ => Some(value),
    };
    Ok(FrameHead {
        header_len,
        content_size,
        checksum: fhd & 0x04 != 0,
    })
}

struct DecodeJob {
    src: Vec<u8>,
    out: Vec<u8>,
    size: usize,
    reply: mpsc::SyncSender<DecodeDone>,
}

struct DecodeDone {
    src: Vec<u8>,
    out: Vec<u8>,
    result: io::Result<usize>,
}

/// Decompresses one frame into the job's buffer, with the thread's own
/// decompression context (made on its first frame).
fn decompress(dec: &mut Option<zstd::bulk::Decompressor<'static>>, job: DecodeJob) {
    let mut out = job.out;
    out.clear();
    out.reserve(job.size);
    let result = (|| {
        let d = match dec {
            Some(d) => d,
            None => dec.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress_to_buffer(&job.src[..], &mut out)
    })();
    // The reader may have been dropped after an error; nothing to report then.
    let _ = job.reply.send(DecodeDone {
        src: job.src,
        out,
        result,
    });
}

struct Pending {
    rx: mpsc::Receiver<DecodeDone>,
    offset: u64,
    size: u64,
    raw_size: u64,
}

struct Inline {
    dec: zstd::stream::raw::Decoder<'static>,
    offset: u64,
    raw_size: u64,
    header: Vec<u8>,
    header_pos: usize,
}

/// zstd frames, decompressed in parallel where possible.
pub(crate) struct ZstdFrames<R> {
    src: Source<R>,
    pool: Pool<DecodeJob>,
    queue: VecDeque<Pending>,
    max_pending: usize,
    cur: Vec<u8>,
    cur_pos: usize,
    inline: Option<Inline>,
    big_next: Option<(Vec<u8>, u64)>,
    src_done: bool,
    frames: Vec<Frame>,
    raw_pos: u64,
    footer: Option<Footer>,
    footer_end: u64,
    foreign_frames: u64,
    blobs: Vec<std::ops::Range<u64>>,
    spare_src: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
}

impl<R: Read> ZstdFrames<R> {
    pub(crate) fn new(src: Source<R>, threads: usize) -> Result<Self> {
        let pool = Pool::new("cairn-decompress", threads, threads, || None, decompress)
            .map_err(Error::io("starting decompression threads", None))?;
        Ok(ZstdFrames {
            src,
            max_pending: threads + 1,
            pool,
            queue: VecDeque::new(),
            cur: Vec::new(),
            cur_pos: 0,
            inline: None,
            big_next: None,
            src_done: false,
            frames: Vec::new(),
            raw_pos: 0,
            footer: None,
            footer_end: 0,
            foreign_frames: 0,
            blobs: Vec::new(),
            spare_src: Vec::new(),
            spare_out: Vec::new(),
        })
    }

    /// The compressed input.
    pub(crate) fn source_mut(&mut self) -> &mut Source<R> {
        &mut self.src
    }

    /// What the stream held, once it has been read to its end (the frames
    /// seen are handed over).
    pub(crate) fn summary(&mut self) -> StreamSummary {
        let (sha256, size) = self.src.summary();
        StreamSummary {
            size,
            sha256,
            footer: self.footer,
            footer_last: self.footer.is_some() && self.footer_end == size,
            foreign_frames: self.foreign_frames,
            frames: std::mem::take(&mut self.frames),
            blobs: std::mem::take(&mut self.blobs),
        }
    }

    /// Reads frame headers and queues frames until enough are in flight, the input
    /// ends, or a frame must be decoded inline.
    fn refill(&mut self) -> Result<()> {
        while self.queue.len() < self.max_pending && self.big_next.is_none() && !self.src_done {
            let offset = self.src.consumed();
            let head = self
                .src
                .peek(18)
                .map_err(Error::io("reading archive", None))?;
            if head.is_empty() {
                self.src_done = true;
                break;
            }
            if head.len() < 4 {
                return Err(Error::corrupt(format!(
                    "{} stray bytes at the end of the zstd stream (offset {offset})",
                    head.len()
                )));
            }
            if head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18] {
                self.skip_skippable(offset)?;
                continue;
            }
            if head[..4] != ZSTD_MAGIC {
                return Err(Error::corrupt(format!(
                    "not a zstd frame at offset {offset} (damaged or not an archive)"
                )));
            }
            let fh = parse_frame_head(head, offset)?;
            match fh.content_size {
                Some(size) if size <= MAX_FRAME_SIZE as u64 => {
                    self.queue_frame(&fh, size, offset)?;
                }
                _ => {
                    let mut header = Vec::with_capacity(fh.header_len);
                    self.src
                        .take_into(fh.header_len as u64, &mut header)
                        .map_err(|e| Error::from_io("reading zstd frame", None, e))?;
                    self.big_next = Some((header, offset));
                }
            }
        }
        Ok(())
    }

    fn skip_skippable(&mut self, offset: u64) -> Result<()> {
        let head = self
            .src
            .peek(8)
            .map_err(Error::io("reading archive", None))?;
        if head.len() < 8 {
            return Err(Error::corrupt(format!(
                "truncated skippable frame at offset {offset}"
            )));
        }
        let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if head[..4] == BLOB_MAGIC {
            // A segment's blob: passed over, its place checked against the
            // root once it is read.
            let mut left = 8 + len;
            let mut scratch = Vec::new();
            while left > 0 {
                let n = left.min(1 << 20);
                scratch.clear();
                self.src
                    .take_into(n, &mut scratch)
                    .map_err(|e| Error::from_io("reading skippable frame", None, e))?;
                if scratch.len() as u64 != n {
                    return Err(Error::corrupt(format!(
                        "truncated skippable frame at offset {offset}"
                    )));
                }
                left -= n;
            }
            let end = offset + 8 + len;
            match self.blobs.last_mut() {
                Some(r) if r.end == offset => r.end = end,
                _ => self.blobs.push(offset..end),
            }
            return Ok(());
        }
        if len > MAX_SKIPPABLE {
            return Err(Error::corrupt(format!(
                "skippable frame of {len} bytes at offset {offset}"
            )));
        }
        let mut bytes = Vec::with_capacity(8 + len as usize);
        self.src
            .take_into(8 + len, &mut bytes)
            .map_err(|e| Error::from_io("reading skippable frame", None, e))?;
        if bytes[..4] == FOOTER_SKIPPABLE_MAGIC && Footer::is_footer_payload(&bytes[8..]) {
            if self.footer.is_some() {
                return Err(Error::corrupt(format!(
                    "a second footer at offset {offset}"
                )));
            }
            self.footer = Some(Footer::from_payload(&bytes[8..])?);
            self.footer_end = self.src.consumed();
        } else {
            self.foreign_frames += 1;
        }
        Ok(())
    }

    fn queue_frame(&mut self, fh: &FrameHead, size: u64, offset: u64) -> Result<()> {
        let bound = zstd::zstd_safe::compress_bound(size as usize) as u64 + 64;
        let mut frame = self.spare_src.pop().unwrap_or_default();
        frame.clear();
        let eof = |e| Error::from_io("reading zstd frame", None, e);
        self.src
            .take_into(fh.header_len as u64, &mut frame)
            .map_err(eof)?;
        loop {
            let h = self
                .src
                .peek(3)
                .map_err(Error::io("reading archive", None))?;
            if h.len() < 3 {
                return Err(Error::corrupt(format!(
                    "zstd frame at offset {offset} is truncated"
                )));
            }
            let b = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let (last, kind, block) = (b & 1 == 1, (b >> 1) & 3, u64::from(b >> 3));
            let body = match kind {
                0 | 2 => block,
                1 => 1,
                _ => {
                    return Err(Error::corrupt(format!(
                        "reserved block type in zstd frame at offset {offset}"
                    )));
                }
            };
            if block > ZSTD_BLOCK_MAX || frame.len() as u64 + 3 + body > bound {
                return Err(Error::corrupt(format!(
                    "zstd frame at offset {offset} is larger than its declared content"
                )));
            }
            self.src.take_into(3 + body, &mut frame).map_err(eof)?;
            if last {
                break;
            }
        }
        if fh.checksum {
            self.src.take_into(4, &mut frame).map_err(eof)?;
        }
        let csize = frame.len() as u64;
        let (reply, rx) = mpsc::sync_channel(1);
        let job = DecodeJob {
            src: frame,
            out: self.spare_out.pop().unwrap_or_default(),
            size: size as usize,
            reply,
        };
        if !self.pool.submit(job) {
            return Err(Error::io("decompressing", None)(io::Error::other(
                "decompression threads stopped",
            )));
        }
        self.queue.push_back(Pending {
            rx,
            offset,
            size: csize,
            raw_size: size,
        });
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<bool> {
        loop {
            if let Some(inline) = &mut self.inline {
                let produced = Self::step_inline(&mut self.src, inline, &mut self.cur)?;
                self.cur_pos = 0;
                if produced.1 {
                    let inline = self
                        .inline
                        .take()
                        .ok_or_else(|| Error::corrupt("lost frame"))?;
                    self.frames.push(Frame {
                        offset: inline.offset,
                        size: self.src.consumed() - inline.offset,
                        raw_offset: self.raw_pos,
                        raw_size: inline.raw_size,
                    });
                    self.raw_pos += inline.raw_size;
                }
                if produced.0 > 0 {
                    return Ok(true);
                }
                continue;
            }
            self.refill()?;
            if let Some(p) = self.queue.pop_front() {
                let done = p.rx.recv().map_err(|_| {
                    Error::io("decompressing", None)(io::Error::other(
                        "a decompression thread died",
                    ))
                })?;
                let n = done.result.map_err(|e| {
                    Error::corrupt(format!("zstd frame at offset {} is damaged: {e}", p.offset))
                })?;
                if n as u64 != p.raw_size {
                    return Err(Error::corrupt(format!(
                        "zstd frame at offset {} holds {n} bytes, not the {} it declares",
                        p.offset, p.raw_size
                    )));
                }
                self.spare_src.push(done.src);
                let old = std::mem::replace(&mut self.cur, done.out);
                self.spare_out.push(old);
                self.cur_pos = 0;
                self.frames.push(Frame {
                    offset: p.offset,
                    size: p.size,
                    raw_offset: self.raw_pos,
                    raw_size: p.raw_size,
                });
                self.raw_pos += p.raw_size;
                self.refill()?;
                if n > 0 {
                    return Ok(true);
                }
                continue;
            }
            if let Some((header, offset)) = self.big_next.take() {
                let mut dec = zstd::stream::raw::Decoder::new()
                    .map_err(Error::io("starting zstd decoder", None))?;
                dec.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27))
                    .map_err(Error::io("starting zstd decoder", None))?;
                self.inline = Some(Inline {
                    dec,
                    offset,
                    raw_size: 0,
                    header,
                    header_pos: 0,
                });
                continue;
            }
            return Ok(false);
        }
    }

    /// Decodes some of an inline frame into `out`. Returns (bytes produced, frame done).
    fn step_inline(
        src: &mut Source<R>,
        inline: &mut Inline,
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool)> {
        out.resize(256 * 1024, 0);
        let damaged = |e: io::Error| {
            Error::corrupt(format!(
                "zstd frame at offset {} is damaged: {e}",
                inline.offset
            ))
        };
        let status = if inline.header_pos < inline.header.len() {
            let s = inline
                .dec
                .run_on_buffers(&inline.header[inline.header_pos..], out)
                .map_err(damaged)?;
            inline.header_pos += s.bytes_read;
            s
        } else {
            let input = src.fill_buf().map_err(Error::io("reading archive", None))?;
            if input.is_empty() {
                return Err(Error::corrupt(format!(
                    "zstd frame at offset {} is truncated",
                    inline.offset
                )));
            }
            let s = inline.dec.run_on_buffers(input, out).map_err(damaged)?;
            src.consume(s.bytes_read);
            s
        };
        out.truncate(status.bytes_written);
        inline.raw_size += status.bytes_written as u64;
        let done = status.remaining == 0 && inline.header_pos >= inline.header.len();
        Ok((status.bytes_written, done))
    }
}

impl<R: Read> BufRead for ZstdFrames<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur_pos >= self.cur.len() {
            if !self.next_chunk().map_err(io::Error::from)? {
                return Ok(&[]);
            }
        }
        Ok(&self.cur[self.cur_pos..])
    }

    fn consume(&mut self, n: usize) {
        self.cur_pos = (self.cur_pos + n).min(self.cur.len());
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}
