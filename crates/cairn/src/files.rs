//! Single files and folders out of any backup (`docs/dashboard.md` "Files"):
//! the entry at a path is looked up in the authenticated manifest, then
//! unpacked alone (reading only the frames that hold it, from whichever
//! archive of an incremental chain has its data) into the state folder's
//! scratch space, every byte checked against its signed digest before the
//! caller gets it. Nothing of it is left once the [`Extracted`] is dropped.

use std::io::Write;
use std::path::PathBuf;

use cairn_archive::{ReadOptions, SeekableArchive, Staged, UnpackOptions};
use cairn_catalog::{BackupRecord, BackupStatus};

use crate::bridge::StoredArchive;
use cairn_manifest::{Entry, EntryKind, EntryPath};

use crate::error::{Error, task};
use crate::vault::{Inner, Vault};

/// The name of a single file's unpack in the scratch space starts with
/// this and its process id: crash recovery removes those of dead processes.
pub(crate) const EXTRACT_PREFIX: &str = ".cairn-extract-";

/// A path of a backup as `component/relative/path`: leading and trailing
/// slashes are ignored; empty, `.` and `..` parts are refused.
///
/// # Errors
///
/// [`Error::Invalid`] naming what is wrong with it.
pub fn parse_path(path: &str) -> Result<EntryPath, Error> {
    let trimmed = path.trim_matches('/');
    EntryPath::parse(trimmed.as_bytes()).map_err(|e| Error::Invalid(format!("path {path:?}: {e}")))
}

/// A file or folder of a backup, unpacked and verified in the scratch
/// space; removed when dropped.
#[derive(Debug)]
pub struct Extracted {
    staged: Staged,
    entry: Entry,
    /// The entry a hard link at the path leads to, when it is one.
    file: Option<Entry>,
}

impl Extracted {
    /// The entry asked for, as the manifest records it.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Whether it is a folder (a component's root is one).
    pub fn is_dir(&self) -> bool {
        self.entry.kind == EntryKind::Dir
    }

    /// A file's size (a hard link's file's); 0 for a folder.
    pub fn size(&self) -> u64 {
        self.file.as_ref().map_or(self.entry.size, |f| f.size)
    }

    /// The SHA-256 the manifest signs for a file's content (hex).
    pub fn sha256(&self) -> Option<String> {
        self.file
            .as_ref()
            .unwrap_or(&self.entry)
            .sha256
            .as_ref()
            .map(ToString::to_string)
    }

    /// Where it is on disk, checked, until this is dropped.
    pub fn path(&self) -> PathBuf {
        self.staged
            .path()
            .join(String::from_utf8_lossy(self.entry.path.as_bytes()).as_ref())
    }

    /// The file's name, the last part of its path.
    pub fn name(&self) -> String {
        let bytes = self.entry.path.as_bytes();
        let last = bytes.rsplit(|b| *b == b'/').next().unwrap_or(bytes);
        String::from_utf8_lossy(last).into_owned()
    }

    /// Writes a folder (or a file) as a tar stream compressed with zstd,
    /// its entries named by their paths in the backup (`component/…`),
    /// with their modes and modification times (to the nanosecond, PAX
    /// where ustar falls short) and symbolic links as links: GNU tar
    /// extracts it. Returns `w`. Blocking.
    ///
    /// # Errors
    ///
    /// Reading the unpacked tree or writing `w`, as [`Error::Archive`].
    pub fn write_tar_zst<W: Write>(&self, w: W) -> Result<W, Error> {
        let io = |e: std::io::Error| {
            Error::from(cairn_archive::Error::Io {
                op: "compressing the tar",
                path: None,
                source: e,
            })
        };
        let mut enc = zstd::Encoder::new(w, 3).map_err(io)?;
        cairn_archive::write_tar_tree(&self.path(), self.entry.path.as_bytes(), &mut enc)?;
        enc.finish().map_err(io)
    }
}

/// Folds a store or archive error about a path into what a caller reads:
/// an entry the archive lacks is not found.
fn missing(id: &str, path: &EntryPath) -> Error {
    Error::NotFound {
        what: "path",
        id: format!("{path} of backup {id}"),
    }
}

impl Vault {
    /// The entry at `path` (see [`parse_path`]) of backup `id`, read from
    /// its authenticated manifest (a format 2 backup reads only the pages
    /// of the path's component).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown backup or a path it does not
    /// hold; [`Error::Invalid`] for a malformed path or a backup not
    /// ready; a failed verification as for a restore.
    pub async fn entry(&self, id: &str, path: &str) -> Result<Entry, Error> {
        let path = parse_path(path)?;
        let mut archive = open_readable(&self.inner, id).await?;
        let p = path.clone();
        let found = tokio::task::spawn_blocking(move || archive.entry(&p))
            .await
            .map_err(task)??;
        found.ok_or_else(|| missing(id, &path))
    }

    /// The entries directly in the folder at `path` of backup `id` (see
    /// [`parse_path`]; a component's name is its root folder), in archive
    /// order, from the authenticated manifest. For a browser of a backup.
    ///
    /// # Errors
    ///
    /// As [`Vault::entry`]; [`Error::Invalid`] when `path` is not a folder.
    pub async fn list_folder(&self, id: &str, path: &str) -> Result<Vec<Entry>, Error> {
        let path = parse_path(path)?;
        let archive = open_readable(&self.inner, id).await?;
        let shown = id.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut archive = archive;
            // One pass over the component's pages: the folder's own entry
            // and its children.
            let prefix = [path.as_bytes(), b"/"].concat();
            let (mut own, mut children) = (None, Vec::new());
            archive.for_each_entry_of(path.first(), |e| {
                if e.path == path {
                    own = Some(e.kind);
                } else if let Some(rest) = e.path.as_bytes().strip_prefix(prefix.as_slice())
                    && !rest.contains(&b'/')
                {
                    children.push(e.clone());
                }
                Ok(())
            })?;
            // A file component has no root folder entry: its name lists
            // its file.
            let component = !path.as_bytes().contains(&b'/');
            match own {
                Some(kind) if kind != EntryKind::Dir => Err(Error::Invalid(format!(
                    "{path} of backup {shown} is not a folder"
                ))),
                None if !component || children.is_empty() => Err(missing(&shown, &path)),
                _ => Ok(children),
            }
        })
        .await
        .map_err(task)?
    }

    /// Unpacks the file or folder at `path` of backup `id` alone into the
    /// scratch space, every byte checked against the signed manifest (a
    /// hard link's file comes with it; a folder's files each checked).
    ///
    /// # Errors
    ///
    /// As [`Vault::entry`]; [`Error::Invalid`] for a symbolic link (it has
    /// no content: its target is in [`Vault::entry`]); a failed
    /// verification for a byte that differs.
    pub async fn extract(&self, id: &str, path: &str) -> Result<Extracted, Error> {
        let path = parse_path(path)?;
        let archive = open_readable(&self.inner, id).await?;
        let scratch = self.inner.scratch.clone();
        let shown = id.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut archive = archive;
            let entry = archive
                .entry(&path)?
                .ok_or_else(|| missing(&shown, &path))?;
            let file = match entry.kind {
                EntryKind::Symlink => {
                    let to = entry
                        .link
                        .as_ref()
                        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                        .unwrap_or_default();
                    return Err(Error::Invalid(format!(
                        "{path} of backup {shown} is a symbolic link to {to:?}: it has no content"
                    )));
                }
                EntryKind::Hardlink => {
                    let target = entry
                        .link
                        .as_ref()
                        .map(|l| EntryPath::parse(l.as_bytes()))
                        .transpose()
                        .map_err(|e| Error::Verification(format!("{path}: {e}")))?
                        .ok_or_else(|| missing(&shown, &path))?;
                    archive.entry(&target)?
                }
                EntryKind::File | EntryKind::Dir => None,
            };
            std::fs::create_dir_all(&scratch)
                .map_err(|e| Error::Invalid(format!("creating {}: {e}", scratch.display())))?;
            let staged = archive.unpack_to_staging(
                &scratch,
                &UnpackOptions::default()
                    .subtree(path)
                    .restore_owner(false)
                    .staging_prefix(format!("{EXTRACT_PREFIX}{}-", std::process::id())),
            )?;
            Ok(Extracted {
                staged,
                entry,
                file,
            })
        })
        .await
        .map_err(task)?
    }
}

/// Backup `id`'s archive, its chain attached, for reading files from.
async fn open_readable(inner: &Inner, id: &str) -> Result<SeekableArchive<StoredArchive>, Error> {
    let record = readable(inner, id).await?;
    let (archive, _, _) = crate::verify::open_chain(inner, &record, ReadOptions::default()).await?;
    Ok(archive)
}

/// A backup files can be read from: ready, not deleted.
async fn readable(inner: &Inner, id: &str) -> Result<BackupRecord, Error> {
    let record = inner.backup_record(id).await?;
    if record.status != BackupStatus::Ready {
        return Err(Error::Invalid(format!("backup {id} is not ready")));
    }
    if record.deleted_at.is_some() {
        return Err(Error::Invalid(format!(
            "backup {id} is deleted: undelete it first"
        )));
    }
    Ok(record)
}
