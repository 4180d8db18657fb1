//! Decompression: one `BufRead` over zstd, gzip or plain tar input.
//!
//! zstd input is split into frames by walking frame and block headers (RFC 8878),
//! which costs nothing next to decompression. Frames that record their size and
//! are at most [`crate::MAX_FRAME_SIZE`] (every frame Cairn writes) are decompressed
//! in parallel by a pool of threads and handed out in order; other frames (a
//! foreign `.tar.zst` is usually one huge frame) are decompressed inline as a
//! stream, with bounded memory either way. gzip input is decompressed as one
//! stream of members.
//!
//! Every compressed byte consumed is counted and, on request, hashed, so a full
//! read of an archive also yields its size and SHA-256.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use cairn_integrity::{Hasher, Sha256Digest};
use cairn_manifest::Frame;
use zstd::stream::raw::Operation as _;

use crate::codec::{FOOTER_SKIPPABLE_MAGIC, Footer, Format, ZSTD_MAGIC, detect};
use crate::error::{Error, Result};
use crate::options::MAX_FRAME_SIZE;

const SOURCE_BUF: usize = 1 << 20;
const ZSTD_BLOCK_MAX: u64 = 128 * 1024;
const MAX_SKIPPABLE: u64 = 1 << 20;

/// The compressed input: buffered, counted and optionally hashed.
pub(crate) struct Source<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    consumed: u64,
    hasher: Option<Hasher>,
    eof: bool,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(inner: R, hash: bool) -> Self {
        Source {
            inner,
            buf: vec![0; SOURCE_BUF],
            start: 0,
            end: 0,
            consumed: 0,
            hasher: hash.then(Hasher::new),
            eof: false,
        }
    }

    /// Stops hashing (only before anything was consumed).
    pub(crate) fn stop_hashing(&mut self) {
        if self.consumed == 0 {
            self.hasher = None;
        }
    }

    /// Compressed bytes consumed so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// At least `n` buffered bytes, or fewer at end of input.
    pub(crate) fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        debug_assert!(n <= self.buf.len());
        if self.end - self.start < n && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n {
                let got = match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if got == 0 {
                    self.eof = true;
                    break;
                }
                self.end += got;
            }
        }
        let avail = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + avail])
    }

    /// Appends exactly `n` bytes to `out`: first what is buffered, then straight
    /// from the inner reader (hashed as it comes), without a copy through the
    /// buffer.
    fn take_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let buffered =
            usize::try_from(n).map_or(self.end - self.start, |n| n.min(self.end - self.start));
        if buffered > 0 {
            out.extend_from_slice(&self.buf[self.start..self.start + buffered]);
            self.consume(buffered);
            n -= buffered as u64;
        }
        if n >= (SOURCE_BUF / 4) as u64 && !self.eof {
            let at = out.len();
            let want =
                usize::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
            out.resize(at + want, 0);
            let mut got = 0;
            while got < want {
                match self.inner.read(&mut out[at + got..]) {
                    Ok(0) => {
                        self.eof = true;
                        out.truncate(at + got);
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        out.truncate(at + got);
                        return Err(e);
                    }
                }
            }
            if let Some(h) = &mut self.hasher {
                h.update(&out[at..]);
            }
            self.consumed += n;
            return Ok(());
        }
        while n > 0 {
            let buf = self.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let k = usize::try_from(n).map_or(buf.len(), |n| n.min(buf.len()));
            out.extend_from_slice(&buf[..k]);
            self.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads the rest of the input (hashing it), returning how much there was.
    pub(crate) fn drain(&mut self) -> io::Result<u64> {
        let mut n = 0;
        loop {
            let k = self.fill_buf()?.len();
            if k == 0 {
                return Ok(n);
            }
            self.consume(k);
            n += k as u64;
        }
    }

    /// The digest of everything consumed (if hashing) and its length.
    pub(crate) fn summary(&self) -> (Option<Sha256Digest>, u64) {
        (self.hasher.clone().map(Hasher::finalize), self.consumed)
    }
}

impl<R: Read> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end && !self.eof {
            self.start = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.end = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        if let Some(h) = &mut self.hasher {
            h.update(&self.buf[self.start..self.start + n]);
        }
        self.start += n;
        self.consumed += n as u64;
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

/// `Read::read` for a type whose buffer is its `BufRead` side.
fn read_buffered(r: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let buf = r.fill_buf()?;
    let n = buf.len().min(out.len());
    out[..n].copy_from_slice(&buf[..n]);
    r.consume(n);
    Ok(n)
}

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

struct DecodePool {
    jobs: Option<mpsc::SyncSender<DecodeJob>>,
    workers: Vec<JoinHandle<()>>,
}

impl DecodePool {
    fn new(threads: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<DecodeJob>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("cairn-decompress-{i}"))
                    .spawn(move || {
                        let mut dec = None;
                        loop {
                            let job = {
                                let guard = match rx.lock() {
                                    Ok(g) => g,
                                    Err(p) => p.into_inner(),
                                };
                                match guard.recv() {
                                    Ok(j) => j,
                                    Err(_) => return,
                                }
                            };
                            let mut out = job.out;
                            out.clear();
                            out.reserve(job.size);
                            let result = (|| {
                                let d = match &mut dec {
                                    Some(d) => d,
                                    None => dec.insert(zstd::bulk::Decompressor::new()?),
                                };
                                d.decompress_to_buffer(&job.src[..], &mut out)
                            })();
                            let _ = job.reply.send(DecodeDone {
                                src: job.src,
                                out,
                                result,
                            });
                        }
                    })?,
            );
        }
        Ok(DecodePool {
            jobs: Some(tx),
            workers,
        })
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
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
    pool: DecodePool,
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
    spare_src: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
}

impl<R: Read> ZstdFrames<R> {
    pub(crate) fn new(src: Source<R>, threads: usize) -> Result<Self> {
        Ok(ZstdFrames {
            src,
            pool: DecodePool::new(threads)
                .map_err(Error::io("starting decompression threads", None))?,
            queue: VecDeque::new(),
            max_pending: threads + 1,
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
            spare_src: Vec::new(),
            spare_out: Vec::new(),
        })
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
        let sent = self.pool.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent {
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

/// A decompressed view of an archive stream.
pub(crate) enum Decoder<R: Read> {
    Zstd(Box<ZstdFrames<R>>),
    Gzip(Box<io::BufReader<flate2::bufread::MultiGzDecoder<Source<R>>>>),
    Tar(Source<R>),
}

/// What is known about the compressed stream once it has been read to the end.
#[derive(Debug, Clone)]
pub(crate) struct StreamSummary {
    pub(crate) size: u64,
    pub(crate) sha256: Option<Sha256Digest>,
    pub(crate) footer: Option<Footer>,
    /// Whether the footer is the very last thing in the stream.
    pub(crate) footer_last: bool,
    /// Skippable frames that are not Cairn's footer (zstd only).
    pub(crate) foreign_frames: u64,
    /// Frames seen (zstd only).
    pub(crate) frames: Vec<Frame>,
}

impl<R: Read> Decoder<R> {
    /// Detects the format from the first bytes and wraps `r`.
    pub(crate) fn new(r: R, hash: bool, threads: usize) -> Result<Self> {
        let mut src = Source::new(r, hash);
        let head = src.peek(512).map_err(Error::io("reading archive", None))?;
        Ok(match detect(head)? {
            Format::Zstd => Decoder::Zstd(Box::new(ZstdFrames::new(src, threads.max(1))?)),
            Format::Gzip => Decoder::Gzip(Box::new(io::BufReader::with_capacity(
                256 * 1024,
                flate2::bufread::MultiGzDecoder::new(src),
            ))),
            Format::Tar => Decoder::Tar(src),
        })
    }

    /// Stops hashing the compressed stream (only effective before reading).
    pub(crate) fn stop_hashing(&mut self) {
        match self {
            Decoder::Zstd(z) => z.src.stop_hashing(),
            Decoder::Gzip(g) => g.get_mut().get_mut().stop_hashing(),
            Decoder::Tar(t) => t.stop_hashing(),
        }
    }

    /// The detected format.
    pub(crate) fn format(&self) -> Format {
        match self {
            Decoder::Zstd(_) => Format::Zstd,
            Decoder::Gzip(_) => Format::Gzip,
            Decoder::Tar(_) => Format::Tar,
        }
    }

    /// Reads whatever is left of the compressed stream (there must be nothing but
    /// compressed zeros, empty members and the footer) and reports on it.
    pub(crate) fn finish(&mut self) -> Result<StreamSummary> {
        loop {
            let buf = self
                .fill_buf()
                .map_err(|e| Error::from_io("reading archive", None, e))?;
            if buf.is_empty() {
                break;
            }
            if buf.iter().any(|&b| b != 0) {
                return Err(Error::corrupt("data after the end-of-archive marker"));
            }
            let n = buf.len();
            self.consume(n);
        }
        Ok(match self {
            Decoder::Zstd(z) => {
                let (sha256, size) = z.src.summary();
                StreamSummary {
                    size,
                    sha256,
                    footer: z.footer,
                    footer_last: z.footer.is_some() && z.footer_end == size,
                    foreign_frames: z.foreign_frames,
                    frames: std::mem::take(&mut z.frames),
                }
            }
            Decoder::Gzip(g) => {
                let footer = g
                    .get_ref()
                    .header()
                    .and_then(|h| h.extra())
                    .and_then(Footer::from_gzip_extra);
                let src = g.get_mut().get_mut();
                src.drain().map_err(Error::io("reading archive", None))?;
                let (sha256, size) = src.summary();
                StreamSummary {
                    size,
                    sha256,
                    footer,
                    // The last member's header carried it.
                    footer_last: footer.is_some(),
                    foreign_frames: 0,
                    frames: Vec::new(),
                }
            }
            Decoder::Tar(s) => {
                let (sha256, size) = s.summary();
                StreamSummary {
                    size,
                    sha256,
                    footer: None,
                    footer_last: false,
                    foreign_frames: 0,
                    frames: Vec::new(),
                }
            }
        })
    }
}

impl<R: Read> BufRead for Decoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Decoder::Zstd(z) => z.fill_buf(),
            Decoder::Gzip(g) => g.fill_buf(),
            Decoder::Tar(t) => t.fill_buf(),
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            Decoder::Zstd(z) => z.consume(n),
            Decoder::Gzip(g) => g.consume(n),
            Decoder::Tar(t) => t.consume(n),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_testkit::RandomReader;

    fn framed(data: &[u8], frame: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(frame) {
            let mut c = zstd::bulk::Compressor::new(3).unwrap();
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .unwrap();
            out.extend_from_slice(&c.compress(chunk).unwrap());
        }
        out
    }

    fn read_all<R: Read>(d: &mut Decoder<R>) -> Vec<u8> {
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn parallel_frames_decode_in_order_through_short_reads() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 97) as u8).collect();
        let bytes = framed(&data, 100_000);
        for (seed, threads) in [(1, 1), (2, 2), (3, 4)] {
            let r = RandomReader::new(&bytes[..], seed, 5000);
            let mut d = Decoder::new(r, true, threads).unwrap();
            assert_eq!(read_all(&mut d), data);
            let s = d.finish().unwrap();
            assert_eq!(s.size, bytes.len() as u64);
            assert_eq!(s.sha256, Some(Sha256Digest::of(&bytes)));
            assert_eq!(s.frames.len(), 30);
        }
    }

    #[test]
    fn streamed_frames_without_size_decode_inline() {
        // The zstd command line and streaming encoders write one frame without a
        // content size; then a big frame with a size larger than any parallel frame.
        let data: Vec<u8> = (0..500_000u32).map(|i| (i % 89) as u8).collect();
        let mut bytes = Vec::new();
        {
            let mut enc = zstd::stream::write::Encoder::new(&mut bytes, 3).unwrap();
            io::Write::write_all(&mut enc, &data).unwrap();
            enc.finish().unwrap();
        }
        bytes.extend_from_slice(&framed(&data, 200_000));
        let mut d = Decoder::new(RandomReader::new(&bytes[..], 9, 777), false, 2).unwrap();
        let out = read_all(&mut d);
        assert_eq!(out.len(), 1_000_000);
        assert_eq!(&out[..500_000], &data[..]);
        assert_eq!(&out[500_000..], &data[..]);
        let s = d.finish().unwrap();
        assert_eq!(s.frames.len(), 4);
        assert_eq!(s.frames[0].raw_size, 500_000);
    }

    #[test]
    fn damage_is_reported_not_hidden() {
        let data: Vec<u8> = (0..400_000u32).map(|i| (i % 31) as u8).collect();
        let bytes = framed(&data, 100_000);
        for at in [0usize, 4, 10, bytes.len() / 2, bytes.len() - 2] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x55;
            let outcome = Decoder::new(&bad[..], false, 2).and_then(|mut d| {
                let mut sink = Vec::new();
                d.read_to_end(&mut sink)
                    .map_err(|e| Error::from_io("reading", None, e))?;
                if sink == data {
                    return Err(Error::corrupt("undetected"));
                }
                Ok(())
            });
            assert!(outcome.is_err(), "damage at {at} went unnoticed");
        }
        for cut in [1usize, 5, 100, bytes.len() - 1] {
            let outcome = Decoder::new(&bytes[..cut], false, 2).and_then(|mut d| {
                let mut sink = Vec::new();
                d.read_to_end(&mut sink)
                    .map_err(|e| Error::from_io("reading", None, e))
            });
            assert!(outcome.is_err(), "truncation at {cut} went unnoticed");
        }
    }

    #[test]
    fn gzip_members_and_plain_tar() {
        let data = b"hello gzip world".repeat(1000);
        let mut gz = Vec::new();
        for chunk in data.chunks(3000) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            io::Write::write_all(&mut e, chunk).unwrap();
            gz.extend_from_slice(&e.finish().unwrap());
        }
        let mut d = Decoder::new(RandomReader::new(&gz[..], 4, 100), true, 2).unwrap();
        assert_eq!(d.format(), Format::Gzip);
        assert_eq!(read_all(&mut d), data);
        assert_eq!(d.finish().unwrap().size, gz.len() as u64);

        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        let mut d = Decoder::new(&tar[..], false, 1).unwrap();
        assert_eq!(d.format(), Format::Tar);
        assert_eq!(read_all(&mut d), tar);
    }
}
