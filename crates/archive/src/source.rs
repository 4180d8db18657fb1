//! The compressed input of a read: buffered, counted and, on request, hashed,
//! so that a full read of an archive also yields its size and SHA-256.

use std::io::{self, BufRead, Read};

use cairn_integrity::{Hasher, Sha256Digest};

const SOURCE_BUF: usize = 1 << 20;

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
    pub(crate) fn take_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> io::Result<()> {
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
pub(crate) fn read_buffered(r: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let buf = r.fill_buf()?;
    let n = buf.len().min(out.len());
    out[..n].copy_from_slice(&buf[..n]);
    r.consume(n);
    Ok(n)
}
