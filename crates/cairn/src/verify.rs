//! Verifying backups at three tiers.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use cairn_archive::{ReadOptions, SeekableArchive};
use cairn_catalog::{BackupRecord, Verification};
use cairn_integrity::{PublicKey, SignedSeal};
use cairn_job::idempotency::IdempotencyKey;
use cairn_job::{JobKind, JobResult, VerifyReport, VerifyTier};
use cairn_manifest::{AnyManifest, EntryKind};
use rand::seq::IndexedRandom;
use serde::Serialize;
use tokio::runtime::Handle;

use crate::bridge::{StoreRangeReader, StoredArchive};
use crate::error::{Error, task};
use crate::jobs::{JobCtx, JobHandle, Spec};
use crate::vault::{Inner, Vault};

/// How to verify a backup.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerifyRequest {
    /// How thoroughly (default: every byte).
    pub tier: VerifyTier,
    /// Makes retries safe: the same key with the same request returns the
    /// same job, with another request it is refused.
    #[serde(skip)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl VerifyRequest {
    /// A verification at `tier`.
    pub fn new(tier: VerifyTier) -> Self {
        Self {
            tier,
            idempotency_key: None,
        }
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

impl Default for VerifyRequest {
    fn default() -> Self {
        Self::new(VerifyTier::Full)
    }
}

impl From<VerifyTier> for VerifyRequest {
    fn from(tier: VerifyTier) -> Self {
        Self::new(tier)
    }
}

impl Vault {
    /// Verifies a backup at the request's tier; the result is recorded on
    /// the backup and is the job's result ([`VerifyReport`]). A verification
    /// that finds a difference succeeds as a job with `ok: false`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Idempotency`].
    pub async fn verify(
        &self,
        id: &str,
        req: impl Into<VerifyRequest>,
    ) -> Result<JobHandle, Error> {
        let req = req.into();
        let tier = req.tier;
        let record = self.inner.backup_record(id).await?;
        let inner = Arc::clone(&self.inner);
        let spec = Spec::new(
            JobKind::Verify,
            record.target.as_str(),
            Some(record.id.to_string()),
            req.idempotency_key.as_ref(),
            &(id, tier.as_str()),
        )?;
        self.inner
            .start(spec, move |ctx| async move {
                Ok(JobResult::Verify(
                    verify_backup(&inner, &record, tier, Some(&ctx)).await?,
                ))
            })
            .await
    }
}

impl Vault {
    /// A backup's manifest (components, entries with sizes, modes and
    /// digests, skipped files), read by range from the archive's tail and
    /// authenticated: the seal with the trusted keys, then the manifest's
    /// signature and position against the seal. A format 2 backup's entries
    /// are read from its pages and shown in format 1's shape (`version`
    /// `2.0`, or `2.1` for what Cairn writes now). Every entry is in the result: to list a large backup with
    /// bounded memory, page through it with [`Vault::manifest_page`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Verification`], store errors.
    pub async fn manifest(&self, id: &str) -> Result<cairn_manifest::Manifest, Error> {
        self.manifest_page(id, 0, None).await
    }

    /// A backup's manifest with only the entries numbered `offset ..
    /// offset + limit` (all from `offset` without a limit): what a listing
    /// pages through. A format 2 backup reads only the pages holding them,
    /// each checked against its signed root, so a page of a listing costs
    /// the same whatever the backup's size. The components' `entries` add up
    /// to the whole count.
    ///
    /// # Errors
    ///
    /// As [`Vault::manifest`].
    pub async fn manifest_page(
        &self,
        id: &str,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<cairn_manifest::Manifest, Error> {
        let record = self.inner.backup_record(id).await?;
        // With its chain: an incremental backup's unchanged pages are its
        // parents'.
        let (mut a, _, _) = open_chain(&self.inner, &record, ReadOptions::default()).await?;
        let end = limit.map_or(u64::MAX, |l| offset.saturating_add(l));
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            a.for_each_entry_in(offset..end, |e| {
                entries.push(e.clone());
                Ok(())
            })?;
            Ok(match a.manifest().clone() {
                AnyManifest::V1(m) => cairn_manifest::Manifest {
                    entries,
                    ..m.into_manifest()
                },
                AnyManifest::V2(r) => r.manifest().listing(entries),
            })
        })
        .await
        .map_err(task)?
    }

    /// A backup's manifest, authenticated against its seal: for a format 2
    /// archive the root alone (its entries stay in the pages), so that a
    /// check of origin and components reads a few KiB whatever the files.
    pub(crate) async fn open_manifest(&self, id: &str) -> Result<AnyManifest, Error> {
        let record = self.inner.backup_record(id).await?;
        let (reader, seal, public) = open_sealed(&self.inner, &record).await?;
        let ids = Arc::clone(&self.inner.identities);
        tokio::task::spawn_blocking(move || {
            open_archive(reader, &seal, &public, &ids, ReadOptions::default())
                .map(|a| a.manifest().clone())
        })
        .await
        .map_err(task)?
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

/// Opens the archive `reader` reads through its verified `seal` (decrypted
/// with `identities` when the seal says it is encrypted). Blocking.
pub(crate) fn open_archive(
    reader: StoreRangeReader,
    seal: &SignedSeal,
    public: &PublicKey,
    identities: &cairn_crypt::Identities,
    opts: ReadOptions,
) -> Result<SeekableArchive<StoredArchive>, Error> {
    let src = StoredArchive::open(reader, seal, identities)?;
    SeekableArchive::open_sealed(src, seal, public, opts).map_err(Error::from)
}

/// Opens a ready backup's archive through its seal, with the archives of
/// the backups its data is partly in (an incremental backup's chain)
/// attached and counting their bytes with its own reader's. A parent whose
/// record or archive is missing, or whose root is not the one the child
/// names, is a failed verification naming the parent.
pub(crate) async fn open_chain(
    inner: &Inner,
    record: &BackupRecord,
    opts: ReadOptions,
) -> Result<(SeekableArchive<StoredArchive>, StoreRangeReader, PublicKey), Error> {
    let (reader, seal, public) = open_sealed(inner, record).await?;
    let counter = reader.clone();
    let o = opts.clone();
    let ids = Arc::clone(&inner.identities);
    let archive =
        tokio::task::spawn_blocking(move || open_archive(reader, &seal, &public, &ids, o))
            .await
            .map_err(task)??;
    let named = archive.parents_named().to_vec();
    if named.is_empty() {
        return Ok((archive, counter, public));
    }
    let id = record.id;
    let mut sealed = Vec::with_capacity(named.len());
    for p in &named {
        let pid = p.backup_id;
        let parent = inner
            .blocking(move |c| c.get_backup(&pid))
            .await?
            .ok_or_else(|| {
                Error::Verification(format!(
                    "backup {id}: its parent {pid} is missing from the catalog"
                ))
            })?;
        let (r, s, k) = open_sealed(inner, &parent).await.map_err(|e| match e {
            Error::Verification(why) => {
                Error::Verification(format!("backup {id}: its parent {pid}: {why}"))
            }
            e => e,
        })?;
        sealed.push((pid, r.counting_with(&counter), s, k));
    }
    let ids = Arc::clone(&inner.identities);
    let archive = tokio::task::spawn_blocking(move || {
        let mut archive = archive;
        let mut parents = Vec::with_capacity(sealed.len());
        for (pid, r, s, k) in sealed {
            let a = open_archive(r, &s, &k, &ids, opts.clone()).map_err(|e| match e {
                // Names the parent: an older backup whose recipients'
                // identities are not (or no longer) here.
                e @ Error::NoIdentity { .. } => e,
                e => Error::Verification(format!("backup {id}: its parent {pid}: {e}")),
            })?;
            parents.push(a);
        }
        archive
            .attach_parents(parents)
            .map_err(|e| Error::Verification(format!("backup {id}: {e}")))?;
        Ok::<_, Error>(archive)
    })
    .await
    .map_err(task)??;
    Ok((archive, counter, public))
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
    let mut report = VerifyReport::new(record.id.to_string(), tier);
    let mut opts = ReadOptions::default();
    if let Some(p) = progress {
        opts = opts.progress(p);
    }
    // What fails to open (seal, size, a parent) is a failed verification; a
    // store that cannot be read says nothing about the backup: the job
    // fails instead.
    let outcome: Result<(u64, String), String> = match open_chain(inner, record, opts).await {
        // An encrypted backup no identity here opens: the quick and sample
        // tiers check what the seal covers, the stored bytes.
        Err(Error::NoIdentity { .. }) if tier != VerifyTier::Full => {
            stored_bytes(inner, record, tier, &mut report).await?
        }
        Err(e @ Error::NoIdentity { .. }) => Err(e.to_string()),
        Err(Error::Verification(why)) => Err(why),
        Err(Error::Archive(e)) if e.kind() != cairn_archive::ErrorKind::Io => Err(e.to_string()),
        Err(e) => return Err(e),
        Ok((archive, counter, public)) => {
            let result = tokio::task::spawn_blocking(move || check(archive, &public, tier))
                .await
                .map_err(task)?;
            report.bytes_read = counter.fetched();
            match result {
                Err(e) if e.kind() == cairn_archive::ErrorKind::Io => return Err(e.into()),
                other => other.map_err(|e| e.to_string()),
            }
        }
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

/// The quick or sample tier of an encrypted backup without an identity:
/// the seal (signature, the object's size) for `quick`; for `sample`, every
/// stored byte against the seal's SHA-256 as well, since no part of an age
/// file can be checked without its key. The manifest inside is not read.
async fn stored_bytes(
    inner: &Inner,
    record: &BackupRecord,
    tier: VerifyTier,
    report: &mut VerifyReport,
) -> Result<Result<(u64, String), String>, Error> {
    let (reader, seal, _) = match open_sealed(inner, record).await {
        Ok(opened) => opened,
        Err(Error::Verification(why)) => return Ok(Err(why)),
        Err(e) => return Err(e),
    };
    if tier == VerifyTier::Quick {
        return Ok(Ok((
            0,
            "seal and size of the encrypted object check out (no identity here: its manifest is not read)"
                .to_owned(),
        )));
    }
    let counter = reader.clone();
    let size = seal.seal().archive_size;
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut reader = reader;
        let mut hashing = cairn_integrity::HashingReader::new(
            cairn_archive::RangeRead::read_range(&mut reader, 0..size)?,
        );
        std::io::copy(&mut hashing, &mut std::io::sink())?;
        let (_, sha256, read) = hashing.finish();
        Ok((sha256, read))
    })
    .await
    .map_err(task)?
    .map_err(|source| {
        Error::Archive(cairn_archive::Error::Io {
            op: "reading the encrypted archive",
            path: None,
            source,
        })
    })?;
    report.bytes_read = counter.fetched();
    let (sha256, read) = digest;
    Ok(seal
        .seal()
        .check_archive(read, &sha256)
        .map(|()| {
            (
                0,
                format!("every stored byte of the encrypted object matches its seal (sha256 {sha256}; no identity here: its manifest is not read)"),
            )
        })
        .map_err(|e| e.to_string()))
}

/// The blocking part: returns how many entries' content was checked and a
/// summary, or the archive error that says what differs.
fn check(
    mut archive: SeekableArchive<StoredArchive>,
    key: &PublicKey,
    tier: VerifyTier,
) -> Result<(u64, String), cairn_archive::Error> {
    let m = archive.manifest().clone();
    let entries = m.entry_count();
    match tier {
        VerifyTier::Quick => Ok((
            0,
            format!("seal, size and manifest signature check out ({entries} entries)"),
        )),
        VerifyTier::Sample => {
            // The files, with the first of each component, listed page by
            // page (the pages are checked against the root on the way).
            let mut files: Vec<usize> = Vec::new();
            let mut firsts: Vec<usize> = Vec::new();
            let mut seen: Vec<Vec<u8>> = Vec::new();
            let mut i = 0usize;
            archive.for_each_entry(|e| {
                if e.kind == EntryKind::File {
                    files.push(i);
                    if !seen.iter().any(|c| c.as_slice() == e.path.first()) {
                        seen.push(e.path.first().to_vec());
                        firsts.push(i);
                    }
                }
                i += 1;
                Ok(())
            })?;
            let mut picked: Vec<usize> = files
                .choose_multiple(&mut rand::rng(), files.len().div_ceil(10))
                .copied()
                .collect();
            // At least one file of each component.
            picked.extend(firsts);
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
                entries,
                v.sha256.map_or_else(
                    || "every byte checked".to_owned(),
                    |d| format!("every byte checked, sha256 {d}"),
                ),
            ))
        }
    }
}

/// What [`Vault::verify_file`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileVerification {
    /// The backup the archive holds.
    pub backup_id: String,
    /// Its target.
    pub target: String,
    /// Its entries, each checked against its digest.
    pub entries: u64,
    /// The file's size.
    pub size: u64,
    /// The file's SHA-256, hex.
    pub sha256: Option<String>,
    /// Whether `<file>.seal` was beside it, and matched.
    pub seal_checked: bool,
    /// The id of the key that had signed it.
    pub signer: String,
}

impl Vault {
    /// Verifies an archive file (a download, a copy kept elsewhere): every
    /// entry against its digest, the manifest's signature, and, if
    /// `<path>.seal` is beside it, the seal against the file. The signer
    /// must be `key`, or, without one, a key this vault trusts.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a file that cannot be opened;
    /// [`Error::Verification`] (or an archive error of that kind) for one
    /// that does not check out: tampered, truncated, signed by another key.
    pub async fn verify_file(
        &self,
        path: &std::path::Path,
        key: Option<PublicKey>,
    ) -> Result<FileVerification, Error> {
        let keys = key.map_or_else(|| self.inner.trusted.clone(), |k| vec![k]);
        let path = path.to_owned();
        let ids = Arc::clone(&self.inner.identities);
        tokio::task::spawn_blocking(move || check_file(&path, &keys, &ids))
            .await
            .map_err(task)?
    }
}

/// The blocking part of [`Vault::verify_file`]. An encrypted file (an age
/// file, as an encrypted backup downloads) is decrypted with `ids`.
fn check_file(
    path: &std::path::Path,
    keys: &[PublicKey],
    ids: &cairn_crypt::Identities,
) -> Result<FileVerification, Error> {
    let open = || {
        std::fs::File::open(path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    };
    let mut head = Vec::new();
    open()?
        .take(32)
        .read_to_end(&mut head)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let encrypted = cairn_crypt::is_age(&head);
    let refused = |e: cairn_crypt::Error| Error::Verification(format!("{}: {e}", path.display()));
    // The key that signed it, from the manifest at the tail (two small
    // reads); the full check then reads every byte once.
    let key = keys
        .iter()
        .find(|k| {
            open().is_ok_and(|f| {
                let src = cairn_archive::SeekSource(f);
                if encrypted {
                    cairn_crypt::Decrypted::open_fetching(src, ids, crate::bridge::LOCAL_FETCH)
                        .is_ok_and(|d| SeekableArchive::open(d, k, ReadOptions::default()).is_ok())
                } else {
                    SeekableArchive::open(src, k, ReadOptions::default()).is_ok()
                }
            })
        })
        .unwrap_or(&keys[0]);
    let file = std::io::BufReader::new(open()?);
    let verified = if encrypted {
        let plain = cairn_crypt::DecryptingReader::new(file, ids).map_err(refused)?;
        cairn_archive::ArchiveReader::new(plain).and_then(|r| r.verify(key))?
    } else {
        cairn_archive::ArchiveReader::new(file).and_then(|r| r.verify(key))?
    };
    let mut seal_path = path.as_os_str().to_owned();
    seal_path.push(".seal");
    let seal_checked = match std::fs::read(&seal_path) {
        Ok(bytes) => {
            let seal = SignedSeal::parse(&bytes)
                .and_then(|s| s.verify(key))
                .map_err(|e| Error::Verification(format!("seal: {e}")))?;
            verified.check_seal(&seal)?;
            true
        }
        Err(_) => false,
    };
    let m = &verified.manifest;
    Ok(FileVerification {
        backup_id: m.backup_id().to_string(),
        target: m.target().to_string(),
        entries: m.entry_count(),
        size: verified.size,
        sha256: verified.sha256.map(|d| d.to_string()),
        seal_checked,
        signer: key.key_id().to_string(),
    })
}
