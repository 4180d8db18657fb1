//! What a stream reader keeps until the manifest at the end of the stream can
//! be checked: the entries it observed, and a format 2 archive's pages, each
//! in an unnamed temporary file so that memory does not grow with them.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_integrity::Sha256Digest;
use cairn_manifest::{EntryKind, EntryOrder, EntryPath, LinkTarget, Mtime, OrderError};

use crate::error::{Error, Result};
use crate::verify::Observed;

pub(crate) fn spill_file(dir: Option<&Path>) -> Result<File> {
    match dir {
        Some(d) => tempfile::tempfile_in(d),
        None => tempfile::tempfile(),
    }
    .map_err(Error::io(
        "creating a temporary file",
        dir.map(Path::to_owned),
    ))
}

fn spill_error(e: io::Error) -> Error {
    Error::io("using a temporary file", None)(e)
}

/// Reads a file from the start with positioned reads, leaving the handle's own
/// offset (used by its writer) alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The entries a stream reader observed, in order, one compact record each.
pub(crate) struct ObservedLog {
    file: BufWriter<File>,
    len: u64,
    bytes: u64,
    /// The record being encoded, reused.
    rec: Vec<u8>,
}

impl ObservedLog {
    pub(crate) fn new(dir: Option<&Path>) -> Result<Self> {
        Ok(ObservedLog {
            file: BufWriter::with_capacity(256 * 1024, spill_file(dir)?),
            len: 0,
            bytes: 0,
            rec: Vec::with_capacity(512),
        })
    }

    /// How many entries were logged.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn push(&mut self, o: &Observed) -> Result<()> {
        let mut rec = std::mem::take(&mut self.rec);
        rec.clear();
        rec.extend_from_slice(&o.raw_offset.to_le_bytes());
        rec.push(kind_code(o.kind));
        rec.extend_from_slice(&o.size.to_le_bytes());
        rec.extend_from_slice(&o.mode.to_le_bytes());
        rec.extend_from_slice(&o.mtime.secs().to_le_bytes());
        rec.extend_from_slice(&o.mtime.nanos().to_le_bytes());
        rec.extend_from_slice(&o.uid.to_le_bytes());
        rec.extend_from_slice(&o.gid.to_le_bytes());
        rec.extend_from_slice(o.header.as_bytes());
        match &o.sha256 {
            Some(d) => {
                rec.push(1);
                rec.extend_from_slice(d.as_bytes());
            }
            None => rec.push(0),
        }
        put_bytes(&mut rec, o.path.as_bytes());
        match &o.link {
            Some(l) => {
                rec.push(1);
                put_bytes(&mut rec, l.as_bytes());
            }
            None => rec.push(0),
        }
        self.file.write_all(&rec).map_err(spill_error)?;
        self.len += 1;
        self.bytes += rec.len() as u64;
        self.rec = rec;
        Ok(())
    }

    /// The logged entries from the first, while the log stays writable.
    pub(crate) fn iter(&mut self) -> Result<ObservedIter<'_>> {
        self.file.flush().map_err(spill_error)?;
        Ok(ObservedIter {
            r: BufReader::with_capacity(
                256 * 1024,
                ReadAt {
                    file: self.file.get_ref(),
                    pos: 0,
                    end: self.bytes,
                },
            ),
            left: self.len,
        })
    }
}

fn put_bytes(rec: &mut Vec<u8>, b: &[u8]) {
    rec.extend_from_slice(&(b.len() as u32).to_le_bytes());
    rec.extend_from_slice(b);
}

fn kind_code(k: EntryKind) -> u8 {
    match k {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
        EntryKind::Hardlink => 3,
    }
}

/// Reads an [`ObservedLog`] back.
pub(crate) struct ObservedIter<'a> {
    r: BufReader<ReadAt<'a>>,
    left: u64,
}

impl ObservedIter<'_> {
    pub(crate) fn next(&mut self) -> Result<Option<Observed>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let r = &mut self.r;
        let raw_offset = u64::from_le_bytes(take(r)?);
        let kind = match take::<1>(r)?[0] {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            _ => EntryKind::Hardlink,
        };
        let size = u64::from_le_bytes(take(r)?);
        let mode = u32::from_le_bytes(take(r)?);
        let secs = i64::from_le_bytes(take(r)?);
        let nanos = u32::from_le_bytes(take(r)?);
        let uid = u64::from_le_bytes(take(r)?);
        let gid = u64::from_le_bytes(take(r)?);
        let header = Sha256Digest::from_bytes(take(r)?);
        let sha256 = match take::<1>(r)?[0] {
            0 => None,
            _ => Some(Sha256Digest::from_bytes(take(r)?)),
        };
        let path = EntryPath::from_vec(take_vec(r)?)?;
        let link = match take::<1>(r)?[0] {
            0 => None,
            _ => Some(LinkTarget::parse(&take_vec(r)?)?),
        };
        Ok(Some(Observed {
            raw_offset,
            path,
            kind,
            size,
            mode,
            mtime: Mtime::new(secs, nanos),
            uid,
            gid,
            link,
            sha256,
            header,
        }))
    }
}

fn take<const N: usize>(r: &mut impl Read) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(spill_error)?;
    Ok(b)
}

fn take_vec(r: &mut impl Read) -> Result<Vec<u8>> {
    let n = u32::from_le_bytes(take(r)?) as usize;
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).map_err(spill_error)?;
    Ok(v)
}

/// The pages of a format 2 archive as a stream delivers them, before its root
/// is known: their bytes in a temporary file, and the digest of each one's tar
/// header.
pub(crate) struct PageLog {
    file: BufWriter<File>,
    written: u64,
    pages: Vec<(u64, u64, Sha256Digest)>,
}

impl PageLog {
    pub(crate) fn new(dir: Option<&Path>) -> Result<Self> {
        Ok(PageLog {
            file: BufWriter::new(spill_file(dir)?),
            written: 0,
            pages: Vec::new(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }

    pub(crate) fn push(&mut self, bytes: &[u8], header: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(spill_error)?;
        self.pages
            .push((self.written, bytes.len() as u64, Sha256Digest::of(header)));
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Page `i`'s bytes and the digest of its tar header.
    pub(crate) fn get(&mut self, i: usize) -> Result<(Vec<u8>, Sha256Digest)> {
        self.file.flush().map_err(spill_error)?;
        let (at, len, header) = self.pages[i];
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.file
            .get_ref()
            .read_exact_at(&mut buf, at)
            .map_err(spill_error)?;
        Ok((buf, header))
    }
}

/// Checks the next entry's place with `order`. An order that was canonical
/// so far and is not any more becomes one that remembers every path, fed the
/// entries so far by `replay`; then the entry is checked again.
///
/// # Errors
///
/// What `replay` returns; the order's verdict is the `Ok` value.
pub(crate) fn check_order(
    order: &mut EntryOrder,
    path: &[u8],
    kind: EntryKind,
    replay: impl FnOnce(&mut EntryOrder) -> Result<()>,
) -> Result<std::result::Result<(), OrderError>> {
    let verdict = order.check(path, kind);
    if order.is_canonical()
        && matches!(
            verdict,
            Err(OrderError::DuplicateOrOutOfOrder | OrderError::ComponentApart)
        )
    {
        let mut any = EntryOrder::any();
        replay(&mut any)?;
        *order = any;
        return Ok(order.check(path, kind));
    }
    Ok(verdict)
}

/// Feeds one entry of a replay to `order`: the entries were accepted once, so
/// a refusal means they changed under us.
pub(crate) fn replay_one(order: &mut EntryOrder, path: &[u8], kind: EntryKind) -> Result<()> {
    order
        .check(path, kind)
        .map_err(|_| Error::invalid("the entries read so far contradict themselves"))
}
