//! A tree on disk as a plain tar stream, with Cairn's header encoding
//! (PAX where ustar falls short: long names, times before 1970 or with
//! nanoseconds, large sizes): what a single folder out of a backup is sent
//! as once it is unpacked and checked.

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cairn_manifest::{EntryKind, Mtime};

use crate::error::{Error, Result};
use crate::tar::{BLOCK, HeaderSpec, encode_header, padded};

fn mtime_of(m: &std::fs::Metadata) -> Mtime {
    let nanos = u32::try_from(m.mtime_nsec()).unwrap_or(0).min(999_999_999);
    Mtime::new(m.mtime(), nanos)
}

/// Writes the file, link or folder at `src` and everything under it as
/// tar entries named `name` and `name/…` (in name order), each with its
/// mode, modification time (to the nanosecond), owner and, for a symbolic
/// link, its target (a file met again through another of its hard links
/// is a hard link to the first path met); then the two zero blocks that end a tar. Other file
/// types are left out. Returns the bytes written.
///
/// # Errors
///
/// [`Error::Io`] reading `src` or writing `w`; [`Error::InvalidInput`] for a
/// file that changed size while it was read.
pub fn write_tar_tree<W: Write>(src: &Path, name: &[u8], w: &mut W) -> Result<u64> {
    let mut written = 0u64;
    let mut put = |w: &mut W, bytes: &[u8]| -> Result<()> {
        w.write_all(bytes)
            .map_err(Error::io("writing the tar", None))?;
        written += bytes.len() as u64;
        Ok(())
    };
    // The first path of each file with several links: the others are hard
    // links to it, as in the backup.
    let mut first_link: std::collections::HashMap<(u64, u64), Vec<u8>> = Default::default();
    let walk = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name();
    for e in walk {
        let e = e.map_err(|e| Error::io("reading", src.to_owned())(io::Error::other(e)))?;
        let m = e
            .path()
            .symlink_metadata()
            .map_err(Error::io("reading", e.path().to_owned()))?;
        let mut path = name.to_vec();
        let rel = e.path().strip_prefix(src).unwrap_or(Path::new(""));
        if !rel.as_os_str().is_empty() {
            path.push(b'/');
            path.extend_from_slice(rel.as_os_str().as_encoded_bytes());
        }
        let t = m.file_type();
        let mut link_to = None;
        if t.is_file() && m.nlink() > 1 {
            match first_link.entry((m.dev(), m.ino())) {
                std::collections::hash_map::Entry::Occupied(o) => link_to = Some(o.get().clone()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(path.clone());
                }
            }
        }
        let (kind, size) = if t.is_dir() {
            (EntryKind::Dir, 0)
        } else if link_to.is_some() {
            (EntryKind::Hardlink, 0)
        } else if t.is_file() {
            (EntryKind::File, m.len())
        } else if t.is_symlink() {
            (EntryKind::Symlink, 0)
        } else {
            continue;
        };
        let target = if let Some(first) = link_to {
            Some(first)
        } else if kind == EntryKind::Symlink {
            Some(
                std::fs::read_link(e.path())
                    .map_err(Error::io("reading link", e.path().to_owned()))?
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else {
            None
        };
        let header = encode_header(&HeaderSpec {
            path: &path,
            kind,
            size,
            mode: m.mode() & 0o7777,
            mtime: mtime_of(&m),
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            link: target.as_deref(),
        });
        put(w, &header)?;
        if kind == EntryKind::File {
            let mut f =
                std::fs::File::open(e.path()).map_err(Error::io("opening", e.path().to_owned()))?;
            let mut left = size;
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = f
                    .read(&mut buf[..want])
                    .map_err(Error::io("reading", e.path().to_owned()))?;
                if n == 0 {
                    return Err(Error::invalid(format!(
                        "{} shrank while it was read",
                        e.path().display()
                    )));
                }
                put(w, &buf[..n])?;
                left -= n as u64;
            }
            let pad = padded(size) - size;
            put(w, &vec![0u8; usize::try_from(pad).unwrap_or(0)])?;
        }
    }
    put(w, &[0u8; 2 * BLOCK as usize])?;
    Ok(written)
}
