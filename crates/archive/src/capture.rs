//! Walking a directory tree into an archive.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use cairn_manifest::{ComponentName, EntryPath, LinkTarget, SkipReason};

use crate::error::{Error, Result};
use crate::parent::FileIdentity;
use crate::writer::{ArchiveWriter, EntryMeta, os_bytes};

/// Appends everything under `src` (already stat'ed as `root`) to component `name`.
pub(crate) fn walk<W: Write>(
    w: &mut ArchiveWriter<W>,
    name: &ComponentName,
    src: &Path,
    root: &fs::Metadata,
) -> Result<()> {
    let base = EntryPath::parse(name.as_str().as_bytes())?;
    // Regular files with more than one link, by (device, inode): the first path
    // seen is stored, later ones become hard links to it.
    let mut inodes: HashMap<(u64, u64), EntryPath> = HashMap::new();
    let walker = walkdir::WalkDir::new(src)
        .follow_links(false)
        .follow_root_links(true)
        .sort_by_file_name();
    for item in walker {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let path = e.path().map(Path::to_owned);
                let io = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("filesystem loop"));
                if io.kind() == io::ErrorKind::NotFound
                    && let Some(p) = path.as_deref().and_then(|p| entry_path(&base, src, p).ok())
                {
                    w.skip(p, SkipReason::Vanished);
                    continue;
                }
                return Err(Error::from_io("reading directory", path, io));
            }
        };
        let path = entry_path(&base, src, item.path())?;
        let meta = if item.depth() == 0 {
            root.clone()
        } else {
            match item.metadata() {
                Ok(m) => m,
                Err(e) => {
                    let io = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("filesystem loop"));
                    if io.kind() == io::ErrorKind::NotFound {
                        w.skip(path, SkipReason::Vanished);
                        continue;
                    }
                    return Err(Error::from_io("reading", Some(item.path().to_owned()), io));
                }
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            w.append_directory(&path, EntryMeta::from_metadata(&meta))?;
        } else if ft.is_symlink() {
            let target = match fs::read_link(item.path()) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    w.skip(path, SkipReason::Vanished);
                    continue;
                }
                Err(e) => {
                    return Err(Error::from_io(
                        "reading link",
                        Some(item.path().to_owned()),
                        e,
                    ));
                }
            };
            let target = LinkTarget::parse(os_bytes(target.as_os_str()))?;
            w.append_symlink(&path, &target, EntryMeta::from_metadata(&meta))?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1
                && let Some(first) = inodes.get(&key)
            {
                w.append_hardlink(&path, first, EntryMeta::from_metadata(&meta))?;
                continue;
            }
            // Unchanged since the parent: not even opened.
            if w.append_unchanged(
                &path,
                EntryMeta::from_metadata(&meta),
                meta.len(),
                &FileIdentity::from_metadata(&meta),
            )? {
                if meta.nlink() > 1 {
                    inodes.insert(key, path);
                }
                continue;
            }
            let mut file = match fs::File::open(item.path()) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    w.skip(path, SkipReason::Vanished);
                    continue;
                }
                Err(e) => return Err(Error::from_io("opening", Some(item.path().to_owned()), e)),
            };
            // What was opened is what is archived: size and times from the open file.
            let meta = file
                .metadata()
                .map_err(Error::io("reading", item.path().to_owned()))?;
            w.append_file_data(&path, &meta, &mut file, item.path())?;
            if meta.nlink() > 1 {
                inodes.insert(key, path);
            }
        } else {
            let reason = if ft.is_socket() {
                SkipReason::Socket
            } else if ft.is_fifo() {
                SkipReason::Fifo
            } else if ft.is_char_device() {
                SkipReason::CharDevice
            } else if ft.is_block_device() {
                SkipReason::BlockDevice
            } else {
                SkipReason::Unsupported
            };
            w.skip(path, reason);
        }
    }
    Ok(())
}

/// The archive path of `full`, a path below `src`.
fn entry_path(base: &EntryPath, src: &Path, full: &Path) -> Result<EntryPath> {
    let rel = full.strip_prefix(src).map_err(|_| {
        Error::invalid(format!("{} is not below {}", full.display(), src.display()))
    })?;
    let rel = os_bytes(rel.as_os_str());
    if rel.is_empty() {
        return Ok(base.clone());
    }
    base.join(rel).map_err(|e| Error::Unsupported {
        reason: format!("cannot archive {}: {e}", full.display()),
    })
}
