//! Decompression: one `BufRead` over zstd ([`ZstdFrames`]), gzip (one stream
//! of members) or plain tar input, detected from its first bytes.

use std::io::{self, BufRead, Read};

use cairn_integrity::Sha256Digest;
use cairn_manifest::Frame;

use crate::codec::{Footer, Format, detect};
use crate::error::{Error, Result};
use crate::source::{Source, read_buffered};
use crate::zstd_frames::ZstdFrames;

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
    /// Where the blob frames of segments were (zstd only), adjacent ones
    /// merged.
    pub(crate) blobs: Vec<std::ops::Range<u64>>,
}

impl<R: Read> Decoder<R> {
    /// Detects the format from the first bytes and wraps `r`; zstd frames
    /// are decompressed on `threads` threads.
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
            Decoder::Zstd(z) => z.source_mut().stop_hashing(),
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
            Decoder::Zstd(z) => z.summary(),
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
                    blobs: Vec::new(),
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
                    blobs: Vec::new(),
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
