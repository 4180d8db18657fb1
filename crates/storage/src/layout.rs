//! Where backups live in a store, and how they are published.
//!
//! ```text
//! <root>/targets/<target>/backups/<backup_id>.tar.zst   the archive (or .tar.gz; .tar.zst.age encrypted)
//! <root>/targets/<target>/backups/<backup_id>.seal      the seal: written last, put-if-absent
//! <root>/targets/<target>/lease/<generation>.json       lease records (see `lease`)
//! ```
//!
//! A backup is **ready** when its seal exists. The archive is uploaded first
//! and the seal written only after it, with put-if-absent, so a crash at any
//! point leaves either nothing, an archive without a seal (incomplete, safe to
//! remove), or a complete backup. Deletion goes the other way: seal first.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_manifest::{BackupId, TargetName};
use jiff::Timestamp;

use crate::error::{Error, ErrorKind, Op};
use crate::store::{ObjectInfo, Store};

/// The file name extensions an archive may have in the store.
pub const ARCHIVE_EXTENSIONS: [&str; 3] = ["tar.zst", "tar.gz", "tar.zst.age"];

/// A seal is two short lines of at most 4096 bytes (`docs/format.md` §8);
/// anything bigger is not a seal.
pub const MAX_SEAL_BYTES: u64 = 4096;

/// What the store holds for one backup id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBackup {
    /// The backup.
    pub id: BackupId,
    /// The archive object, if present.
    pub archive: Option<ObjectInfo>,
    /// The seal object, if present.
    pub seal: Option<ObjectInfo>,
}

impl StoredBackup {
    /// Archive and seal are both there: the backup was published.
    pub fn is_complete(&self) -> bool {
        self.archive.is_some() && self.seal.is_some()
    }
}

/// The key prefix of one target's backups.
pub fn backups_prefix(target: &TargetName) -> String {
    format!("targets/{target}/backups")
}

/// The key of a backup's archive.
pub fn archive_key(target: &TargetName, id: &BackupId, extension: &str) -> String {
    format!("{}/{id}.{extension}", backups_prefix(target))
}

/// The key of a backup's seal.
pub fn seal_key(target: &TargetName, id: &BackupId) -> String {
    format!("{}/{id}.seal", backups_prefix(target))
}

fn check_extension(key: &str, extension: &str) -> Result<(), Error> {
    if ARCHIVE_EXTENSIONS.contains(&extension) {
        Ok(())
    } else {
        Err(Error::new(
            Op::Upload,
            key,
            ErrorKind::Config,
            format!("archive extension must be one of {ARCHIVE_EXTENSIONS:?}"),
        ))
    }
}

/// The backups among `objects` (listed under `prefix`), by id.
fn group_backups(prefix: &str, objects: Vec<ObjectInfo>) -> Vec<StoredBackup> {
    let mut found: BTreeMap<String, StoredBackup> = BTreeMap::new();
    for object in objects {
        let Some(name) = object
            .key
            .strip_prefix(prefix)
            .and_then(|n| n.strip_prefix('/'))
        else {
            continue;
        };
        let Some((id_text, suffix)) = name.split_once('.') else {
            continue;
        };
        let Ok(id) = BackupId::parse(id_text) else {
            continue;
        };
        let slot = found.entry(id.to_string()).or_insert_with(|| StoredBackup {
            id,
            archive: None,
            seal: None,
        });
        if suffix == "seal" {
            slot.seal = Some(object);
        } else if ARCHIVE_EXTENSIONS.contains(&suffix) {
            slot.archive = Some(object);
        }
    }
    found.into_values().collect()
}

impl Store {
    /// Starts uploading a backup's archive. Publish it with
    /// [`Store::publish_seal`] once the upload has finished.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an extension that is not an archive's; the store's errors of
    /// [`Store::upload`].
    pub async fn upload_archive(
        &self,
        target: &TargetName,
        id: &BackupId,
        extension: &str,
    ) -> Result<crate::Upload, Error> {
        let key = archive_key(target, id, extension);
        check_extension(&key, extension)?;
        self.upload(&key).await
    }

    /// Publishes a backup by writing its seal, after checking that its archive
    /// is in the store with the size the seal states (`archive_size`). The
    /// seal is written with put-if-absent: a backup is published once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Precondition`] when the archive is missing or its size is not the
    /// seal's, [`ErrorKind::AlreadyExists`] when the backup is published already; the
    /// store's errors.
    pub async fn publish_seal(
        &self,
        target: &TargetName,
        id: &BackupId,
        extension: &str,
        archive_size: u64,
        seal: Bytes,
    ) -> Result<(), Error> {
        let archive = archive_key(target, id, extension);
        check_extension(&archive, extension)?;
        let key = seal_key(target, id);
        match self.head(&archive).await? {
            Some(info) if info.size == archive_size => {}
            Some(info) => {
                return Err(Error::new(
                    Op::PutIfAbsent,
                    key,
                    ErrorKind::Precondition,
                    format!(
                        "the archive {archive} is {} bytes, the seal says {archive_size}",
                        info.size
                    ),
                ));
            }
            None => {
                return Err(Error::new(
                    Op::PutIfAbsent,
                    key,
                    ErrorKind::Precondition,
                    format!("the archive {archive} is not in the store"),
                ));
            }
        }
        self.put_if_absent(&key, seal).await
    }

    /// Reads a backup's seal (at most [`MAX_SEAL_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a backup without a seal, [`ErrorKind::Other`] for a seal
    /// over [`MAX_SEAL_BYTES`]; the store's errors.
    pub async fn read_seal(&self, target: &TargetName, id: &BackupId) -> Result<Bytes, Error> {
        self.get_small(&seal_key(target, id), MAX_SEAL_BYTES).await
    }

    /// The targets that have anything in the store, sorted.
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::list_folders`].
    pub async fn list_targets(&self) -> Result<Vec<TargetName>, Error> {
        Ok(self
            .list_folders("targets")
            .await?
            .iter()
            .filter_map(|name| TargetName::parse(name).ok())
            .collect())
    }

    /// Every backup of a target found in the store, complete or not, oldest
    /// first. Objects whose names are not a backup id with a known suffix are
    /// ignored (they are listed by [`Store::list`] for anyone who asks).
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::list`].
    pub async fn list_backups(&self, target: &TargetName) -> Result<Vec<StoredBackup>, Error> {
        let prefix = backups_prefix(target);
        Ok(group_backups(&prefix, self.list(&prefix).await?))
    }

    /// The target's backups whose ids sort after `from` (ids are ULIDs:
    /// made after `from`'s time, or at it with a greater random part), as
    /// [`Store::list_backups`] gives them; on S3 the listing starts there,
    /// so that a catalog following the store reads what is new and not the
    /// target's whole history. `BackupId::from_parts(ms, 0)` is a bound
    /// for "made at `ms` or later".
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::list_after`].
    pub async fn list_backups_after(
        &self,
        target: &TargetName,
        from: &BackupId,
    ) -> Result<Vec<StoredBackup>, Error> {
        let prefix = backups_prefix(target);
        let offset = format!("{prefix}/{from}");
        Ok(group_backups(
            &prefix,
            self.list_after(&prefix, &offset).await?,
        ))
    }

    /// Deletes a backup: the seal first, so that a crash half-way leaves an
    /// incomplete backup rather than a ready one without its archive.
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::delete`]; after a failure the backup may be left without
    /// its seal (incomplete), never ready without its archive.
    pub async fn delete_backup(&self, target: &TargetName, id: &BackupId) -> Result<(), Error> {
        self.delete(&seal_key(target, id)).await?;
        for ext in ARCHIVE_EXTENSIONS {
            self.delete(&archive_key(target, id, ext)).await?;
        }
        Ok(())
    }

    /// Removes what interrupted uploads left where listings do not show it:
    /// in a local store, the `<key>#<n>` staging files of multipart uploads
    /// whose process died (object_store's local backend renames them into
    /// place only when an upload completes). Returns the removed file names.
    /// Call it only when no upload of the target can be running (the engine
    /// checks the target's lease). On S3 and Azure, uncommitted parts are not
    /// listable here: a lifecycle rule on the bucket expires them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] when the local folder cannot be read or a file cannot be removed.
    pub async fn remove_upload_leftovers(&self, target: &TargetName) -> Result<Vec<String>, Error> {
        let Some(dir) = self.local_dir() else {
            return Ok(Vec::new());
        };
        let dir = dir.join(backups_prefix(target));
        let mut removed = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => {
                return Err(Error::new(
                    Op::Delete,
                    backups_prefix(target),
                    ErrorKind::Other,
                    format!("reading {}: {e}", dir.display()),
                ));
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains('#') && entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| Error::new(Op::Delete, &name, ErrorKind::Other, e.to_string()))?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Removes incomplete backups (an archive without a seal) of a target
    /// whose archive was last written before `older_than`, and returns their
    /// ids. Choose `older_than` well before any upload that may still be
    /// running (the engine uses the job timeout).
    ///
    /// # Errors
    ///
    /// The store's errors of [`Store::list`] and [`Store::delete`]; what was removed before a
    /// failure stays removed.
    pub async fn remove_incomplete(
        &self,
        target: &TargetName,
        older_than: Timestamp,
    ) -> Result<Vec<BackupId>, Error> {
        let mut removed = Vec::new();
        for b in self.list_backups(target).await? {
            if b.seal.is_some() {
                continue;
            }
            if let Some(archive) = &b.archive
                && archive.last_modified < older_than
            {
                self.delete(&archive.key).await?;
                removed.push(b.id);
            }
        }
        Ok(removed)
    }
}
