//! A streaming tar reader that knows the offset of every header, caps the
//! size of extension headers, and serves entry data from the caller's buffer.

use std::io::BufRead;

use cairn_manifest::{EntryKind, Mtime, SkipReason};

use super::header::{check_checksum, signed_time_field};
use super::pax::pax_records;
use super::{BLOCK, padded};
use crate::error::{Error, Result};

/// What kind of entry a tar header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawKind {
    Entry(EntryKind),
    Special(SkipReason),
}

/// One entry as read from a tar stream, before any trust is placed in it.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    /// Offset of its first header block in the uncompressed stream.
    pub(crate) start: u64,
    /// Path bytes as stored (trailing `/` removed).
    pub(crate) path: Vec<u8>,
    pub(crate) kind: RawKind,
    /// Bytes of data following the header.
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: Mtime,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) link: Option<Vec<u8>>,
}

/// Reads tar entries from a `BufRead`, tracking offsets.
pub(crate) struct TarReader<R> {
    r: R,
    pos: u64,
    remaining: u64,
    padding: u64,
    max_extension: u64,
    ended: bool,
    /// Cairn archives: padding and end marker exactly as written, nothing after.
    strict: bool,
    capturing: bool,
    captured: Vec<u8>,
}

fn corrupt_at(pos: u64, what: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{what} (tar offset {pos})"))
}

impl<R: BufRead> TarReader<R> {
    /// Reads from `r`, whose first byte is at uncompressed offset `base`.
    pub(crate) fn new(r: R, base: u64, max_extension: u64) -> Self {
        TarReader {
            r,
            pos: base,
            remaining: 0,
            padding: 0,
            max_extension,
            ended: false,
            strict: false,
            capturing: false,
            captured: Vec::new(),
        }
    }

    /// Holds the stream to what Cairn writes: zero padding, a complete end marker
    /// and nothing after it.
    pub(crate) fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Every header block of the last entry (extension headers included), as read.
    pub(crate) fn header_bytes(&self) -> &[u8] {
        &self.captured
    }

    /// Reads one block; `None` at a clean end of input.
    fn read_block(&mut self) -> Result<Option<[u8; 512]>> {
        let mut block = [0u8; 512];
        let mut got = 0;
        while got < 512 {
            let buf = self
                .r
                .fill_buf()
                .map_err(|e| Error::from_io("reading tar header", None, e))?;
            if buf.is_empty() {
                if got == 0 {
                    return Ok(None);
                }
                return Err(corrupt_at(self.pos, "truncated tar header"));
            }
            let n = buf.len().min(512 - got);
            block[got..got + n].copy_from_slice(&buf[..n]);
            self.r.consume(n);
            got += n;
        }
        self.pos += BLOCK;
        if self.capturing {
            self.captured.extend_from_slice(&block);
        }
        Ok(Some(block))
    }

    /// Reads the whole data of an extension header (bounded).
    fn read_extension(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > self.max_extension {
            return Err(Error::Limit {
                what: format!("{what} of {size} bytes at tar offset {}", self.pos),
                limit: self.max_extension,
            });
        }
        self.remaining = size;
        self.padding = padded(size) - size;
        let out = self.read_rest()?;
        if self.capturing {
            self.captured.extend_from_slice(&out);
        }
        self.skip_padding()?;
        Ok(out)
    }

    /// Reads a GNU long name (`L`) or link name (`K`) entry into `slot`.
    fn read_long_name(
        &mut self,
        slot: &mut Option<Vec<u8>>,
        size: u64,
        start: u64,
        what: &str,
    ) -> Result<()> {
        if slot.is_some() {
            return Err(corrupt_at(start, format!("two {what}s for one entry")));
        }
        let mut v = self.read_extension(size, what)?;
        while v.last() == Some(&0) {
            v.pop();
        }
        *slot = Some(v);
        Ok(())
    }

    /// The next entry, or `None` after the end-of-archive marker.
    pub(crate) fn next_entry(&mut self) -> Result<Option<RawEntry>> {
        if self.ended {
            return Ok(None);
        }
        self.skip_data()?;
        let start = self.pos;
        self.captured.clear();
        self.capturing = true;
        let entry = self.next_entry_inner(start);
        self.capturing = false;
        entry
    }

    fn next_entry_inner(&mut self, start: u64) -> Result<Option<RawEntry>> {
        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(block) = self.read_block()? else {
                return Err(corrupt_at(
                    self.pos,
                    "archive ends without its end-of-archive marker (truncated?)",
                ));
            };
            if block.iter().all(|&b| b == 0) {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return Err(corrupt_at(
                        self.pos,
                        "extension header with no entry after it",
                    ));
                }
                // The marker is two zero blocks; tolerate input that stops after one,
                // except in a Cairn archive.
                match self.read_block()? {
                    Some(second) if second.iter().any(|&b| b != 0) => {
                        return Err(corrupt_at(self.pos, "a lone zero block inside the archive"));
                    }
                    None if self.strict => {
                        return Err(corrupt_at(self.pos, "incomplete end-of-archive marker"));
                    }
                    _ => {}
                }
                self.ended = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            check_checksum(&block).map_err(|e| corrupt_at(start, e))?;
            let size = header
                .entry_size()
                .map_err(|e| corrupt_at(start, format!("bad size field: {e}")))?;
            match header.entry_type().as_byte() {
                b'x' | b'X' => {
                    if pax.is_some() {
                        return Err(corrupt_at(start, "two PAX headers for one entry"));
                    }
                    pax = Some(self.read_extension(size, "PAX header")?);
                }
                b'g' => {
                    // Global PAX headers carry nothing Cairn applies; they are bounded
                    // and skipped.
                    self.read_extension(size, "global PAX header")?;
                }
                b'L' => self.read_long_name(&mut long_name, size, start, "GNU long name")?,
                b'K' => self.read_long_name(&mut long_link, size, start, "GNU long link name")?,
                b'S' => {
                    return Err(Error::Unsupported {
                        reason: format!("GNU sparse file at tar offset {start}"),
                    });
                }
                b'V' | b'M' | b'N' => {
                    return Err(Error::Unsupported {
                        reason: format!(
                            "tar entry type {:?} (volume label or multi-volume) at tar offset {start}",
                            header.entry_type().as_byte() as char
                        ),
                    });
                }
                typ => {
                    let entry = self.build_entry(
                        start,
                        header,
                        typ,
                        size,
                        pax.as_deref(),
                        long_name,
                        long_link,
                    )?;
                    self.remaining = entry.size;
                    self.padding = padded(entry.size) - entry.size;
                    return Ok(Some(entry));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build_entry(
        &self,
        start: u64,
        header: &tar::Header,
        typ: u8,
        size: u64,
        pax: Option<&[u8]>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<RawEntry> {
        let bad = |what: &str| corrupt_at(start, what);
        let mut path = long_name.unwrap_or_else(|| header.path_bytes().into_owned());
        let mut link =
            long_link.or_else(|| header.link_name_bytes().map(std::borrow::Cow::into_owned));
        let mut size = size;
        let mut uid = header.uid().map_err(|_| bad("bad uid field"))?;
        let mut gid = header.gid().map_err(|_| bad("bad gid field"))?;
        let mut mtime = Mtime::new(
            signed_time_field(&header.as_old().mtime).ok_or_else(|| bad("bad mtime field"))?,
            0,
        );
        if let Some(pax) = pax {
            for (key, value) in pax_records(pax).map_err(&bad)? {
                let number = || -> Result<u64> {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("malformed number in PAX record"))
                };
                match key {
                    b"path" => path = value.to_vec(),
                    b"linkpath" => link = Some(value.to_vec()),
                    b"size" => size = number()?,
                    b"uid" => uid = number()?,
                    b"gid" => gid = number()?,
                    b"mtime" => {
                        mtime = std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad("malformed PAX mtime"))?;
                    }
                    k if k.starts_with(b"GNU.sparse.") => {
                        return Err(Error::Unsupported {
                            reason: format!("PAX sparse file at tar offset {start}"),
                        });
                    }
                    _ => {} // atime, ctime, uname, gname, hdrcharset, xattrs, comments
                }
            }
        }
        let mode = header.mode().map_err(|_| bad("bad mode field"))? & 0o7777;
        let ends_with_slash = path.last() == Some(&b'/');
        while path.len() > 1 && path.last() == Some(&b'/') {
            path.pop();
        }
        let kind = match typ {
            b'0' | 0 | b'7' if ends_with_slash => RawKind::Entry(EntryKind::Dir),
            b'0' | 0 | b'7' => RawKind::Entry(EntryKind::File),
            b'5' => RawKind::Entry(EntryKind::Dir),
            b'2' => RawKind::Entry(EntryKind::Symlink),
            b'1' => RawKind::Entry(EntryKind::Hardlink),
            b'3' => RawKind::Special(SkipReason::CharDevice),
            b'4' => RawKind::Special(SkipReason::BlockDevice),
            b'6' => RawKind::Special(SkipReason::Fifo),
            _ => RawKind::Special(SkipReason::Unsupported),
        };
        if !matches!(
            kind,
            RawKind::Entry(EntryKind::Symlink | EntryKind::Hardlink)
        ) {
            link = None;
        }
        Ok(RawEntry {
            start,
            path,
            kind,
            size,
            mode,
            mtime,
            uid,
            gid,
            link,
        })
    }

    /// What is left of the current entry's data, in memory (callers bound its size).
    fn read_rest(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.remaining).unwrap_or(0));
        loop {
            let chunk = self.data()?;
            if chunk.is_empty() {
                return Ok(out);
            }
            let n = chunk.len();
            out.extend_from_slice(chunk);
            self.consume(n);
        }
    }

    /// The next chunk of the current entry's data, empty when it is all read.
    pub(crate) fn data(&mut self) -> Result<&[u8]> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        available(&mut self.r, self.pos, self.remaining, "entry data")
    }

    /// Marks `n` bytes of data (from [`TarReader::data`]) as read.
    pub(crate) fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.remaining -= n as u64;
        self.pos += n as u64;
    }

    /// Skips what is left of the current entry's data and its padding.
    pub(crate) fn skip_data(&mut self) -> Result<()> {
        loop {
            let n = self.data()?.len();
            if n == 0 {
                break;
            }
            self.consume(n);
        }
        self.skip_padding()
    }

    fn skip_padding(&mut self) -> Result<()> {
        while self.padding > 0 {
            let buf = available(&mut self.r, self.pos, self.padding, "entry padding")?;
            let n = buf.len();
            if self.strict && buf.iter().any(|&b| b != 0) {
                return Err(corrupt_at(self.pos, "padding is not zero"));
            }
            if self.capturing {
                self.captured.extend_from_slice(buf);
            }
            self.r.consume(n);
            self.padding -= n as u64;
            self.pos += n as u64;
        }
        Ok(())
    }

    /// After the end marker: checks that nothing but zero bytes follows.
    pub(crate) fn check_trailing(&mut self) -> Result<()> {
        loop {
            let pos = self.pos;
            let buf = self
                .r
                .fill_buf()
                .map_err(|e| Error::from_io("reading after the end of the archive", None, e))?;
            if buf.is_empty() {
                return Ok(());
            }
            if self.strict || buf.iter().any(|&b| b != 0) {
                return Err(corrupt_at(pos, "data after the end-of-archive marker"));
            }
            let n = buf.len();
            self.r.consume(n);
            self.pos += n as u64;
        }
    }
}

/// Up to `limit` buffered bytes of `r` (at least one), or a truncation error
/// naming `what` at tar offset `pos`.
fn available<'a, R: BufRead>(r: &'a mut R, pos: u64, limit: u64, what: &str) -> Result<&'a [u8]> {
    let buf = r
        .fill_buf()
        .map_err(|e| Error::from_io("reading tar stream", None, e))?;
    if buf.is_empty() {
        return Err(corrupt_at(pos, format!("{what} is truncated")));
    }
    let n = usize::try_from(limit).map_or(buf.len(), |l| l.min(buf.len()));
    Ok(&buf[..n])
}

/// Reads everything left of an entry's data into a vector, bounded by `limit`.
pub(crate) fn read_small<R: BufRead>(
    t: &mut TarReader<R>,
    size: u64,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if size > limit {
        return Err(Error::Limit {
            what: format!("{what} of {size} bytes"),
            limit,
        });
    }
    t.read_rest()
}
