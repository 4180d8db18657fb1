//! Safe unpacking into a private staging directory, and committing it.
//!
//! # Security
//!
//! Entries are created only inside a fresh staging directory (mode 0700) beside the
//! destination. Their paths were validated as [`EntryPath`]s: relative, no `..`, no
//! empty components. On top of that:
//!
//! - every parent of an entry must be a real directory created by this unpack,
//!   never a symlink or a file, so nothing is ever written *through* a link (the
//!   unpack keeps an exact model of what it created: nobody else writes into its
//!   private staging directory);
//! - files are created with `O_CREAT|O_EXCL`, which does not follow a link placed at
//!   the path and refuses duplicates;
//! - hard links may only point to regular files this unpack created;
//! - special files are never created.
//!
//! Nothing reaches the destination until [`Staged::commit`], which the caller
//! invokes only after every check passed; dropping a [`Staged`] (or an error while
//! unpacking) removes the staging directory.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_manifest::{ComponentName, EntryPath, LinkTarget, SignedManifest};

use crate::error::{Error, Result};
use crate::fswriter::{Attrs, CHUNK, FsWriter};
use crate::writer::EntryMeta;

/// What this unpack has made at a path. The staging directory is private and
/// only this unpack writes into it, so this model is exactly what is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// A directory created because an entry needed it as a parent.
    ImplicitDir,
    Dir,
    File,
    Link,
}

/// Creates entries below a root, safely; the filesystem work runs on a writer
/// thread, in order.
pub(crate) struct Extractor {
    root: PathBuf,
    made: HashMap<Box<[u8]>, Made>,
    dirs: Vec<(EntryPath, EntryMeta)>,
    restore_owner: bool,
    buf: Vec<u8>,
    fs: FsWriter,
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
    pub(crate) fn new(root: PathBuf, restore_owner: bool) -> Result<Self> {
        Ok(Extractor {
            root,
            made: HashMap::new(),
            dirs: Vec::new(),
            restore_owner,
            buf: Vec::new(),
            fs: FsWriter::new()?,
            entries: 0,
            bytes: 0,
        })
    }

    fn full(&self, path: &[u8]) -> PathBuf {
        self.root.join(os_path(path))
    }

    /// Claims `path` for a new entry of kind `made`, creating missing parents.
    /// Returns whether the path must still be created (an explicit directory may
    /// claim one already made as a parent).
    fn claim(&mut self, path: &EntryPath, made: Made) -> Result<bool> {
        self.fs.check()?;
        let bytes = path.as_bytes();
        let fresh = match self.made.get(bytes) {
            None => true,
            Some(Made::ImplicitDir) if made == Made::Dir => false,
            Some(_) => return Err(unsafe_entry(path, "appears twice in the archive")),
        };
        for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'/') {
            match self.made.get(&bytes[..i]) {
                Some(Made::Dir | Made::ImplicitDir) => {}
                Some(_) => {
                    return Err(unsafe_entry(path, "a parent directory is a link or a file"));
                }
                None => {
                    // Directories are made here at once (they are few and cheap);
                    // the writer finds them when it gets the entries inside.
                    let dir = self.full(&bytes[..i]);
                    fs::create_dir(&dir).map_err(Error::io("creating directory", dir))?;
                    self.made.insert(bytes[..i].into(), Made::ImplicitDir);
                }
            }
        }
        self.made.insert(bytes.into(), made);
        self.entries += 1;
        Ok(fresh)
    }

    fn attrs(&self, path: &EntryPath, meta: EntryMeta) -> Result<Attrs> {
        let owner = if self.restore_owner {
            Some((id32(meta.uid, path)?, id32(meta.gid, path)?))
        } else {
            None
        };
        Ok(Attrs {
            owner,
            mode: meta.mode,
            mtime: meta.mtime,
        })
    }

    pub(crate) fn create_dir(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        if self.claim(path, Made::Dir)? {
            let dir = self.full(path.as_bytes());
            fs::create_dir(&dir).map_err(Error::io("creating directory", dir))?;
        }
        self.dirs.push((path.clone(), meta));
        Ok(())
    }

    pub(crate) fn create_file(&mut self, path: &EntryPath) -> Result<()> {
        self.claim(path, Made::File)?;
        self.fs.create(self.full(path.as_bytes()))?;
        self.buf = self.fs.buffer();
        Ok(())
    }

    pub(crate) fn write_chunk(&mut self, mut chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        while !chunk.is_empty() {
            let n = (CHUNK - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.buf.len() == CHUNK {
                let full = std::mem::replace(&mut self.buf, self.fs.buffer());
                self.fs.write(full)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish_file(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        if !self.buf.is_empty() {
            self.fs.write(std::mem::take(&mut self.buf))?;
        }
        let attrs = self.attrs(path, meta)?;
        self.fs.finish_file(attrs)
    }

    pub(crate) fn create_symlink(
        &mut self,
        path: &EntryPath,
        target: Option<&LinkTarget>,
        meta: EntryMeta,
    ) -> Result<()> {
        let target = target.ok_or_else(|| unsafe_entry(path, "link without a target"))?;
        let attrs = self.attrs(path, meta)?;
        self.claim(path, Made::Link)?;
        self.fs.symlink(
            os_path(target.as_bytes()).to_owned(),
            self.full(path.as_bytes()),
            attrs,
        )
    }

    pub(crate) fn create_hardlink(
        &mut self,
        path: &EntryPath,
        target: Option<&LinkTarget>,
    ) -> Result<()> {
        let target = target.ok_or_else(|| unsafe_entry(path, "link without a target"))?;
        if self.made.get(target.as_bytes()) != Some(&Made::File) {
            return Err(unsafe_entry(
                path,
                "hard link to something that is not a file unpacked earlier",
            ));
        }
        self.claim(path, Made::File)?;
        // The writer creates the target before the link: it works in order.
        self.fs
            .hardlink(self.full(target.as_bytes()), self.full(path.as_bytes()))
    }

    /// Applies directory modes, owners and times, deepest first (so that setting
    /// them is not undone by creating children, and read-only directories were
    /// writable while being filled), then waits for every write to finish.
    pub(crate) fn finish(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.depth()));
        for (path, meta) in dirs {
            let attrs = self.attrs(&path, meta)?;
            self.fs.dir_attrs(self.full(path.as_bytes()), attrs)?;
        }
        self.fs.finish()
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
    /// The staging directory's name prefix (default `.cairn-staging-`): a
    /// caller that must find it again after a crash names it after its job.
    pub staging_prefix: Option<String>,
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

    /// Sets the staging directory's name prefix.
    pub fn staging_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.staging_prefix = Some(prefix.into());
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
    /// staging directory's filesystem. `dest` itself gets mode 0755 (it is not an
    /// entry of the archive); everything below it is as archived.
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

/// Creates a staging directory in `parent`, named after `opts`.
pub(crate) fn staging_dir(parent: &Path, opts: &UnpackOptions) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(opts.staging_prefix.as_deref().unwrap_or(".cairn-staging-"))
        .tempdir_in(parent)
        .map_err(Error::io(
            "creating staging directory in",
            parent.to_owned(),
        ))
}
