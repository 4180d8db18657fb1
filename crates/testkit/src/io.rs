//! Readers and writers that behave like slow or hostile I/O.

use std::io::{self, Read, Write};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A reader that returns a random number of bytes per call (sometimes one), the way
/// pipes, sockets and decompressors do. Every parser must be fed through it.
#[derive(Debug)]
pub struct RandomReader<R> {
    inner: R,
    rng: SmallRng,
    max: usize,
}

impl<R: Read> RandomReader<R> {
    /// Wraps `inner`; reads return between 1 and `max` bytes (`max` ≥ 1).
    pub fn new(inner: R, seed: u64, max: usize) -> Self {
        RandomReader {
            inner,
            rng: SmallRng::seed_from_u64(seed),
            max: max.max(1),
        }
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for RandomReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Mostly tiny reads, sometimes large ones, now and then exactly one byte.
        let want = match self.rng.random_range(0..10) {
            0 => 1,
            1..=6 => self.rng.random_range(1..=self.max.min(64)),
            _ => self.rng.random_range(1..=self.max),
        };
        let n = want.min(buf.len());
        self.inner.read(&mut buf[..n])
    }
}

/// A writer that accepts a random number of bytes per call.
#[derive(Debug)]
pub struct ShortWriter<W> {
    inner: W,
    rng: SmallRng,
    max: usize,
}

impl<W: Write> ShortWriter<W> {
    /// Wraps `inner`; writes accept between 1 and `max` bytes (`max` ≥ 1).
    pub fn new(inner: W, seed: u64, max: usize) -> Self {
        ShortWriter {
            inner,
            rng: SmallRng::seed_from_u64(seed),
            max: max.max(1),
        }
    }

    /// Returns the inner writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for ShortWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.rng.random_range(1..=self.max).min(buf.len());
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails with `kind` after handing out `limit` bytes.
#[derive(Debug)]
pub struct FailingReader<R> {
    inner: R,
    left: u64,
    kind: io::ErrorKind,
}

impl<R: Read> FailingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, limit: u64, kind: io::ErrorKind) -> Self {
        FailingReader {
            inner,
            left: limit,
            kind,
        }
    }
}

impl<R: Read> Read for FailingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(self.kind, "injected failure"));
        }
        let cap = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// `len` incompressible, deterministic bytes (xorshift64 from `seed`, which
/// must not be 0): data that compression cannot shrink, for tests that need
/// large archives or slow jobs.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = vec![0u8; len];
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_reader_delivers_everything() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        RandomReader::new(&data[..], 7, 333)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn short_writer_delivers_everything() {
        let mut w = ShortWriter::new(Vec::new(), 3, 5);
        w.write_all(b"hello, short writes").unwrap();
        assert_eq!(w.into_inner(), b"hello, short writes");
    }

    #[test]
    fn failing_reader_fails_at_limit() {
        let mut r = FailingReader::new(&[1u8; 100][..], 10, io::ErrorKind::ConnectionReset);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(out.len(), 10);
    }
}
