//! Verifying backups at three tiers.

use std::sync::Arc;
use std::time::Instant;

use cairn_archive::{ReadOptions, SeekableArchive};
use cairn_catalog::{BackupRecord, Verification};
use cairn_integrity::{PublicKey, SignedSeal};
use cairn_job::JobKind;
use cairn_job::idempotency::IdempotencyKey;
use cairn_manifest::EntryKind;
use rand::seq::IndexedRandom;
use serde::Serialize;
use tokio::runtime::Handle;

use crate::bridge::StoreRangeReader;
use crate::config::VerifyTier;
use crate::error::{Error, task};
use crate::jobs::{JobCtx, JobHandle, Spec};
use crate::vault::{Inner, Vault};

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup.
    pub backup_id: String,
    /// The tier.
    pub tier: VerifyTier,
    /// Whether everything checked out.
    pub ok: bool,
    /// What was checked, or what differed.
    pub message: String,
    /// Entries whose content was checked.
    pub entries_checked: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl Vault {
    /// Verifies a backup at `tier`; the result is recorded on the backup
    /// and is the job's result ([`VerifyReport`]). A verification that
    /// finds a difference succeeds as a job with `ok: false`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`].
    pub async fn verify(&self, id: &str, tier: VerifyTier) -> Result<JobHandle, Error> {
        self.verify_with_key(id, tier, None).await
    }

    /// [`Vault::verify`] with an idempotency key: the same key and request
    /// give the same job; the same key with another request is refused.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Idempotency`].
    pub async fn verify_with_key(
        &self,
        id: &str,
        tier: VerifyTier,
        key: Option<IdempotencyKey>,
    ) -> Result<JobHandle, Error> {
        let record = self.inner.backup_record(id).await?;
        let inner = Arc::clone(&self.inner);
        let spec = Spec::new(
            JobKind::Verify,
            record.target.as_str(),
            Some(record.id.to_string()),
            key.as_ref(),
            &(id, tier.as_str()),
        )?;
        self.inner
            .start(spec, move |ctx| async move {
                let report = verify_backup(&inner, &record, tier, Some(&ctx)).await?;
                Ok(serde_json::to_value(&report).unwrap_or_default())
            })
            .await
    }
}

impl Vault {
    /// A backup's manifest (components, entries with sizes, modes and
    /// digests, skipped files), read by range from the archive's tail and
    /// authenticated: the seal with the trusted keys, then the manifest's
    /// signature and position against the seal.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Verification`], store errors.
    pub async fn manifest(&self, id: &str) -> Result<cairn_manifest::Manifest, Error> {
        let record = self.inner.backup_record(id).await?;
        let (reader, seal, public) = open_sealed(&self.inner, &record).await?;
        tokio::task::spawn_blocking(move || {
            SeekableArchive::open_sealed(reader, &seal, &public, ReadOptions::default())
                .map(|a| a.manifest().manifest().clone())
        })
        .await
        .map_err(task)?
        .map_err(Error::from)
    }
}

/// A reader of a ready backup's archive, with its verified seal and the key
/// that signed it. An archive that is missing or whose size is not the
/// seal's (truncated, or grown) is a failed verification, like a seal that
/// does not verify.
pub(crate) async fn open_sealed(
    inner: &Inner,
    record: &BackupRecord,
) -> Result<(StoreRangeReader, SignedSeal, PublicKey), Error> {
    let id = record.id;
    let (seal, public) = read_seal(inner, record)
        .await?
        .map_err(|why| Error::Verification(format!("backup {id}: {why}")))?;
    let key = record
        .archive_key
        .clone()
        .ok_or_else(|| Error::Invalid(format!("backup {id} has no archive")))?;
    let size = seal.seal().archive_size;
    match inner.store.head(&key).await? {
        None => {
            return Err(Error::Verification(format!(
                "backup {id}: the archive {key} is missing from the store"
            )));
        }
        Some(info) if info.size != size => {
            return Err(Error::Verification(format!(
                "backup {id}: the archive is {} bytes, its seal says {size}",
                info.size
            )));
        }
        Some(_) => {}
    }
    let reader = StoreRangeReader::new(inner.store.clone(), &key, size, Handle::current());
    Ok((reader, seal, public))
}

/// Reads and verifies a backup's seal with the trusted keys; returns it
/// with the key that signed it.
pub(crate) async fn read_seal(
    inner: &Inner,
    record: &BackupRecord,
) -> Result<Result<(SignedSeal, PublicKey), String>, Error> {
    let bytes = inner.store.read_seal(&record.target, &record.id).await?;
    let mut last = String::from("no trusted key");
    for key in &inner.trusted {
        match SignedSeal::parse(&bytes).and_then(|s| s.verify(key)) {
            Ok(seal) => {
                if seal.seal().backup_id != record.id.to_string() {
                    return Ok(Err(format!(
                        "the seal is for backup {}",
                        seal.seal().backup_id
                    )));
                }
                return Ok(Ok((seal, *key)));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Ok(Err(format!("seal: {last}")))
}

/// Verifies `record` at `tier` and records the result; `ctx` (a verify
/// job's) gets the bytes read as they are read.
pub(crate) async fn verify_backup(
    inner: &Arc<Inner>,
    record: &BackupRecord,
    tier: VerifyTier,
    ctx: Option<&JobCtx>,
) -> Result<VerifyReport, Error> {
    let progress = ctx.map(JobCtx::archive_progress);
    let start = Instant::now();
    let mut report = VerifyReport {
        backup_id: record.id.to_string(),
        tier,
        ok: false,
        message: String::new(),
        entries_checked: 0,
        bytes_read: 0,
        duration_ms: 0,
    };
    let key = record
        .archive_key
        .clone()
        .ok_or_else(|| Error::Invalid(format!("backup {} has no archive", record.id)))?;
    let outcome: Result<(u64, String), String> = match read_seal(inner, record).await? {
        Err(why) => Err(why),
        Ok((seal, public)) => match inner.store.head(&key).await? {
            None => Err(format!("the archive {key} is missing from the store")),
            Some(info) if info.size != seal.seal().archive_size => Err(format!(
                "the archive is {} bytes, its seal says {}",
                info.size,
                seal.seal().archive_size
            )),
            Some(info) => {
                let reader =
                    StoreRangeReader::new(inner.store.clone(), &key, info.size, Handle::current());
                let counter = reader.clone();
                let result = tokio::task::spawn_blocking(move || {
                    check(reader, &seal, &public, tier, progress)
                })
                .await
                .map_err(task)?;
                report.bytes_read = counter.fetched();
                // A store that cannot be read says nothing about the backup:
                // the job fails instead of recording a failed verification.
                match result {
                    Err(e) if e.kind() == cairn_archive::ErrorKind::Io => return Err(e.into()),
                    other => other.map_err(|e| e.to_string()),
                }
            }
        },
    };
    match outcome {
        Ok((n, message)) => {
            report.ok = true;
            report.entries_checked = n;
            report.message = message;
        }
        Err(why) => report.message = why,
    }
    report.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let v = Verification {
        at: inner.now(),
        tier: tier.as_str().to_owned(),
        ok: report.ok,
        message: report.message.clone(),
    };
    let id = record.id;
    inner
        .blocking(move |c| c.record_verification(&id, &v))
        .await?;
    Ok(report)
}

/// The blocking part: returns how many entries' content was checked and a
/// summary, or the archive error that says what differs.
fn check(
    reader: StoreRangeReader,
    seal: &SignedSeal,
    key: &PublicKey,
    tier: VerifyTier,
    progress: Option<Arc<dyn cairn_archive::Progress>>,
) -> Result<(u64, String), cairn_archive::Error> {
    let mut opts = ReadOptions::default();
    if let Some(p) = progress {
        opts = opts.progress(p);
    }
    let mut archive = SeekableArchive::open_sealed(reader, seal, key, opts)?;
    let m = archive.manifest().manifest().clone();
    match tier {
        VerifyTier::Quick => Ok((
            0,
            format!(
                "seal, size and manifest signature check out ({} entries)",
                m.entries.len()
            ),
        )),
        VerifyTier::Sample => {
            let files: Vec<usize> = (0..m.entries.len())
                .filter(|&i| m.entries[i].kind == EntryKind::File)
                .collect();
            let mut picked: Vec<usize> = files
                .choose_multiple(&mut rand::rng(), files.len().div_ceil(10))
                .copied()
                .collect();
            // At least one file of each component.
            for c in &m.components {
                if let Some(&i) = files
                    .iter()
                    .find(|&&i| m.entries[i].path.first() == c.name.as_str().as_bytes())
                {
                    picked.push(i);
                }
            }
            picked.sort_unstable();
            picked.dedup();
            archive.verify_entries(&picked)?;
            Ok((
                picked.len() as u64,
                format!(
                    "{} of {} files checked by range reads",
                    picked.len(),
                    files.len()
                ),
            ))
        }
        VerifyTier::Full => {
            let v = archive.verify_full(key)?;
            Ok((
                m.entries.len() as u64,
                v.sha256.map_or_else(
                    || "every byte checked".to_owned(),
                    |d| format!("every byte checked, sha256 {d}"),
                ),
            ))
        }
    }
}
