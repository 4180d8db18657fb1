//! Safe unpacking into a private staging directory, and committing it.
//!
//! # Security
//!
//! Entries are created only inside a fresh staging directory (mode 0700) beside the
//! destination. Their paths were validated as [`EntryPath`]s: relative, no `..`, no
//! empty components. On top of that:
//!
//! - the caller refuses duplicate entries and entries below a file or link
//!   before they get here ([`cairn_manifest::EntryOrder`]), so every parent of
//!   an entry is a directory; a parent that already exists is checked to be a
//!   real directory, never a symlink or a file, so nothing is ever written
//!   *through* a link (nobody else writes into the private staging directory);
//! - files are created with `O_CREAT|O_EXCL`, which does not follow a link placed at
//!   the path and refuses duplicates;
//! - hard links may only point to regular files this unpack created: the
//!   target and each of its parents are checked on the filesystem, in order
//!   with the writes, just before the link is made;
//! - special files are never created.
//!
//! Memory does not grow with the number of entries: what is remembered is the
//! chain of directories of the previous entry and, for the final pass that
//! sets directories' modes and times, one record per directory.
//!
//! Nothing reaches the destination until [`Staged::commit`], which the caller
//! invokes only after every check passed; dropping a [`Staged`] (or an error while
//! unpacking) removes the staging directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_manifest::{AnyManifest, ComponentName, EntryPath, LinkTarget};

use crate::error::{Error, Result};
use crate::fswriter::{Attrs, CHUNK, FsWriter};
use crate::writer::EntryMeta;

/// Creates entries below a root, safely; the filesystem work runs on a writer
/// thread, in order.
pub(crate) struct Extractor {
    root: PathBuf,
    /// The directories on the path of the previous entry, outermost first:
    /// made (or found to be real directories) already.
    stack: Vec<Vec<u8>>,
    dirs: Vec<(EntryPath, EntryMeta)>,
    restore_owner: bool,
    buf: Vec<u8>,
    /// The file started and not created yet (its data fits in `buf` so far).
    pending: Option<PathBuf>,
    fs: FsWriter,
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

/// Whether `dir` is a parent folder of `path` (or `path` itself).
fn holds(dir: &[u8], path: &[u8]) -> bool {
    path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/')
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
            stack: Vec::new(),
            dirs: Vec::new(),
            restore_owner,
            buf: Vec::new(),
            pending: None,
            fs: FsWriter::new()?,
            entries: 0,
            bytes: 0,
        })
    }

    fn full(&self, path: &[u8]) -> PathBuf {
        self.root.join(os_path(path))
    }

    /// Makes the folder `rel` unless it is there, as a real directory, already.
    fn make_dir(&self, rel: &[u8], path: &EntryPath) -> Result<()> {
        let dir = self.full(rel);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let m = fs::symlink_metadata(&dir).map_err(Error::io("checking", dir.clone()))?;
                if m.file_type().is_dir() {
                    Ok(())
                } else {
                    Err(unsafe_entry(path, "a parent directory is a link or a file"))
                }
            }
            Err(e) => Err(Error::io("creating directory", dir)(e)),
        }
    }

    /// Makes the missing parents of a new entry at `path` (the caller has
    /// refused duplicates and entries below files or links).
    fn claim(&mut self, path: &EntryPath) -> Result<()> {
        self.fs.check()?;
        let bytes = path.as_bytes();
        while self.stack.last().is_some_and(|d| !holds(d, bytes)) {
            self.stack.pop();
        }
        let from = self.stack.last().map_or(0, |d| d.len() + 1);
        for i in (from..bytes.len()).filter(|&i| bytes[i] == b'/') {
            self.make_dir(&bytes[..i], path)?;
            self.stack.push(bytes[..i].to_vec());
        }
        self.entries += 1;
        Ok(())
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
        self.claim(path)?;
        self.make_dir(path.as_bytes(), path)?;
        self.stack.push(path.as_bytes().to_vec());
        self.dirs.push((path.clone(), meta));
        Ok(())
    }

    /// Starts a file. It is created on the writer thread with its first
    /// full buffer, or whole at [`Extractor::finish_file`] if it is smaller.
    pub(crate) fn create_file(&mut self, path: &EntryPath) -> Result<()> {
        self.claim(path)?;
        self.pending = Some(self.full(path.as_bytes()));
        if self.buf.capacity() < CHUNK {
            self.buf = self.fs.buffer();
        }
        self.buf.clear();
        Ok(())
    }

    pub(crate) fn write_chunk(&mut self, mut chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        while !chunk.is_empty() {
            let n = (CHUNK - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.buf.len() == CHUNK {
                if let Some(path) = self.pending.take() {
                    self.fs.create(path)?;
                }
                let full = std::mem::replace(&mut self.buf, self.fs.buffer());
                self.fs.write(full)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish_file(&mut self, path: &EntryPath, meta: EntryMeta) -> Result<()> {
        let attrs = self.attrs(path, meta)?;
        if let Some(full) = self.pending.take() {
            // A small file is copied into the writer's batch; this buffer
            // stays for the next file.
            let done = self.fs.whole_file(full, &self.buf, attrs);
            self.buf.clear();
            return done;
        }
        if !self.buf.is_empty() {
            self.fs.write(std::mem::take(&mut self.buf))?;
        }
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
        self.claim(path)?;
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
        let target = EntryPath::parse(target.as_bytes())
            .map_err(|_| unsafe_entry(path, "hard link target is not a path inside the archive"))?;
        if target.first() != path.first() {
            return Err(unsafe_entry(
                path,
                "hard link target is outside the entry's component",
            ));
        }
        self.claim(path)?;
        // The writer creates the target before the link (it works in order)
        // and checks it is a file this unpack made; a refusal is reported
        // by the next check or by `refusal_or`.
        self.fs.hardlink(
            self.root.clone(),
            target.to_path().to_owned(),
            self.full(path.as_bytes()),
            path.to_string(),
        )
    }

    /// The error to report when reading stopped with `e`: an entry the
    /// writer thread refused as unsafe (a hard link to something this unpack
    /// did not make) comes first, since what went wrong after it may be its
    /// consequence or simply the stream ending; otherwise `e`.
    pub(crate) fn refusal_or(&mut self, e: Error) -> Error {
        match self.fs.finish() {
            Err(w) if w.kind() == crate::ErrorKind::Unsafe => w,
            _ => e,
        }
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
    /// Only this entry and what is under it (a single file or folder), at
    /// its own path: the folders above it come too, and the file of a hard
    /// link in it whose file is elsewhere. Only a [`crate::SeekableArchive`]
    /// unpacks a subtree; the stream reader refuses it.
    pub subtree: Option<EntryPath>,
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

    /// Unpacks only `path` and what is under it (see
    /// [`UnpackOptions::subtree`]).
    pub fn subtree(mut self, path: EntryPath) -> Self {
        self.subtree = Some(path);
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
    manifest: AnyManifest,
    stats: UnpackStats,
}

impl Staged {
    pub(crate) fn new(dir: tempfile::TempDir, manifest: AnyManifest, stats: UnpackStats) -> Self {
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

    /// The verified manifest (format 1) or root (format 2).
    pub fn manifest(&self) -> &AnyManifest {
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
    pub fn commit(self, dest: &Path) -> Result<AnyManifest> {
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
    pub fn keep(self) -> (PathBuf, AnyManifest) {
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
