//! Capturing components into an archive.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_archive::ArchiveWriter;
use cairn_manifest::ComponentKind;

use crate::error::{Error, Result};
use crate::spec::ComponentSpec;
use crate::sqlite::{self, SnapshotOptions};

/// How components are captured.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CaptureOptions {
    /// Limits of SQLite snapshots.
    pub sqlite: SnapshotOptions,
}

/// What capturing one component did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Captured {
    /// The component's kind.
    pub kind: ComponentKind,
    /// How long it took.
    pub duration: Duration,
    /// For a database: how long the snapshot held its read transaction.
    pub snapshot: Option<Duration>,
}

/// Appends component `spec` to the archive being written.
///
/// - `dir`: the tree, without following links; special files and files that
///   vanish while the tree is read are skipped and listed in the manifest; a
///   file whose size changes while it is read fails the capture (its bytes
///   would not match any state of the file).
/// - `file`: the one regular file.
/// - `sqlite`: a transaction-consistent snapshot of the live database
///   ([`sqlite::snapshot`]), written to `scratch` first and archived under the
///   database's file name with the database's mode; never the raw file.
///
/// `scratch` must be a private, writable directory; the snapshot is removed
/// from it before this returns.
///
/// # Errors
///
/// [`Error::Invalid`] if the component's path is missing or of the wrong type,
/// [`Error::Snapshot`], [`Error::Archive`].
pub fn capture<W: Write>(
    writer: &mut ArchiveWriter<W>,
    spec: &ComponentSpec,
    scratch: &Path,
    opts: &CaptureOptions,
) -> Result<Captured> {
    let start = Instant::now();
    let meta = fs::metadata(&spec.path).map_err(|e| {
        Error::Invalid(format!(
            "component {}: cannot read {}: {e}",
            spec.name,
            spec.path.display()
        ))
    })?;
    let mut snapshot = None;
    match spec.kind {
        ComponentKind::Dir => {
            if !meta.is_dir() {
                return Err(wrong_type(spec, "a directory"));
            }
            writer.append_dir(&spec.name, &spec.path, spec.optional)?;
        }
        ComponentKind::File => {
            if !meta.is_file() {
                return Err(wrong_type(spec, "a regular file"));
            }
            writer.append_file(&spec.name, ComponentKind::File, &spec.path, spec.optional)?;
        }
        ComponentKind::Sqlite => {
            if !meta.is_file() {
                return Err(wrong_type(spec, "a database file"));
            }
            let file_name = spec.path.file_name().ok_or_else(|| {
                Error::Invalid(format!(
                    "component {}: {} has no file name",
                    spec.name,
                    spec.path.display()
                ))
            })?;
            let dir = tempfile::Builder::new()
                .prefix(".cairn-snapshot-")
                .tempdir_in(scratch)
                .map_err(Error::io("creating a snapshot directory in", scratch))?;
            let copy = dir.path().join(file_name);
            let snap = sqlite::snapshot(&spec.path, &copy, &opts.sqlite)?;
            fs::set_permissions(&copy, fs::Permissions::from_mode(meta.permissions().mode()))
                .map_err(Error::io("setting the mode of", &copy))?;
            writer.append_file(&spec.name, ComponentKind::Sqlite, &copy, spec.optional)?;
            snapshot = Some(snap.duration);
        }
    }
    Ok(Captured {
        kind: spec.kind,
        duration: start.elapsed(),
        snapshot,
    })
}

fn wrong_type(spec: &ComponentSpec, what: &str) -> Error {
    Error::Invalid(format!(
        "component {} ({}): {} is not {what}",
        spec.name,
        spec.kind.as_str(),
        spec.path.display()
    ))
}
