//! Backups: records, filters and cursor pagination.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_integrity::SignedSeal;
use std::collections::BTreeMap;

use cairn_manifest::{AnyManifest, BackupId, BackupKind, ComponentKind, TargetName};
pub use cairn_retention::BackupStatus;
use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::{Catalog, Error, ErrorKind, from_nanos, to_nanos};

/// The last verification of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// When it ran.
    pub at: Timestamp,
    /// Which tier (`quick`, `sample`, `full`).
    pub tier: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it found.
    pub message: String,
}

/// Everything the catalog knows about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Its id.
    pub id: BackupId,
    /// Its target.
    pub target: TargetName,
    /// Why it was taken.
    pub kind: BackupKind,
    /// Where it stands.
    pub status: BackupStatus,
    /// The operator's label.
    pub label: Option<String>,
    /// The operator's description.
    pub description: Option<String>,
    /// When it was taken.
    pub created_at: Timestamp,
    /// How long capture took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// The origin id of the target it came from.
    pub origin: Option<String>,
    /// The signing key's id.
    pub signer: Option<String>,
    /// `zstd` or `gzip`.
    pub codec: Option<String>,
    /// Its components' names.
    pub components: Vec<String>,
    /// How many entries its manifest lists.
    pub entries: u64,
    /// Bytes of file content.
    pub data_bytes: u64,
    /// The archive's key in the store.
    pub archive_key: Option<String>,
    /// The archive's size.
    pub archive_size: Option<u64>,
    /// The archive's SHA-256, hex.
    pub archive_sha256: Option<String>,
    /// The manifest's SHA-256, hex.
    pub manifest_sha256: Option<String>,
    /// Where the manifest starts in the archive.
    pub manifest_offset: Option<u64>,
    /// The manifest's length.
    pub manifest_length: Option<u64>,
    /// Pinned by an operator.
    pub pinned: bool,
    /// When it was soft-deleted.
    pub deleted_at: Option<Timestamp>,
    /// Its last verification.
    pub verification: Option<Verification>,
    /// Why it failed (or what it is doing), for operators.
    pub status_message: Option<String>,
    /// The host it was made on.
    pub hostname: Option<String>,
    /// The device model of the installation that made it.
    pub model: Option<String>,
    /// The device serial number of the installation that made it.
    pub serial: Option<String>,
    /// The software that made it (`cairn/0.1.0`, or the embedder's own).
    pub software_version: Option<String>,
    /// Each component's kind; empty when not known (records from before
    /// catalog schema 4).
    pub component_kinds: BTreeMap<String, ComponentKind>,
    /// For an uploaded Cairn archive: the key id that signed it where it
    /// was made.
    pub source_signer: Option<String>,
    /// Whether this installation trusted that key when the archive was uploaded.
    pub source_trusted: Option<bool>,
    /// For an incremental backup, the backups whose data it refers to,
    /// nearest first (its parent, then the parent's own chain); empty for a
    /// full backup.
    pub parents: Vec<BackupId>,
    /// For an encrypted backup, the fingerprints of the age recipients it
    /// was encrypted to (from its seal); empty for one stored in the clear.
    pub recipients: Vec<String>,
}

impl BackupRecord {
    /// The record of a backup that has just started: `creating`, with what
    /// is known before its archive exists.
    pub fn creating(
        id: BackupId,
        target: TargetName,
        kind: BackupKind,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            target,
            kind,
            status: BackupStatus::Creating,
            label: None,
            description: None,
            created_at,
            duration_ms: None,
            origin: None,
            signer: None,
            codec: None,
            components: Vec::new(),
            entries: 0,
            data_bytes: 0,
            archive_key: None,
            archive_size: None,
            archive_sha256: None,
            manifest_sha256: None,
            manifest_offset: None,
            manifest_length: None,
            pinned: false,
            deleted_at: None,
            verification: None,
            status_message: None,
            hostname: None,
            model: None,
            serial: None,
            software_version: None,
            component_kinds: BTreeMap::new(),
            source_signer: None,
            source_trusted: None,
            parents: Vec::new(),
            recipients: Vec::new(),
        }
    }

    /// A ready encrypted backup's record from its verified seal alone, for
    /// a host that holds no identity to read its manifest: what the seal
    /// states (sizes, digests, signer, parents), its time from its id, and
    /// a status message saying what is missing (components, entries, label:
    /// a catalog rebuild with an identity fills them in). `None` for a
    /// seal that is not an encrypted archive's.
    pub fn from_encrypted_seal(
        seal: &SignedSeal,
        id: BackupId,
        target: TargetName,
        archive_key: &str,
    ) -> Option<Self> {
        let s = seal.seal();
        let e = s.encryption.as_ref()?;
        let ms = i64::try_from(id.unix_ms()).ok()?;
        let mut r = Self::creating(
            id,
            target,
            BackupKind::Manual,
            Timestamp::from_millisecond(ms).ok()?,
        );
        r.status = BackupStatus::Ready;
        r.signer = Some(s.signer.to_string());
        r.archive_key = Some(archive_key.to_owned());
        r.archive_size = Some(s.archive_size);
        r.archive_sha256 = Some(s.archive_sha256.to_string());
        r.manifest_sha256 = Some(s.manifest_sha256.to_string());
        r.manifest_offset = Some(s.manifest_offset);
        r.manifest_length = Some(s.manifest_length);
        r.parents = e
            .parents
            .iter()
            .map(|p| BackupId::parse(p))
            .collect::<Result<_, _>>()
            .ok()?;
        r.recipients.clone_from(&e.recipients);
        r.status_message = Some(
            "encrypted, recorded from its seal: its manifest (components, entries, label) needs an identity"
                .to_owned(),
        );
        Some(r)
    }

    /// A ready backup's record from its verified manifest and seal.
    pub fn from_sealed(manifest: &AnyManifest, seal: &SignedSeal, archive_key: &str) -> Self {
        let s = seal.seal();
        let source = manifest.source().as_ref();
        let origin = manifest.origin();
        Self {
            id: manifest.backup_id(),
            target: manifest.target().clone(),
            kind: *manifest.kind(),
            status: BackupStatus::Ready,
            label: manifest.label().clone(),
            description: manifest.description().clone(),
            created_at: *manifest.created_at(),
            duration_ms: Some(*manifest.duration_ms()),
            origin: Some(origin.origin_id.to_string()),
            signer: Some(manifest.signer().to_string()),
            codec: Some(
                serde_json::to_value(manifest.compression().codec)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            components: manifest
                .components()
                .iter()
                .map(|c| c.name.to_string())
                .collect(),
            entries: manifest.entry_count(),
            data_bytes: manifest.components().iter().map(|c| c.bytes).sum(),
            archive_key: Some(archive_key.to_owned()),
            archive_size: Some(s.archive_size),
            archive_sha256: Some(s.archive_sha256.to_string()),
            manifest_sha256: Some(s.manifest_sha256.to_string()),
            manifest_offset: Some(s.manifest_offset),
            manifest_length: Some(s.manifest_length),
            pinned: false,
            deleted_at: None,
            verification: None,
            status_message: None,
            hostname: origin.hostname.clone(),
            model: origin.model.clone(),
            serial: origin.serial.clone(),
            software_version: Some(origin.software_version.clone()),
            component_kinds: manifest
                .components()
                .iter()
                .map(|c| (c.name.to_string(), c.kind))
                .collect(),
            source_signer: source.and_then(|s| s.signer).map(|k| k.to_string()),
            source_trusted: source.filter(|s| s.signer.is_some()).map(|s| s.trusted),
            parents: manifest
                .v2()
                .map(|r| r.manifest().parents.iter().map(|p| p.backup_id).collect())
                .unwrap_or_default(),
            recipients: s
                .encryption
                .as_ref()
                .map(|e| e.recipients.clone())
                .unwrap_or_default(),
        }
    }

    /// The backup this one is incremental to, if any.
    pub fn parent(&self) -> Option<&BackupId> {
        self.parents.first()
    }

    /// How many backups its chain holds before it (0: a full backup).
    pub fn depth(&self) -> usize {
        self.parents.len()
    }

    /// The kind of component `name`, if the record knows it.
    pub fn component_kind(&self, name: &str) -> Option<ComponentKind> {
        self.component_kinds.get(name).copied()
    }
}

/// What a catalog holds of one target's live (not soft-deleted) backups,
/// for an overview ([`Catalog::target_summaries`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TargetSummary {
    /// The target.
    pub target: TargetName,
    /// Its live backups, of any status.
    pub backups: u64,
    /// What they hold in the store (their archives' sizes).
    pub stored_bytes: u64,
    /// When its newest ready backup was made.
    pub last_ready: Option<Timestamp>,
    /// The status of its newest backup (as stored: `creating`, `uploading`,
    /// `ready`, `failed`).
    pub last_status: Option<BackupStatus>,
    /// Whether the most recent verification of one of its backups passed.
    pub last_verification_ok: Option<bool>,
}

/// Which backups to list. Every field narrows the list; the default lists
/// every live backup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupFilter {
    /// Only this target.
    pub target: Option<TargetName>,
    /// Only backups of these targets (an empty list matches none). With
    /// `target` too, both must match.
    pub targets: Option<Vec<TargetName>>,
    /// Only this kind.
    pub kind: Option<BackupKind>,
    /// Only this status.
    pub status: Option<BackupStatus>,
    /// Only this exact label.
    pub label: Option<String>,
    /// Only backups created at or after this instant.
    pub created_after: Option<Timestamp>,
    /// Only backups created before this instant.
    pub created_before: Option<Timestamp>,
    /// Include soft-deleted backups.
    pub include_deleted: bool,
}

/// A position in a listing: after the backup with this creation time and id.
/// Opaque to clients (base64url of `<nanos>:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    created_at: i64,
    id: String,
}

impl Cursor {
    /// The cursor's text form, for a client to send back.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    /// Reads a cursor a client sent back; anything this catalog did not
    /// issue is an error of kind [`ErrorKind::BadCursor`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadCursor`] for text this catalog did not issue (malformed, altered, over
    /// 200 bytes).
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                std::path::Path::new("-"),
                ErrorKind::BadCursor,
                "invalid cursor",
            )
        };
        if text.len() > 200 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (nanos, id) = raw.split_once(':').ok_or_else(bad)?;
        let created_at = nanos.parse().map_err(|_| bad())?;
        BackupId::parse(id).map_err(|_| bad())?;
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The backups on this page.
    pub items: Vec<BackupRecord>,
    /// Pass this to get the next page; `None` on the last page.
    pub next: Option<Cursor>,
    /// Whether more backups follow.
    pub has_more: bool,
}

/// The largest page.
pub const MAX_PAGE: usize = 1000;

/// The stored columns, in the order of [`read_row`].
const COLUMNS: &str = "id, target, kind, status, label, description, created_at, duration_ms, origin, signer, codec, components, entries, data_bytes, archive_key, archive_size, archive_sha256, manifest_sha256, manifest_offset, manifest_length, pinned, deleted_at, verified_at, verify_tier, verify_ok, verify_message, status_message, hostname, model, serial, software_version, component_kinds, source_signer, source_trusted, parents, recipients";

/// A backup's status as it is now: the stored one, except that a ready
/// backup read by an unfinished restore or reset job is `restoring`.
const STATUS: &str = "(CASE WHEN backups.status = 'ready' AND EXISTS (SELECT 1 FROM jobs j WHERE j.backup_id = backups.id AND j.kind IN ('restore', 'reset') AND j.state IN ('queued', 'running')) THEN 'restoring' ELSE backups.status END)";

/// [`COLUMNS`] as selected: the status as it is now.
fn select_columns() -> String {
    COLUMNS.replacen(", status,", &format!(", {STATUS} AS status,"), 1)
}

fn kind_str(kind: BackupKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A value SQLite holds that does not decode: the row is corrupt. Reported
/// through rusqlite's conversion error, which `Error::sqlite` maps to
/// [`ErrorKind::Corrupt`].
fn bad(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<BackupRecord> {
    let id: String = row.get(0)?;
    let target: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let status: String = row.get(3)?;
    let components: String = row.get(11)?;
    let verified_at: Option<i64> = row.get(22)?;
    let kinds: String = row.get(31)?;
    let parents: String = row.get(34)?;
    let recipients: String = row.get(35)?;
    Ok(BackupRecord {
        id: BackupId::parse(&id).map_err(|e| bad(0, format!("backup id {id:?}: {e}")))?,
        target: TargetName::parse(&target)
            .map_err(|e| bad(1, format!("target {target:?}: {e}")))?,
        kind: serde_json::from_value(serde_json::Value::String(kind.clone()))
            .map_err(|_| bad(2, format!("kind {kind:?}")))?,
        status: BackupStatus::parse(&status).ok_or_else(|| bad(3, format!("status {status:?}")))?,
        label: row.get(4)?,
        description: row.get(5)?,
        created_at: from_nanos(row.get(6)?),
        duration_ms: opt_u64(row.get(7)?),
        origin: row.get(8)?,
        signer: row.get(9)?,
        codec: row.get(10)?,
        components: serde_json::from_str(&components)
            .map_err(|e| bad(11, format!("components: {e}")))?,
        entries: opt_u64(row.get(12)?).unwrap_or(0),
        data_bytes: opt_u64(row.get(13)?).unwrap_or(0),
        archive_key: row.get(14)?,
        archive_size: opt_u64(row.get(15)?),
        archive_sha256: row.get(16)?,
        manifest_sha256: row.get(17)?,
        manifest_offset: opt_u64(row.get(18)?),
        manifest_length: opt_u64(row.get(19)?),
        pinned: row.get::<_, i64>(20)? != 0,
        deleted_at: row.get::<_, Option<i64>>(21)?.map(from_nanos),
        verification: match verified_at {
            Some(at) => Some(Verification {
                at: from_nanos(at),
                tier: row.get::<_, Option<String>>(23)?.unwrap_or_default(),
                ok: row.get::<_, Option<i64>>(24)? == Some(1),
                message: row.get::<_, Option<String>>(25)?.unwrap_or_default(),
            }),
            None => None,
        },
        status_message: row.get(26)?,
        hostname: row.get(27)?,
        model: row.get(28)?,
        serial: row.get(29)?,
        software_version: row.get(30)?,
        component_kinds: serde_json::from_str(&kinds)
            .map_err(|e| bad(31, format!("component kinds: {e}")))?,
        source_signer: row.get(32)?,
        source_trusted: row.get::<_, Option<i64>>(33)?.map(|v| v != 0),
        parents: serde_json::from_str(&parents).map_err(|e| bad(34, format!("parents: {e}")))?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| bad(35, format!("recipients: {e}")))?,
    })
}

impl Catalog {
    fn insert_with(tx: &rusqlite::Connection, r: &BackupRecord) -> rusqlite::Result<usize> {
        Self::write_with(tx, r, "INSERT INTO")
    }

    /// Writes every column of `r` with `verb` (`INSERT INTO`, `REPLACE INTO`).
    fn write_with(
        tx: &rusqlite::Connection,
        r: &BackupRecord,
        verb: &str,
    ) -> rusqlite::Result<usize> {
        let components = serde_json::to_string(&r.components).expect("strings serialise");
        let kinds = serde_json::to_string(&r.component_kinds).expect("kinds serialise");
        let v = r.verification.as_ref();
        let parents = serde_json::to_string(&r.parents).expect("ids serialise");
        let recipients = serde_json::to_string(&r.recipients).expect("strings serialise");
        let slots: Vec<String> = (1..=36).map(|i| format!("?{i}")).collect();
        tx.execute(
            &format!("{verb} backups ({COLUMNS}) VALUES ({})", slots.join(", ")),
            params![
                r.id.to_string(),
                r.target.to_string(),
                kind_str(r.kind),
                r.status.as_str(),
                r.label,
                r.description,
                to_nanos(r.created_at),
                r.duration_ms.map(to_i64),
                r.origin,
                r.signer,
                r.codec,
                components,
                to_i64(r.entries),
                to_i64(r.data_bytes),
                r.archive_key,
                r.archive_size.map(to_i64),
                r.archive_sha256,
                r.manifest_sha256,
                r.manifest_offset.map(to_i64),
                r.manifest_length.map(to_i64),
                i64::from(r.pinned),
                r.deleted_at.map(to_nanos),
                v.map(|v| to_nanos(v.at)),
                v.map(|v| v.tier.clone()),
                v.map(|v| i64::from(v.ok)),
                v.map(|v| v.message.clone()),
                r.status_message,
                r.hostname,
                r.model,
                r.serial,
                r.software_version,
                kinds,
                r.source_signer,
                r.source_trusted.map(i64::from),
                parents,
                recipients,
            ],
        )
    }

    /// Adds a backup; an id already present is an error of kind
    /// [`ErrorKind::Conflict`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] for an id already present; SQLite failures: [`ErrorKind::Busy`]
    /// when another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`]
    /// for a damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn insert_backup(&self, record: &BackupRecord) -> Result<(), Error> {
        let conn = self.conn();
        Self::insert_with(&conn, record)
            .map_err(|e| self.err(&format!("adding {}", record.id), e))?;
        Ok(())
    }

    /// One backup, or `None`.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn get_backup(&self, id: &BackupId) -> Result<Option<BackupRecord>, Error> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {} FROM backups WHERE id = ?1", select_columns()),
                [id.to_string()],
                read_row,
            )
            .optional()
            .map_err(|e| self.err(&format!("reading {id}"), e))?;
        Ok(row)
    }

    fn update(
        &self,
        id: &BackupId,
        what: &str,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<(), Error> {
        let conn = self.conn();
        let n = conn
            .execute(sql, params)
            .map_err(|e| self.err(&format!("{what} {id}"), e))?;
        if n == 0 {
            return Err(self.error(ErrorKind::NotFound, format!("no backup {id}")));
        }
        Ok(())
    }

    /// Sets a backup's status and its message (`uploading` once its archive
    /// is being sent, `failed` with why). `restoring` is not stored: it is
    /// how a ready backup reads while a restore of it runs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; [`ErrorKind::Other`] for `restoring`, which
    /// is never stored; SQLite failures: [`ErrorKind::Busy`] when another process holds the
    /// write lock past the busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record
    /// that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn set_status(
        &self,
        id: &BackupId,
        status: BackupStatus,
        message: Option<&str>,
    ) -> Result<(), Error> {
        if status == BackupStatus::Restoring {
            return Err(self.error(
                ErrorKind::Other,
                format!("{id}: `restoring` follows from the restore jobs and is not stored"),
            ));
        }
        self.update(
            id,
            "updating",
            "UPDATE backups SET status = ?2, status_message = ?3 WHERE id = ?1",
            &[&id.to_string(), &status.as_str(), &message],
        )
    }

    /// Replaces a backup's record with `record` (a started backup that is
    /// now sealed), keeping its pin, soft delete and verification when
    /// `record` has none. An unknown id is of kind [`ErrorKind::NotFound`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; SQLite failures: [`ErrorKind::Busy`] when
    /// another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`] for a
    /// damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn complete_backup(&self, record: &BackupRecord) -> Result<(), Error> {
        let mut conn = self.conn();
        let what = format!("recording {}", record.id);
        // Immediate: it reads then writes, and a read lock cannot wait to
        // become a write lock (SQLite answers busy at once).
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(&what, e))?;
        let old = tx
            .query_row(
                &format!("SELECT {} FROM backups WHERE id = ?1", select_columns()),
                [record.id.to_string()],
                read_row,
            )
            .optional()
            .map_err(|e| self.err(&what, e))?
            .ok_or_else(|| self.error(ErrorKind::NotFound, format!("no backup {}", record.id)))?;
        let mut r = record.clone();
        r.pinned |= old.pinned;
        r.deleted_at = r.deleted_at.or(old.deleted_at);
        if r.verification.is_none() {
            r.verification = old.verification;
        }
        Self::write_with(&tx, &r, "REPLACE INTO").map_err(|e| self.err(&what, e))?;
        tx.commit().map_err(|e| self.err(&what, e))
    }

    /// Pins or unpins a backup.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; SQLite failures: [`ErrorKind::Busy`] when
    /// another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`] for a
    /// damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn set_pinned(&self, id: &BackupId, pinned: bool) -> Result<(), Error> {
        self.update(
            id,
            "pinning",
            "UPDATE backups SET pinned = ?2 WHERE id = ?1",
            &[&id.to_string(), &i64::from(pinned)],
        )
    }

    /// Soft-deletes a backup at `at` (or clears the mark with `None`: undelete).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; SQLite failures: [`ErrorKind::Busy`] when
    /// another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`] for a
    /// damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn set_deleted(&self, id: &BackupId, at: Option<Timestamp>) -> Result<(), Error> {
        self.update(
            id,
            "deleting",
            "UPDATE backups SET deleted_at = ?2 WHERE id = ?1",
            &[&id.to_string(), &at.map(to_nanos)],
        )
    }

    /// Records a verification result.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; SQLite failures: [`ErrorKind::Busy`] when
    /// another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`] for a
    /// damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn record_verification(&self, id: &BackupId, v: &Verification) -> Result<(), Error> {
        self.update(
            id,
            "recording the verification of",
            "UPDATE backups SET verified_at = ?2, verify_tier = ?3, verify_ok = ?4, verify_message = ?5 WHERE id = ?1",
            &[&id.to_string(), &to_nanos(v.at), &v.tier, &i64::from(v.ok), &v.message],
        )
    }

    /// Removes a backup's record (after its objects were purged).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown id; SQLite failures: [`ErrorKind::Busy`] when
    /// another process holds the write lock past the busy timeout, [`ErrorKind::Corrupt`] for a
    /// damaged file or a record that does not decode, [`ErrorKind::Other`] otherwise.
    pub fn remove_backup(&self, id: &BackupId) -> Result<(), Error> {
        self.update(
            id,
            "removing",
            "DELETE FROM backups WHERE id = ?1",
            &[&id.to_string()],
        )
    }

    /// Replaces every backup record of `target` with `records`, in one
    /// transaction: what a rebuild from the store produces. Pins, soft
    /// deletes and verifications of backups that survive are kept.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise. Nothing changes when it fails (one transaction).
    pub fn replace_target_backups(
        &self,
        target: &TargetName,
        records: &[BackupRecord],
    ) -> Result<(), Error> {
        let mut conn = self.conn();
        let what = format!("rebuilding the backups of {target}");
        // Immediate: it reads then writes, and a read lock cannot wait to
        // become a write lock (SQLite answers busy at once).
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(&what, e))?;
        let mut kept: std::collections::HashMap<String, BackupRecord> =
            std::collections::HashMap::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {} FROM backups WHERE target = ?1",
                    select_columns()
                ))
                .map_err(|e| self.err(&what, e))?;
            let rows = stmt
                .query_map([target.to_string()], read_row)
                .map_err(|e| self.err(&what, e))?;
            for row in rows {
                match row {
                    Ok(old) => {
                        kept.insert(old.id.to_string(), old);
                    }
                    // An unreadable old row has nothing worth keeping: the
                    // rebuild replaces it.
                    Err(rusqlite::Error::FromSqlConversionFailure(..)) => {}
                    Err(e) => return Err(self.err(&what, e)),
                }
            }
        }
        tx.execute(
            "DELETE FROM backups WHERE target = ?1",
            [target.to_string()],
        )
        .map_err(|e| self.err(&what, e))?;
        for r in records {
            if r.target != *target {
                return Err(self.error(
                    ErrorKind::Other,
                    format!("{} belongs to {}, not {target}", r.id, r.target),
                ));
            }
            let mut r = r.clone();
            if let Some(old) = kept.get(&r.id.to_string()) {
                r.pinned |= old.pinned;
                r.deleted_at = r.deleted_at.or(old.deleted_at);
                if r.verification.is_none() {
                    r.verification.clone_from(&old.verification);
                }
            }
            Self::insert_with(&tx, &r).map_err(|e| self.err(&what, e))?;
        }
        tx.commit().map_err(|e| self.err(&what, e))
    }

    /// Lists backups matching `filter`, newest first (ties by id, descending),
    /// `limit` at a time (1 to 1000), starting after `cursor`.
    ///
    /// Paging is by key (creation time, id), not by offset: paging through
    /// while backups are added or removed never repeats a backup and never
    /// skips one that existed when the listing started and still exists.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn list_backups(
        &self,
        filter: &BackupFilter,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<Page, Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut sql = format!("SELECT {} FROM backups WHERE 1=1", select_columns());
        let mut args: Vec<Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = &filter.target {
            arg(&mut sql, " AND target = ?", Value::Text(t.to_string()));
        }
        if let Some(ts) = &filter.targets {
            // Target names are checked (`[a-z0-9_-]`), so a JSON array of
            // them is one bound value however many there are.
            let names: Vec<String> = ts.iter().map(ToString::to_string).collect();
            arg(
                &mut sql,
                " AND target IN (SELECT value FROM json_each(?))",
                Value::Text(serde_json::to_string(&names).expect("strings serialize")),
            );
        }
        if let Some(k) = filter.kind {
            arg(&mut sql, " AND kind = ?", Value::Text(kind_str(k)));
        }
        if let Some(s) = filter.status {
            arg(
                &mut sql,
                &format!(" AND {STATUS} = ?"),
                Value::Text(s.as_str().to_owned()),
            );
        }
        if let Some(l) = &filter.label {
            arg(&mut sql, " AND label = ?", Value::Text(l.clone()));
        }
        if let Some(t) = filter.created_after {
            arg(
                &mut sql,
                " AND created_at >= ?",
                Value::Integer(to_nanos(t)),
            );
        }
        if let Some(t) = filter.created_before {
            arg(&mut sql, " AND created_at < ?", Value::Integer(to_nanos(t)));
        }
        if !filter.include_deleted {
            sql.push_str(" AND deleted_at IS NULL");
        }
        if let Some(c) = cursor {
            arg(
                &mut sql,
                " AND (created_at, id) < (?",
                Value::Integer(c.created_at),
            );
            arg(&mut sql, ", ?)", Value::Text(c.id.clone()));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            limit + 1
        ));
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&sql)
            .map_err(|e| self.err("listing backups", e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), read_row)
            .map_err(|e| self.err("listing backups", e))?;
        let mut items = Vec::with_capacity(limit + 1);
        for row in rows {
            let record = row.map_err(|e| self.err("listing backups", e))?;
            items.push(record);
        }
        let has_more = items.len() > limit;
        items.truncate(limit);
        let next = if has_more {
            items.last().map(|r| Cursor {
                created_at: to_nanos(r.created_at),
                id: r.id.to_string(),
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next,
            has_more,
        })
    }

    /// The targets that have backup records, sorted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] for a stored target name that is not valid; SQLite failures:
    /// [`ErrorKind::Busy`] when another process holds the write lock past the busy timeout,
    /// [`ErrorKind::Corrupt`] for a damaged file or a record that does not decode,
    /// [`ErrorKind::Other`] otherwise.
    pub fn backup_targets(&self) -> Result<Vec<TargetName>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT DISTINCT target FROM backups ORDER BY target")
            .map_err(|e| self.err("listing targets", e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err("listing targets", e))?;
        let mut out = Vec::new();
        for row in rows {
            let name = row.map_err(|e| self.err("listing targets", e))?;
            let target = TargetName::parse(&name)
                .map_err(|e| self.error(ErrorKind::Corrupt, format!("target {name:?}: {e}")))?;
            out.push(target);
        }
        Ok(out)
    }

    /// One [`TargetSummary`] per target with live backups, by name: one
    /// query, whatever the number of backups.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn target_summaries(&self) -> Result<Vec<TargetSummary>, Error> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<TargetSummary>> {
            let mut stmt = conn.prepare_cached(
                "SELECT b.target, count(*), coalesce(sum(b.archive_size), 0),
                    max(CASE WHEN b.status = 'ready' THEN b.created_at END),
                    (SELECT n.status FROM backups n WHERE n.target = b.target
                        AND n.deleted_at IS NULL ORDER BY n.created_at DESC, n.id DESC LIMIT 1),
                    (SELECT v.verify_ok FROM backups v WHERE v.target = b.target
                        AND v.verified_at IS NOT NULL ORDER BY v.verified_at DESC LIMIT 1)
                 FROM backups b WHERE b.deleted_at IS NULL GROUP BY b.target ORDER BY b.target",
            )?;
            let rows = stmt.query_map([], |row| {
                let name: String = row.get(0)?;
                let target = TargetName::parse(&name).map_err(|e| bad(0, e.to_string()))?;
                let status: Option<String> = row.get(4)?;
                Ok(TargetSummary {
                    target,
                    backups: opt_u64(row.get(1)?).unwrap_or(0),
                    stored_bytes: opt_u64(row.get(2)?).unwrap_or(0),
                    last_ready: row.get::<_, Option<i64>>(3)?.map(from_nanos),
                    last_status: status.as_deref().and_then(BackupStatus::parse),
                    last_verification_ok: row.get::<_, Option<i64>>(5)?.map(|v| v != 0),
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.err("summing up the targets", e))
    }

    /// Every backup record of a target (including soft-deleted ones), newest
    /// first: the input of retention.
    ///
    /// # Errors
    ///
    /// SQLite failures: [`ErrorKind::Busy`] when another process holds the write lock past the
    /// busy timeout, [`ErrorKind::Corrupt`] for a damaged file or a record that does not
    /// decode, [`ErrorKind::Other`] otherwise.
    pub fn target_backups(&self, target: &TargetName) -> Result<Vec<BackupRecord>, Error> {
        let filter = BackupFilter {
            target: Some(target.clone()),
            include_deleted: true,
            ..BackupFilter::default()
        };
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_backups(&filter, MAX_PAGE, cursor.as_ref())?;
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }
}
