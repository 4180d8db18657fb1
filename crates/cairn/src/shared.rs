//! One truth across hosts: the decisions about a target's backups that every
//! host sharing the store must respect (pins, soft deletes, undeletes,
//! purges) are records of the target's state log in the store
//! (`cairn_storage::state`), signed with the vault's key; a catalog follows
//! the log, and the store's new backups, before every decision that depends
//! on them (`docs/storage.md` "Shared state").
//!
//! A record reads
//!
//! ```text
//! {"generation":7,"target":"app","at":"…","by":"org_…@host","change":"pin","backup":"bkp_…"}
//! <key id> <signature of the first line, hex>
//! ```
//!
//! and a change is written as the next generation, with put-if-absent, by a
//! writer that has applied every record before it and checked the change
//! against them: two hosts never lose each other's decision, and a decision
//! is never taken against a state another host changed a moment earlier.

use bytes::Bytes;
use cairn_catalog::{BackupRecord, StateChange};
use cairn_integrity::{KeyId, PublicKey, Signature};
use cairn_manifest::{BackupId, TargetName};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::vault::Inner;

/// What a record decides about its backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Change {
    /// The backup was sealed: the record carries its catalog record, so
    /// that followers need not read its seal and manifest.
    Publish,
    Pin,
    Unpin,
    Delete,
    Undelete,
    Purge,
    /// The target's automatic backups are enabled or disabled (`enabled`).
    Schedule,
    /// The target's retention policy is set (`policy`).
    Retention,
    /// The interval of its automatic backups is set (`every_seconds`, 0:
    /// manual only).
    Interval,
}

/// What a writer decided, to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) change: Change,
    /// The backup it is about (none for a target's settings).
    pub(crate) backup: Option<BackupId>,
    /// A schedule change's new state.
    pub(crate) enabled: Option<bool>,
    /// A retention change's policy.
    pub(crate) policy: Option<cairn_retention::Policy>,
    /// An interval change's seconds (0: manual only).
    pub(crate) every_seconds: Option<u64>,
}

impl Decision {
    /// `change` of backup `id`.
    pub(crate) fn of_backup(change: Change, id: BackupId) -> Self {
        Decision {
            backup: Some(id),
            ..Decision::of_target(change)
        }
    }

    /// A change of the target's settings, `change`, with nothing set yet.
    pub(crate) fn of_target(change: Change) -> Self {
        Decision {
            change,
            backup: None,
            enabled: None,
            policy: None,
            every_seconds: None,
        }
    }
}

/// A record of a target's state log, as its first line says it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    generation: u64,
    target: TargetName,
    at: Timestamp,
    by: String,
    change: Change,
    /// The backup it is about (all but schedule changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup: Option<BackupId>,
    /// A schedule change's new state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    /// A retention change's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<cairn_retention::Policy>,
    /// An interval change's seconds (0: manual only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every_seconds: Option<u64>,
    /// A published backup's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<Box<BackupRecord>>,
}

impl Record {
    /// What the record changes; `None` for a record whose fields do not
    /// fit its change (a schedule change naming a backup, a pin naming
    /// none, a record carried by anything but a publication).
    fn state_change(&self) -> Option<StateChange> {
        // Each field belongs to one change: present there, absent elsewhere.
        let fits = |field: bool, change: Change| field == (self.change == change);
        if !(fits(self.record.is_some(), Change::Publish)
            && fits(self.enabled.is_some(), Change::Schedule)
            && fits(self.policy.is_some(), Change::Retention)
            && fits(self.every_seconds.is_some(), Change::Interval))
        {
            return None;
        }
        Some(match (self.change, self.backup, self.enabled) {
            (Change::Schedule, None, Some(enabled)) => StateChange::Schedule {
                enabled,
                at: self.at,
            },
            (Change::Retention, None, _) => StateChange::Retention(self.policy.clone()?),
            (Change::Interval, None, _) => StateChange::Interval(
                self.every_seconds
                    .and_then(|s| (s > 0).then(|| std::time::Duration::from_secs(s))),
            ),
            (_, Some(id), _) => match self.change {
                Change::Publish => StateChange::Published(id),
                Change::Pin => StateChange::Pin(id),
                Change::Unpin => StateChange::Unpin(id),
                Change::Delete => StateChange::Delete(id, self.at),
                Change::Undelete => StateChange::Undelete(id),
                Change::Purge => StateChange::Purge(id),
                Change::Schedule | Change::Retention | Change::Interval => return None,
            },
            _ => return None,
        })
    }

    /// The record's bytes, signed by `inner`'s key.
    fn encode(&self, inner: &Inner) -> Result<Bytes, Error> {
        let line = serde_json::to_string(self)
            .map_err(|e| Error::Invalid(format!("encoding a state record: {e}")))?;
        let signature = inner.key.sign(line.as_bytes());
        Ok(Bytes::from(format!(
            "{line}\n{} {}\n",
            inner.key.key_id(),
            signature.to_hex()
        )))
    }

    /// Record `generation` of `target` from the store's `bytes`, its
    /// signature verified by one of `keys`, and what it changes.
    fn decode(
        bytes: &[u8],
        target: &TargetName,
        generation: u64,
        keys: &[PublicKey],
    ) -> Result<(Record, StateChange), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())?;
        let mut lines = text.split('\n');
        let (Some(line), Some(sig_line), Some(""), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err("it is not two lines (a record and its signature)".to_owned());
        };
        let (id, sig) = sig_line
            .split_once(' ')
            .ok_or_else(|| "its signature line is not \"<key id> <signature>\"".to_owned())?;
        let id: KeyId = id.parse().map_err(|e| format!("its signer: {e}"))?;
        let key = keys
            .iter()
            .find(|k| k.key_id() == id)
            .ok_or_else(|| format!("it is signed by key {id}, which this vault does not trust"))?;
        let sig = Signature::from_hex(sig).map_err(|e| format!("its signature: {e}"))?;
        key.verify(line.as_bytes(), &sig)
            .map_err(|_| format!("its signature does not verify with key {id}"))?;
        let record: Record = serde_json::from_str(line).map_err(|e| format!("its record: {e}"))?;
        if record.generation != generation || record.target != *target {
            return Err(format!(
                "it says it is record {} of target {}",
                record.generation, record.target
            ));
        }
        let change = record.state_change().ok_or_else(|| {
            format!(
                "its fields do not fit a {:?} change (a backup, a schedule state, a published record)",
                record.change
            )
        })?;
        if let Some(r) = &record.record {
            let prefix = format!(
                "{}/{}.",
                cairn_storage::layout::backups_prefix(target),
                r.id
            );
            if Some(r.id) != record.backup
                || r.target != *target
                || !r.status.is_ready()
                || !r
                    .archive_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&prefix))
            {
                return Err(format!(
                    "the record it publishes is not of a ready backup {} of target {target}",
                    r.id
                ));
            }
        }
        Ok((record, change))
    }
}

/// What [`crate::Vault::sync`] found in the store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Targets followed.
    pub targets: u64,
    /// Backups found in the store that the catalog did not hold (published
    /// by other hosts), now recorded.
    pub new_backups: u64,
    /// Records of the targets' shared state (pins, deletes, undeletes,
    /// purges by any host) applied.
    pub changes: u64,
}

/// What following one target's store found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Synced {
    /// Records of the state log applied.
    pub(crate) changes: u64,
    /// Backups found in the store that the catalog did not hold.
    pub(crate) new_backups: u64,
}

/// Whether `c` changes a target's settings (which the vault also holds in
/// memory).
fn changes_settings(c: &StateChange) -> bool {
    matches!(c, StateChange::Retention(_) | StateChange::Interval(_))
}

/// How many times a change is tried against writers racing for the same
/// generation before giving up.
const ATTEMPTS: usize = 16;

impl Inner {
    /// Brings the catalog's view of `target` up to the store's: the backups
    /// published since the newest it holds (listed from there, less the
    /// longest a job may take to publish one it began earlier), then the
    /// state log's records it has not applied, in order. Serialised per
    /// vault, so that two callers never apply the same records twice.
    pub(crate) async fn sync_target(&self, target: &TargetName) -> Result<Synced, Error> {
        let _one = self.sync_lock.lock().await;
        let mut synced = Synced::default();
        let (t, t2) = (target.clone(), target.clone());
        let first = self.blocking(move |c| c.state_generation(&t)).await? + 1;
        // The log first: a record is written after the backup it names was
        // sealed, so the listing after it finds every backup it names.
        let mut records = Vec::new();
        while let Some(bytes) = self
            .store
            .read_state(target, first + records.len() as u64)
            .await?
        {
            let generation = first + records.len() as u64;
            let record =
                Record::decode(&bytes, target, generation, &self.trusted).map_err(|why| {
                    Error::Verification(format!(
                        "record {generation} of the shared state of target {target}: {why}"
                    ))
                })?;
            records.push(record);
        }
        // Backups the log publishes: their records, without reading their
        // seals and manifests (signed by a trusted key, like the seal).
        for r in records.iter().filter_map(|(r, _)| r.record.as_deref()) {
            let r = r.clone();
            let added = self
                .blocking(move |c| {
                    if c.get_backup(&r.id)?.is_some() || c.is_purged(&r.id)? {
                        return Ok(false);
                    }
                    c.insert_backup(&r).map(|()| true)
                })
                .await?;
            synced.new_backups += u64::from(added);
        }
        let newest = self.blocking(move |c| c.newest_backup_id(&t2)).await?;
        let stored = match newest {
            Some(id) => {
                let back = u64::try_from(
                    (self.job_timeout
                        + SignedDuration::try_from(self.lease_ttl).unwrap_or_default())
                    .as_millis(),
                )
                .unwrap_or(0);
                let from = BackupId::from_parts(id.unix_ms().saturating_sub(back), 0);
                self.store.list_backups_after(target, &from).await?
            }
            None => self.store.list_backups(target).await?,
        };
        for found in stored
            .into_iter()
            .filter(cairn_storage::StoredBackup::is_complete)
        {
            let (id, archive) = (found.id, found.archive);
            let known = self
                .blocking(move |c| Ok(c.get_backup(&id)?.is_some() || c.is_purged(&id)?))
                .await?;
            if known {
                continue;
            }
            match crate::rebuild::sealed_record(
                &self.store,
                target,
                &id,
                archive,
                &self.trusted,
                &self.identities,
            )
            .await?
            {
                Ok(record) => {
                    self.blocking(move |c| c.insert_backup(&record)).await?;
                    synced.new_backups += 1;
                }
                Err(why) => {
                    tracing::warn!(target = %target, backup = %id, %why, "a backup in the store does not check out: not recorded");
                }
            }
        }
        if !records.is_empty() {
            let changes: Vec<_> = records.iter().map(|(_, c)| c.clone()).collect();
            synced.changes = changes.len() as u64;
            let settings = changes.iter().any(changes_settings);
            let purged: Vec<BackupId> = changes
                .iter()
                .filter_map(|c| match c {
                    StateChange::Purge(id) => Some(*id),
                    _ => None,
                })
                .collect();
            let t = target.clone();
            self.blocking(move |c| c.apply_state(&t, first, &changes))
                .await?;
            if settings {
                self.reload_settings(target).await?;
            }
            // A purge is final once recorded, so its objects may go by any
            // hand: those a purging host left when it died go here (its
            // seal looked for first: one request when they are gone).
            for id in purged {
                let seal = cairn_storage::layout::seal_key(target, &id);
                if self.store.head(&seal).await?.is_some() {
                    tracing::info!(backup = %id, "removing what a purge left in the store");
                    self.store.delete_backup(target, &id).await?;
                }
            }
        }
        Ok(synced)
    }

    /// Publishes `record` (a backup just sealed) in its target's state log,
    /// so that other hosts record it without reading its seal and manifest.
    /// Not fatal: a host that misses it finds the backup by listing.
    pub(crate) async fn announce(&self, record: &BackupRecord) {
        let target = record.target.clone();
        let failed = |e: &dyn std::fmt::Display| {
            tracing::warn!(backup = %record.id, error = %e, "publishing the backup in the shared state failed: other hosts find it by listing");
        };
        for _ in 0..ATTEMPTS {
            let t = target.clone();
            let generation = match self.blocking(move |c| c.state_generation(&t)).await {
                Ok(g) => g + 1,
                Err(e) => return failed(&e),
            };
            let written = Record {
                generation,
                target: target.clone(),
                at: self.now(),
                by: format!("{}@{}", self.origin, self.identity.hostname),
                change: Change::Publish,
                backup: Some(record.id),
                enabled: None,
                policy: None,
                every_seconds: None,
                record: Some(Box::new(record.clone())),
            };
            let bytes = match written.encode(self) {
                Ok(bytes) => bytes,
                Err(e) => return failed(&e),
            };
            match self.store.append_state(&target, generation, bytes).await {
                Ok(()) => {
                    let t = target.clone();
                    let applied = [StateChange::Published(record.id)];
                    if let Err(e) = self
                        .blocking(move |c| c.apply_state(&t, generation, &applied))
                        .await
                    {
                        failed(&e);
                    }
                    return;
                }
                Err(e) if e.kind() == cairn_storage::ErrorKind::AlreadyExists => {
                    if let Err(e) = self.sync_target(&target).await {
                        return failed(&e);
                    }
                }
                Err(e) => return failed(&e),
            }
        }
        failed(&format!(
            "its shared state kept changing under {ATTEMPTS} tries"
        ));
    }

    /// Records what `decide` decides (given the catalog as every host's
    /// decisions left it; `None`: nothing to record, it is so already or
    /// no longer to be done) in `target`'s state log; the catalog then
    /// shows it. A writer that loses the race for the next generation
    /// follows the log and decides again. Whether this call wrote it.
    pub(crate) async fn write_shared<F, Fut>(
        &self,
        target: &TargetName,
        decide: F,
    ) -> Result<bool, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Decision>, Error>>,
    {
        for _ in 0..ATTEMPTS {
            self.sync_target(target).await?;
            let Some(d) = decide().await? else {
                return Ok(false);
            };
            let t = target.clone();
            let generation = self.blocking(move |c| c.state_generation(&t)).await? + 1;
            let written = Record {
                generation,
                target: target.clone(),
                at: self.now(),
                by: format!("{}@{}", self.origin, self.identity.hostname),
                change: d.change,
                backup: d.backup,
                enabled: d.enabled,
                policy: d.policy.clone(),
                every_seconds: d.every_seconds,
                record: None,
            };
            let applied = [written
                .state_change()
                .ok_or_else(|| Error::Invalid(format!("an inconsistent decision: {d:?}")))?];
            let bytes = written.encode(self)?;
            match self.store.append_state(target, generation, bytes).await {
                Ok(()) => {
                    let settings = applied.iter().any(changes_settings);
                    let t = target.clone();
                    self.blocking(move |c| c.apply_state(&t, generation, &applied))
                        .await?;
                    if settings {
                        self.reload_settings(target).await?;
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == cairn_storage::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy {
            target: target.to_string(),
            holder: format!("its shared state kept changing under {ATTEMPTS} tries"),
        })
    }

    /// Records `change` of backup `id` once `check` (given the backup's
    /// record as every host's decisions left it) says it should be made
    /// ([`Inner::write_shared`]). Whether this call wrote it.
    pub(crate) async fn change_shared(
        &self,
        id: &str,
        change: Change,
        check: impl Fn(&BackupRecord) -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        let local = self.backup_record(id).await?;
        if !local.status.is_ready() {
            // Never sealed (failed, or still being made here): no other
            // host knows it, so the decision is this catalog's alone.
            if !check(&local)? {
                return Ok(false);
            }
            let (bid, at) = (local.id, self.now());
            self.blocking(move |c| match change {
                Change::Pin | Change::Unpin => c.set_pinned(&bid, change == Change::Pin),
                Change::Delete => c.set_deleted(&bid, Some(at)),
                Change::Undelete => c.set_deleted(&bid, None),
                Change::Purge => c.remove_backup(&bid),
                Change::Publish | Change::Schedule | Change::Retention | Change::Interval => Ok(()),
            })
            .await?;
            return Ok(true);
        }
        let target = local.target;
        let check = &check;
        self.write_shared(&target, move || async move {
            let record = self.backup_record(id).await?;
            Ok(check(&record)?.then(|| Decision::of_backup(change, record.id)))
        })
        .await
    }

    /// The vault's settings of `target` as its catalog now holds them (after
    /// a shared change of them).
    async fn reload_settings(&self, target: &TargetName) -> Result<(), Error> {
        let name = target.to_string();
        let stored = self
            .blocking(move |c| {
                Ok(c.target_settings()?
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| s))
            })
            .await?;
        if let Some(settings) = stored {
            let mut targets = self
                .targets
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(t) = targets.get_mut(target.as_str()) {
                crate::target::apply_settings(&settings, t);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_integrity::SigningKey;

    fn signed(key: &SigningKey, line: &str) -> Vec<u8> {
        format!(
            "{line}\n{} {}\n",
            key.key_id(),
            key.sign(line.as_bytes()).to_hex()
        )
        .into_bytes()
    }

    /// Every way a state record from the store can be wrong is refused,
    /// with what was wrong; a good one decodes to its change.
    #[test]
    fn hostile_state_records_are_refused_by_what_is_wrong() {
        let key = SigningKey::from_seed(&[5; 32]);
        let keys = [key.public_key()];
        let t = TargetName::parse("app").unwrap();
        let id = BackupId::from_parts(1_800_000_000_000, 1);
        let line = |body: &str| {
            format!(
                "{{\"generation\":3,\"target\":\"app\",\"at\":\"2026-01-01T00:00:00Z\",\"by\":\"x\",{body}}}"
            )
        };
        let pin = line(&format!("\"change\":\"pin\",\"backup\":\"{id}\""));
        let (_, change) = Record::decode(&signed(&key, &pin), &t, 3, &keys).unwrap();
        assert_eq!(change, StateChange::Pin(id));
        let schedule = line("\"change\":\"schedule\",\"enabled\":false");
        let (_, change) = Record::decode(&signed(&key, &schedule), &t, 3, &keys).unwrap();
        assert!(matches!(
            change,
            StateChange::Schedule { enabled: false, .. }
        ));

        let refused = |bytes: &[u8], generation: u64, why: &str| {
            let err = Record::decode(bytes, &t, generation, &keys).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        };
        refused(b"\xff\xfe", 3, "not UTF-8");
        refused(pin.as_bytes(), 3, "not two lines");
        let other = SigningKey::from_seed(&[6; 32]);
        refused(&signed(&other, &pin), 3, "does not trust");
        let mut altered = signed(&key, &pin);
        altered[20] ^= 1;
        refused(&altered, 3, "does not verify");
        refused(
            &signed(&key, &pin),
            4,
            "it says it is record 3 of target app",
        );
        refused(
            &signed(&key, &line("\"change\":\"unknown\",\"backup\":\"x\"")),
            3,
            "its record",
        );
        // Fields that do not belong to the change.
        for body in [
            format!("\"change\":\"pin\",\"backup\":\"{id}\",\"enabled\":true"),
            "\"change\":\"pin\"".to_owned(),
            format!("\"change\":\"schedule\",\"enabled\":true,\"backup\":\"{id}\""),
            "\"change\":\"retention\"".to_owned(),
            format!("\"change\":\"publish\",\"backup\":\"{id}\""),
        ] {
            refused(&signed(&key, &line(&body)), 3, "do not fit");
        }
        // A publication whose record is of another backup.
        let mut r = BackupRecord::creating(
            BackupId::from_parts(1_800_000_000_000, 2),
            t.clone(),
            cairn_manifest::BackupKind::Manual,
            Timestamp::now(),
        );
        r.status = cairn_catalog::BackupStatus::Ready;
        r.archive_key = Some(format!("targets/app/backups/{}.tar.zst", r.id));
        let publish = line(&format!(
            "\"change\":\"publish\",\"backup\":\"{id}\",\"record\":{}",
            serde_json::to_string(&r).unwrap()
        ));
        refused(&signed(&key, &publish), 3, "not of a ready backup");
    }
}
