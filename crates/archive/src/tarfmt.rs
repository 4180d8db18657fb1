//! The tar layer: encoding entry headers (POSIX ustar plus PAX extended headers)
//! and a streaming reader that knows the exact offset of every header.
//!
//! `tar::Header` does the field encoding (octal, base-256, checksum). The loops
//! around it are written here because Cairn needs what `tar::Archive` does not
//! offer: the raw offset of each entry for the seek index, a cap on the size of
//! extension headers (`tar::Archive` reads them whole into memory), and data served
//! straight from the decompressor's buffer without another copy.

use std::io::BufRead;

use cairn_manifest::{EntryKind, Mtime, SkipReason};

use crate::error::{Error, Result};

/// Size of a tar block.
pub(crate) const BLOCK: u64 = 512;

const USTAR_SIZE_MAX: u64 = 0o777_7777_7777;
const USTAR_ID_MAX: u64 = 0o777_7777;
const USTAR_NAME_LEN: usize = 100;

/// Rounds `n` up to a whole number of blocks.
pub(crate) fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// What an entry header says.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSpec<'a> {
    pub(crate) path: &'a [u8],
    pub(crate) kind: EntryKind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: Mtime,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) link: Option<&'a [u8]>,
}

/// Appends one PAX record (`"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits).
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn ustar_header(
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(uid);
    h.set_gid(gid);
    h
}

fn set_name_field(field: &mut [u8; USTAR_NAME_LEN], bytes: &[u8]) {
    let n = bytes.len().min(USTAR_NAME_LEN);
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Encodes the header blocks of one entry: a PAX extended header when a value does
/// not fit the ustar fields (long or non-UTF-8 names, sub-second or negative times,
/// large sizes or ids), then the ustar header.
pub(crate) fn encode_header(spec: &HeaderSpec<'_>) -> Vec<u8> {
    let mut pax = Vec::new();
    let mut binary = false;

    let mut name = spec.path.to_vec();
    if spec.kind == EntryKind::Dir {
        name.push(b'/');
    }
    if name.len() > USTAR_NAME_LEN {
        pax_record(&mut pax, "path", spec.path);
        binary |= std::str::from_utf8(spec.path).is_err();
    }
    if let Some(link) = spec.link
        && link.len() > USTAR_NAME_LEN
    {
        pax_record(&mut pax, "linkpath", link);
        binary |= std::str::from_utf8(link).is_err();
    }
    if spec.size > USTAR_SIZE_MAX {
        pax_record(&mut pax, "size", spec.size.to_string().as_bytes());
    }
    if spec.uid > USTAR_ID_MAX {
        pax_record(&mut pax, "uid", spec.uid.to_string().as_bytes());
    }
    if spec.gid > USTAR_ID_MAX {
        pax_record(&mut pax, "gid", spec.gid.to_string().as_bytes());
    }
    let secs = spec.mtime.secs();
    if spec.mtime.nanos() != 0 || secs < 0 || secs as u64 > USTAR_SIZE_MAX {
        pax_record(&mut pax, "mtime", spec.mtime.to_string().as_bytes());
    }
    if binary {
        // Readers must take the names as raw bytes rather than UTF-8 (POSIX pax).
        let mut with_charset = Vec::new();
        pax_record(&mut with_charset, "hdrcharset", b"BINARY");
        with_charset.extend_from_slice(&pax);
        pax = with_charset;
    }

    let mut out = Vec::with_capacity(1024 + padded(pax.len() as u64) as usize);
    if !pax.is_empty() {
        let mut h = ustar_header(tar::EntryType::XHeader, pax.len() as u64, 0o644, 0, 0, 0);
        set_name_field(&mut h.as_old_mut().name, b"@PaxHeader");
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&pax);
        out.resize(
            out.len() + (padded(pax.len() as u64) - pax.len() as u64) as usize,
            0,
        );
    }

    let entry_type = match spec.kind {
        EntryKind::File => tar::EntryType::Regular,
        EntryKind::Dir => tar::EntryType::Directory,
        EntryKind::Symlink => tar::EntryType::Symlink,
        EntryKind::Hardlink => tar::EntryType::Link,
    };
    let clamped_mtime = secs.clamp(0, USTAR_SIZE_MAX as i64) as u64;
    let mut h = ustar_header(
        entry_type,
        spec.size,
        spec.mode,
        clamped_mtime,
        spec.uid,
        spec.gid,
    );
    set_name_field(&mut h.as_old_mut().name, &name);
    if let Some(link) = spec.link {
        set_name_field(&mut h.as_old_mut().linkname, link);
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

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

/// Reads a numeric time field: octal, or GNU base-256, which may be negative (GNU
/// tar writes times before 1970 that way).
fn signed_time_field(field: &[u8; 12]) -> Option<i64> {
    if field[0] & 0x80 != 0 {
        let negative = field[0] == 0xff;
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 && !negative { b & 0x7f } else { b };
            v = (v << 8) | i128::from(b);
        }
        return i64::try_from(v).ok();
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    i64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// One PAX record: key and value, raw.
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits PAX extended header data into (key, value) records.
///
/// Records are length-prefixed (`"<len> <key>=<value>\n"`), so values may hold any
/// byte, newlines included; splitting on newlines (as `tar::PaxExtensions` does)
/// would break on such file names.
pub(crate) fn pax_records(
    mut data: &[u8],
) -> std::result::Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("malformed PAX record length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or("malformed PAX record length")?;
        if len <= space + 2 || len > data.len() {
            return Err("PAX record length out of range");
        }
        let record = &data[space + 1..len];
        let body = record
            .strip_suffix(b"\n")
            .ok_or("PAX record without its newline")?;
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        out.push((&body[..eq], &body[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
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

/// Checks a header's checksum (unsigned sum, or the signed sum some old tars wrote).
fn check_checksum(block: &[u8; 512]) -> std::result::Result<(), &'static str> {
    let field = &block[148..156];
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .ok_or("bad header checksum field")?;
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::from(stored) == signed {
        Ok(())
    } else {
        Err("header checksum mismatch")
    }
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

/// An `io::BufRead` adapter is all the reader needs; this one is for tests.
#[cfg(test)]
pub(crate) fn reader_over(bytes: &[u8]) -> TarReader<std::io::BufReader<&[u8]>> {
    TarReader::new(std::io::BufReader::new(bytes), 0, 1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &[u8]) -> HeaderSpec<'_> {
        HeaderSpec {
            path,
            kind: EntryKind::File,
            size: 3,
            mode: 0o644,
            mtime: Mtime::new(1_700_000_000, 0),
            uid: 1000,
            gid: 1000,
            link: None,
        }
    }

    fn one_entry(spec: &HeaderSpec<'_>, data: &[u8]) -> Vec<u8> {
        let mut out = encode_header(spec);
        out.extend_from_slice(data);
        out.resize(
            out.len() + (padded(data.len() as u64) as usize - data.len()),
            0,
        );
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn pax_record_lengths_are_self_consistent() {
        for value_len in [0usize, 1, 5, 90, 94, 95, 96, 995, 996, 997, 10_000] {
            let mut out = Vec::new();
            let value = vec![b'v'; value_len];
            pax_record(&mut out, "path", &value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value {value_len}"
            );
        }
    }

    #[test]
    fn short_names_need_no_pax() {
        let h = encode_header(&spec(b"data/a.txt"));
        assert_eq!(h.len(), 512);
    }

    #[test]
    fn long_odd_names_and_times_round_trip() {
        let mut long = b"data/".to_vec();
        long.extend(std::iter::repeat_n(b'x', 200));
        long.extend_from_slice(b"/\xff\xfe name");
        let mut s = spec(&long);
        s.mtime = Mtime::new(-5, 250_000_000);
        s.uid = 5_000_000;
        let bytes = one_entry(&s, b"abc");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("hdrcharset=BINARY"));
        let mut r = reader_over(&bytes);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long);
        assert_eq!(e.mtime, Mtime::new(-5, 250_000_000));
        assert_eq!(e.uid, 5_000_000);
        assert_eq!(e.kind, RawKind::Entry(EntryKind::File));
        assert_eq!(read_small(&mut r, 3, 10, "data").unwrap(), b"abc");
        assert!(r.next_entry().unwrap().is_none());
        r.check_trailing().unwrap();
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut data = Vec::new();
        pax_record(&mut data, "path", b"data/a\nb");
        pax_record(&mut data, "mtime", b"1.5");
        let recs = pax_records(&data).unwrap();
        assert_eq!(
            recs,
            vec![
                (&b"path"[..], &b"data/a\nb"[..]),
                (&b"mtime"[..], &b"1.5"[..])
            ]
        );
        for bad in [&b"5 a=b"[..], b"99 a=b\n", b"x a=b\n", b"6 ab\nx", b"3 \n"] {
            assert!(
                pax_records(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn time_fields() {
        let mut f = [0u8; 12];
        f[..11].copy_from_slice(b"14000000000");
        assert_eq!(signed_time_field(&f), Some(0o14000000000));
        // GNU base-256: -2 as a 96-bit two's complement number.
        let mut neg = [0xffu8; 12];
        neg[11] = 0xfe;
        assert_eq!(signed_time_field(&neg), Some(-2));
        let mut pos = [0u8; 12];
        pos[0] = 0x80;
        pos[11] = 5;
        assert_eq!(signed_time_field(&pos), Some(5));
    }

    #[test]
    fn huge_sizes_use_pax() {
        let mut s = spec(b"data/big");
        s.size = 10 * 1024 * 1024 * 1024;
        let h = encode_header(&s);
        assert!(String::from_utf8_lossy(&h).contains("size=10737418240"));
    }

    #[test]
    fn checksum_is_checked() {
        let mut bytes = one_entry(&spec(b"data/a"), b"abc");
        bytes[0] ^= 1;
        let err = reader_over(&bytes).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncation_is_reported() {
        let bytes = one_entry(&spec(b"data/a"), b"abc");
        let read_all = |cut: usize| {
            let mut r = reader_over(&bytes[..cut]);
            while r.next_entry()?.is_some() {
                r.skip_data()?;
            }
            Ok::<_, Error>(())
        };
        for cut in [100, 512, 514, 1000, 1024] {
            assert!(read_all(cut).is_err(), "cut at {cut} accepted");
        }
        // Like GNU tar, input that stops after the first of the two end blocks is
        // accepted; compressed archives detect truncation in their frames anyway.
        read_all(1536).unwrap();
    }

    #[test]
    fn oversized_extension_is_a_limit_error() {
        let mut long = b"data/".to_vec();
        long.extend(std::iter::repeat_n(b'y', 2000));
        let bytes = one_entry(&spec(&long), b"abc");
        let mut r = TarReader::new(std::io::BufReader::new(&bytes[..]), 0, 1000);
        assert_eq!(r.next_entry().unwrap_err().kind(), crate::ErrorKind::Limit);
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut bytes = one_entry(&spec(b"data/a"), b"abc");
        bytes.extend_from_slice(b"garbage");
        let mut r = reader_over(&bytes);
        r.next_entry().unwrap();
        assert!(r.next_entry().unwrap().is_none());
        assert!(r.check_trailing().is_err());
    }
}
