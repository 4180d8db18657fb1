//! Safe unpacking into a private staging directory, and committing it.
//!
//! # Security
//!
//! Entries are created only inside a fresh staging directory (mode 0700) beside the
//! destination. Their paths were validated as [`EntryPath`]s: relative, no `..`, no
//! empty components. On top of that:
//!
//! - every parent of an entry must be a real directory created by this unpack,
//!   never a symlink or a file, so nothing is ever written *through* a link;
//! - files are created with `O_CREAT|O_EXCL`, which does not follow a link placed at
//!   the path and refuses duplicates;
//! - hard links may only point to regular files this unpack created;
//! - special files are never created.
//!
//! Nothing reaches the destination until [`Staged::commit`], which the caller
//! invokes only after every check passed; dropping a [`Staged`] (or an error while
//! unpacking) removes the staging directory.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_manifest::{ComponentName, EntryPath, LinkTarget, Mtime, SignedManifest};

use crate::error::{Error, Result};
use crate::writer::EntryMeta;

fn system_time(m: Mtime) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(m.nanos()));
    if m.secs() >= 0 {
        UNIX_EPOCH + Duration::from_secs(m.secs().unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(m.secs().unsigned_abs()) + nanos
    }
}

/// Creates entries below a root, safely.
pub(crate) struct Extractor {
    root: PathBuf,
    seen: HashSet<Vec<u8>>,
    files: HashSet<Vec<u8>>,
    good_dirs: HashSet<Vec<u8>>,
    dirs: Vec<(EntryPath, EntryMeta)>,
    restore_owner: bool,
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

fn unsafe_entry(path: &EntryPath, reason: &'static str) -> Error {
    Error::Unsafe {
        path: path.to_string(),
        reason,
    }
}

impl Extractor {
    pub(crate) fn new(root: PathBuf, restore_owner: bool) -> Self {
        Extractor {
            root,
            seen: HashSet::new(),
            files: HashSet::new(),
            good_dirs: HashSet::new(),
            dirs: Vec::new(),
            restore_owner,
            entries: 0,
            bytes: 0,
        }
    }

    fn full(&self, path: &EntryPath) -> PathBuf {
        self.root.join(path.to_path())
    }

    /// Claims `path` for a new entry and makes sure its parents are real
    /// directories of this unpack.
    fn claim(&mut self, path: &EntryPath) -> Result<()> {
        if !self.seen.insert(path.as_bytes().to_vec()) {
            return Err(unsafe_entry(path, "appears twice in the archive"));
        }
        let mut prefix = Vec::with_capacity(path.as_bytes().len());
        let comps: Vec<&[u8]> = path.components().collect();
        for comp in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(comp);
            if self.good_dirs.contains(&prefix) {
                continue;
            }
            let dir = self.root.join(EntryPath::parse(&prefix)?.to_path());
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => return Err(unsafe_entry(path, "a parent directory is a link or a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(Error::io("creating directory", dir.clone()))?;
                }
                Err(e) => return Err(Error::from_io("inspecting", Some(dir), e)),
            }
            self.good_dirs.insert(prefix.clone());
        }
        self.entries += 1;
        Ok(())
    }

    pub(crate) fn create_dir(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        self.claim(path)?;
        let full = self.full(path);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_dir() => {} // made earlier as a parent
            Ok(_) => return Err(unsafe_entry(path, "appears twice in the archive")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&full).map_err(Error::io("creating directory", full.clone()))?;
            }
            Err(e) => return Err(Error::from_io("inspecting", Some(full), e)),
        }
        self.good_dirs.insert(path.as_bytes().to_vec());
        self.dirs.push((path.clone(), meta));
        Ok(())
    }

    pub(crate) fn create_file(&mut self, path: &EntryPath) -> Result<fs::File> {
        self.claim(path)?;
        let full = self.full(path);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => unsafe_entry(path, "appears twice in the archive"),
                _ => Error::from_io("creating", Some(full), e),
            })?;
        Ok(file)
    }

    pub(crate) fn write_chunk(
        &mut self,
        file: &mut fs::File,
        path: &EntryPath,
        chunk: &[u8],
    ) -> Result<()> {
        file.write_all(chunk)
            .map_err(Error::io("writing", self.full(path)))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    pub(crate) fn finish_file(
        &mut self,
        file: &fs::File,
        path: &EntryPath,
        meta: EntryMeta,
    ) -> Result<()> {
        let full = self.full(path);
        if self.restore_owner {
            // Before chmod: changing the owner clears set-id bits.
            std::os::unix::fs::fchown(
                file,
                Some(id32(meta.uid, path)?),
                Some(id32(meta.gid, path)?),
            )
            .map_err(Error::io("setting owner of", full.clone()))?;
        }
        file.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(Error::io("setting mode of", full.clone()))?;
        file.set_times(fs::FileTimes::new().set_modified(system_time(meta.mtime)))
            .map_err(Error::io("setting time of", full))?;
        self.files.insert(path.as_bytes().to_vec());
        Ok(())
    }

    pub(crate) fn create_symlink(
        &mut self,
        path: &EntryPath,
        target: Option<&LinkTarget>,
        meta: EntryMeta,
    ) -> Result<()> {
        let target = target.ok_or_else(|| unsafe_entry(path, "link without a target"))?;
        self.claim(path)?;
        let full = self.full(path);
        symlink(os_path(target.as_bytes()), &full).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => unsafe_entry(path, "appears twice in the archive"),
            _ => Error::from_io("creating link", Some(full.clone()), e),
        })?;
        if self.restore_owner {
            std::os::unix::fs::lchown(
                &full,
                Some(id32(meta.uid, path)?),
                Some(id32(meta.gid, path)?),
            )
            .map_err(Error::io("setting owner of", full.clone()))?;
        }
        let t = filetime::FileTime::from_system_time(system_time(meta.mtime));
        filetime::set_symlink_file_times(&full, t, t)
            .map_err(Error::io("setting time of", full))?;
        Ok(())
    }

    pub(crate) fn create_hardlink(
        &mut self,
        path: &EntryPath,
        target: Option<&LinkTarget>,
    ) -> Result<()> {
        let target = target.ok_or_else(|| unsafe_entry(path, "link without a target"))?;
        if !self.files.contains(target.as_bytes()) {
            return Err(unsafe_entry(
                path,
                "hard link to something that is not a file unpacked earlier",
            ));
        }
        let target = EntryPath::parse(target.as_bytes())?;
        self.claim(path)?;
        let full = self.full(path);
        fs::hard_link(self.full(&target), &full).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => unsafe_entry(path, "appears twice in the archive"),
            _ => Error::from_io("creating hard link", Some(full.clone()), e),
        })?;
        Ok(())
    }

    /// Applies directory modes, owners and times, deepest first (so that setting
    /// them is not undone by creating children, and read-only directories were
    /// writable while being filled).
    pub(crate) fn finish(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.depth()));
        for (path, meta) in dirs {
            let full = self.full(&path);
            if self.restore_owner {
                std::os::unix::fs::lchown(
                    &full,
                    Some(id32(meta.uid, &path)?),
                    Some(id32(meta.gid, &path)?),
                )
                .map_err(Error::io("setting owner of", full.clone()))?;
            }
            fs::set_permissions(&full, fs::Permissions::from_mode(meta.mode))
                .map_err(Error::io("setting mode of", full.clone()))?;
            let dir = fs::File::open(&full).map_err(Error::io("opening", full.clone()))?;
            dir.set_times(fs::FileTimes::new().set_modified(system_time(meta.mtime)))
                .map_err(Error::io("setting time of", full))?;
        }
        Ok(())
    }
}

fn os_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

fn id32(id: u64, path: &EntryPath) -> Result<u32> {
    u32::try_from(id).map_err(|_| Error::Unsupported {
        reason: format!("owner id {id} of {path} does not fit this system"),
    })
}

/// Whether this process may restore owners (it runs as root).
pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Options for unpacking.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// Components to unpack (default: all). Everything is still verified.
    pub components: Option<Vec<ComponentName>>,
    /// Whether to restore owners: `None` (default) restores them when running as
    /// root, `Some(false)` never, `Some(true)` always (fails when not permitted).
    pub restore_owner: Option<bool>,
}

impl UnpackOptions {
    /// Unpacks only these components.
    pub fn components(mut self, names: impl IntoIterator<Item = ComponentName>) -> Self {
        self.components = Some(names.into_iter().collect());
        self
    }

    /// Sets the owner policy.
    pub fn restore_owner(mut self, restore: bool) -> Self {
        self.restore_owner = Some(restore);
        self
    }

    pub(crate) fn owner(&self) -> bool {
        self.restore_owner.unwrap_or_else(running_as_root)
    }
}

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackStats {
    /// Entries created.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// A verified unpack waiting in its staging directory.
///
/// Its components are at `path()/<component>`. Call [`Staged::commit`] to move the
/// whole tree to its destination, or move components yourself from [`Staged::path`]
/// and then drop it; dropping removes whatever is left.
#[derive(Debug)]
pub struct Staged {
    dir: tempfile::TempDir,
    manifest: SignedManifest,
    stats: UnpackStats,
}

impl Staged {
    pub(crate) fn new(
        dir: tempfile::TempDir,
        manifest: SignedManifest,
        stats: UnpackStats,
    ) -> Self {
        Staged {
            dir,
            manifest,
            stats,
        }
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where component `name` was unpacked.
    pub fn component_path(&self, name: &ComponentName) -> PathBuf {
        self.dir.path().join(name.as_str())
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &SignedManifest {
        &self.manifest
    }

    /// What was written.
    pub fn stats(&self) -> UnpackStats {
        self.stats
    }

    /// Makes the unpacked tree durable and moves it to `dest` with one atomic
    /// rename. `dest` must not exist, or be an empty directory, and must be on the
    /// staging directory's filesystem.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if `dest` is not empty; [`Error::Io`] if syncing or
    /// renaming fails (the staging directory is then removed).
    pub fn commit(self, dest: &Path) -> Result<SignedManifest> {
        if let Ok(mut it) = fs::read_dir(dest) {
            if it.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} exists and is not empty",
                    dest.display()
                )));
            }
        } else if fs::symlink_metadata(dest).is_ok() {
            return Err(Error::invalid(format!(
                "{} exists and is not a directory",
                dest.display()
            )));
        }
        let root = fs::File::open(self.dir.path())
            .map_err(Error::io("opening", self.dir.path().to_owned()))?;
        rustix::fs::syncfs(&root)
            .map_err(|e| Error::from_io("syncing", Some(self.dir.path().to_owned()), e.into()))?;
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(Error::io("setting mode of", self.dir.path().to_owned()))?;
        fs::rename(self.dir.path(), dest)
            .map_err(Error::io("moving staging directory to", dest.to_owned()))?;
        // The rename succeeded: the staging directory is gone, so do not remove it.
        let _ = self.dir.keep();
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("syncing", parent.to_owned()))?;
        }
        Ok(self.manifest)
    }

    /// Keeps the staging directory and returns its path; the caller owns it now.
    pub fn keep(self) -> (PathBuf, SignedManifest) {
        (self.dir.keep(), self.manifest)
    }
}

/// Creates a staging directory in `parent`.
pub(crate) fn staging_dir(parent: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(".cairn-staging-")
        .tempdir_in(parent)
        .map_err(Error::io(
            "creating staging directory in",
            parent.to_owned(),
        ))
}
