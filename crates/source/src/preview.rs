//! Dry runs: what a restore would create, replace and delete.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use cairn_manifest::{ComponentKind, Entry, EntryKind};

use crate::error::{Error, Result};
use crate::spec::{ComponentSpec, SQLITE_SIDECARS, with_suffix};

/// What a restore would do, path by path: [`cairn_job::RestorePreview`],
/// the dry run's result as a restore job reports it.
pub use cairn_job::RestorePreview as DryRun;

/// Compares the components `items` (each with whether the backup holds it;
/// `false` means it would be emptied) against what is on disk now. `entries`
/// are the backup's entries (those of the held components suffice), in
/// archive order.
///
/// # Errors
///
/// [`Error::Io`] if the destination cannot be read.
pub fn dry_run(entries: &[Entry], items: &[(ComponentSpec, bool)]) -> Result<DryRun> {
    let mut out = DryRun::default();
    for (spec, present) in items {
        let mut wanted: HashSet<PathBuf> = HashSet::new();
        if *present {
            for e in entries
                .iter()
                .filter(|e| e.path.first() == spec.name.as_str().as_bytes())
            {
                let dest = match (spec.kind, e.path.rest()) {
                    (ComponentKind::Dir, None) => spec.path.clone(),
                    (ComponentKind::Dir, Some(rest)) => spec.path.join(OsStr::from_bytes(rest)),
                    (_, Some(_)) if e.kind == EntryKind::File => spec.path.clone(),
                    _ => continue,
                };
                // A database is always replaced: the archived snapshot is
                // a different file from the live one even when it holds
                // the same rows.
                classify(e, &dest, spec.kind == ComponentKind::Sqlite, &mut out)?;
                wanted.insert(dest);
            }
        }
        if spec.kind == ComponentKind::Dir && spec.path.is_dir() {
            for item in walkdir::WalkDir::new(&spec.path)
                .follow_links(false)
                .sort_by_file_name()
            {
                let item = item.map_err(|e| Error::Io {
                    op: "reading",
                    path: spec.path.clone(),
                    source: e.into(),
                })?;
                let kept_root = item.depth() == 0 && *present;
                if !kept_root && !wanted.contains(item.path()) {
                    out.delete.push(item.path().to_owned());
                }
            }
        } else if spec.path.symlink_metadata().is_ok() && !wanted.contains(&spec.path) {
            out.delete.push(spec.path.clone());
        }
        if spec.kind == ComponentKind::Sqlite {
            for s in SQLITE_SIDECARS {
                let side = with_suffix(&spec.path, s);
                if side.symlink_metadata().is_ok() {
                    out.delete.push(side);
                }
            }
        }
    }
    Ok(out)
}

fn classify(e: &Entry, dest: &PathBuf, always_replace: bool, out: &mut DryRun) -> Result<()> {
    let meta = match fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            out.create.push(dest.clone());
            return Ok(());
        }
        Err(err) => return Err(Error::io("reading", dest)(err)),
    };
    let same = !always_replace
        && match e.kind {
            EntryKind::Dir => meta.is_dir(),
            EntryKind::Symlink => {
                meta.file_type().is_symlink()
                    && fs::read_link(dest).is_ok_and(|t| {
                        Some(t.as_os_str().as_bytes())
                            == e.link.as_ref().map(cairn_manifest::LinkTarget::as_bytes)
                    })
            }
            EntryKind::File => {
                meta.is_file()
                    && meta.len() == e.size
                    && meta.permissions().mode() & 0o7777 == e.mode & 0o7777
                    && meta.mtime() == e.mtime.secs()
            }
            EntryKind::Hardlink => false,
        };
    if same {
        out.unchanged += 1;
    } else {
        out.replace.push(dest.clone());
    }
    Ok(())
}
