//! Rebuilding a lost or corrupt catalog from the store.

use std::sync::Arc;

use cairn_archive::{ReadOptions, SeekableArchive};
use cairn_catalog::{BackupRecord, Catalog};
use cairn_integrity::{PublicKey, SignedSeal};
use cairn_manifest::{BackupId, TargetName};
use cairn_storage::{ErrorKind, ObjectInfo, Store, StoredBackup};
use tokio::runtime::Handle;

use crate::Error;
use crate::bridge::{StoreRangeReader, StoredArchive};

/// What a rebuild found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Targets written to the catalog (including ones left with no backups).
    pub targets: usize,
    /// Ready backups recorded.
    pub backups: usize,
    /// Archives without a seal: not recorded (remove them with
    /// `Store::remove_incomplete`).
    pub incomplete: Vec<(TargetName, BackupId)>,
    /// Sealed backups that failed verification (a seal not signed by the
    /// trusted key, a manifest that does not match its seal, …): not
    /// recorded, listed with the reason.
    pub invalid: Vec<(TargetName, BackupId, String)>,
    /// Bytes read from archives (manifests only: never whole archives).
    pub archive_bytes_read: u64,
    /// Records of the targets' shared state (pins, deletes, undeletes,
    /// purges) applied after the backups were recorded.
    pub state_records: u64,
}

/// Rebuilds the backup records of `catalog` from what `store` holds: for each
/// target, each sealed backup's seal is verified with one of `keys`, its manifest is
/// read with range requests and checked against the seal, and the target's
/// records are replaced in one transaction (keeping the pins, soft deletes and
/// verification results of backups the catalog already knew). Targets the
/// catalog lists but the store no longer holds are emptied.
///
/// Jobs, schedules and idempotency keys are not in the store and are left as
/// they are.
pub(crate) async fn rebuild_catalog(
    store: &Store,
    catalog: Arc<Catalog>,
    keys: &[PublicKey],
    ids: &Arc<cairn_crypt::Identities>,
) -> Result<RebuildReport, Error> {
    let mut report = RebuildReport::default();
    let mut targets = store.list_targets().await?;
    let known = {
        let c = Arc::clone(&catalog);
        tokio::task::spawn_blocking(move || c.backup_targets())
            .await
            .map_err(Error::Task)??
    };
    for t in known {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    for target in targets {
        let mut records = Vec::new();
        for stored in store.list_backups(&target).await? {
            match read_backup(store, &target, &stored, keys, ids, &mut report).await? {
                Some(record) => records.push(record),
                None => continue,
            }
        }
        report.backups += records.len();
        report.targets += 1;
        let c = Arc::clone(&catalog);
        tokio::task::spawn_blocking(move || c.replace_target_backups(&target, &records))
            .await
            .map_err(Error::Task)??;
    }
    Ok(report)
}

/// The record of one stored backup, or `None` (with the report updated) if
/// it is incomplete or does not verify. Store failures are errors: a rebuild
/// from a partial listing must not replace the catalog.
async fn read_backup(
    store: &Store,
    target: &TargetName,
    stored: &StoredBackup,
    keys: &[PublicKey],
    ids: &Arc<cairn_crypt::Identities>,
    report: &mut RebuildReport,
) -> Result<Option<BackupRecord>, Error> {
    if stored.archive.is_none() || stored.seal.is_none() {
        report.incomplete.push((target.clone(), stored.id));
        return Ok(None);
    }
    let (outcome, read) =
        check_sealed(store, target, &stored.id, stored.archive.clone(), keys, ids).await?;
    report.archive_bytes_read += read;
    match outcome {
        Sealed::Ready(record) => Ok(Some(*record)),
        Sealed::Incomplete => {
            report.incomplete.push((target.clone(), stored.id));
            Ok(None)
        }
        Sealed::Invalid(why) => {
            report.invalid.push((target.clone(), stored.id, why));
            Ok(None)
        }
    }
}

/// What the store holds for one backup id.
enum Sealed {
    /// Sealed, the seal and manifest verified: its record.
    Ready(Box<BackupRecord>),
    /// No seal, or no archive.
    Incomplete,
    /// Sealed, but it does not check out (why).
    Invalid(String),
}

/// The record of backup `id` of `target` if the store holds it sealed, its
/// seal verified by one of `keys` and its manifest (read by range) checked
/// against the seal; else why not. `archive` is its archive object when a
/// listing found it (else it is looked for by key). Store failures are
/// errors.
pub(crate) async fn sealed_record(
    store: &Store,
    target: &TargetName,
    id: &BackupId,
    archive: Option<ObjectInfo>,
    keys: &[PublicKey],
    ids: &Arc<cairn_crypt::Identities>,
) -> Result<Result<BackupRecord, String>, Error> {
    Ok(
        match check_sealed(store, target, id, archive, keys, ids).await?.0 {
            Sealed::Ready(record) => Ok(*record),
            Sealed::Incomplete => Err(format!("backup {id} has no seal or no archive")),
            Sealed::Invalid(why) => Err(why),
        },
    )
}

/// [`sealed_record`] with the bytes it read from the archive.
async fn check_sealed(
    store: &Store,
    target: &TargetName,
    id: &BackupId,
    archive: Option<ObjectInfo>,
    keys: &[PublicKey],
    ids: &Arc<cairn_crypt::Identities>,
) -> Result<(Sealed, u64), Error> {
    let bytes = match store.read_seal(target, id).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Sealed::Incomplete, 0)),
        Err(e) if e.kind() == ErrorKind::Other => return Ok((Sealed::Invalid(e.to_string()), 0)),
        Err(e) => return Err(e.into()),
    };
    let mut verified = Err(String::from("no trusted key"));
    for key in keys {
        match SignedSeal::parse(&bytes).and_then(|s| s.verify(key)) {
            Ok(seal) => {
                verified = Ok((seal, *key));
                break;
            }
            Err(e) => verified = Err(format!("seal: {e}")),
        }
    }
    let (seal, key) = match verified {
        Ok(v) => v,
        Err(why) => return Ok((Sealed::Invalid(why), 0)),
    };
    if seal.seal().backup_id != id.to_string() {
        let why = format!("the seal is for {}", seal.seal().backup_id);
        return Ok((Sealed::Invalid(why), 0));
    }
    // By key, not by listing the target (whose cost grows with its
    // backups: a rebuild of 10,000 would list them 10,000 times).
    let archive = match archive {
        Some(found) => Some(found),
        None => {
            let mut found = None;
            for ext in cairn_storage::layout::ARCHIVE_EXTENSIONS {
                let key = cairn_storage::layout::archive_key(target, id, ext);
                if let Some(info) = store.head(&key).await? {
                    found = Some(info);
                    break;
                }
            }
            found
        }
    };
    let Some(archive) = archive else {
        return Ok((Sealed::Incomplete, 0));
    };
    let reader =
        StoreRangeReader::new(store.clone(), &archive.key, archive.size, Handle::current());
    let counter = reader.clone();
    let (archive_key, target_owned) = (archive.key.clone(), target.clone());
    let (ids, id) = (Arc::clone(ids), *id);
    let outcome = tokio::task::spawn_blocking(move || -> Result<BackupRecord, String> {
        let src = if seal.seal().encryption.is_some() {
            match reader.decrypted(&ids) {
                Ok(d) => StoredArchive::Encrypted(Box::new(d)),
                // No identity here opens it: its seal alone is what this
                // host can prove (a chain's parents included), never a
                // reason to drop a sealed backup.
                Err(e) if e.kind() == cairn_crypt::ErrorKind::NoMatchingIdentity => {
                    return BackupRecord::from_encrypted_seal(
                        &seal,
                        id,
                        target_owned,
                        &archive_key,
                    )
                    .ok_or_else(|| {
                        "the seal of an encrypted archive names an invalid parent".to_owned()
                    });
                }
                Err(e) => return Err(format!("backup {id}: {e}")),
            }
        } else {
            StoredArchive::Plain(reader)
        };
        let opened = SeekableArchive::open_sealed(src, &seal, &key, ReadOptions::default())
            .map_err(|e| format!("manifest: {e}"))?;
        let manifest = opened.manifest();
        if *manifest.target() != target_owned {
            return Err(format!("the manifest is for target {}", manifest.target()));
        }
        Ok(BackupRecord::from_sealed(manifest, &seal, &archive_key))
    })
    .await
    .map_err(Error::Task)?;
    let sealed = match outcome {
        Ok(record) => Sealed::Ready(Box::new(record)),
        Err(why) => Sealed::Invalid(why),
    };
    Ok((sealed, counter.fetched()))
}
