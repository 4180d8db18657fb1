//! The API's documents: stable field names, separate from the library's
//! types so that the API changes only on purpose. Each has an OpenAPI schema.

use cairn::{BackupRecord, Job, TargetConfig};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::schema;

/// The serde name of a unit enum value (`"running"`, `"pre_deploy"`).
pub fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn time(t: Timestamp) -> String {
    t.to_string()
}

/// A job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// `job_...`.
    pub id: String,
    /// `backup`, `restore`, `verify`, `upload`, `prune`, `reset`.
    #[schema(schema_with = schema::job_kind)]
    pub kind: String,
    /// The target it works on.
    pub target: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    #[schema(schema_with = schema::job_state)]
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
    /// Time limit, seconds.
    pub timeout_seconds: i64,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// How far it got.
    pub progress: ProgressView,
    /// Why it failed.
    pub error: Option<JobErrorView>,
    /// A restore that failed after applying some components.
    pub partial: bool,
    /// A restore whose process stopped after every component was in
    /// place: the job failed, the restore did not.
    pub committed: bool,
    /// The backup it makes or reads, from the start.
    pub resource: Option<ResourceView>,
    /// What it produced (a backup's id and sizes, a restore's outcome, ...).
    #[schema(value_type = Option<Object>)]
    pub result: Option<cairn::JobResult>,
    /// Where to follow it.
    pub links: JobLinks,
}

/// What a job works on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourceView {
    /// `backup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// Progress of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressView {
    /// `queued`, `preparing`, `archiving`, `uploading`, `verifying`, ...
    pub phase: String,
    /// Files in all, when known.
    pub total_files: Option<u64>,
    /// Files done.
    pub processed_files: u64,
    /// Bytes in all, when known.
    pub total_bytes: Option<u64>,
    /// Bytes done.
    pub processed_bytes: u64,
    /// 0..=100 (100 only on success).
    pub percent: u8,
    /// Mean rate.
    pub bytes_per_second: Option<u64>,
    /// Estimated seconds left.
    pub eta_seconds: Option<u64>,
}

/// A job's failure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobErrorView {
    /// `timeout`, `interrupted`, `verification_failed`, `internal`, ...
    pub code: String,
    /// One line.
    pub message: String,
}

/// Links of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobLinks {
    /// The job.
    #[serde(rename = "self")]
    pub self_: String,
    /// Its Server-Sent Events.
    pub events: String,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        let p = &j.progress;
        Self {
            id: j.id.clone(),
            kind: name_of(&j.kind),
            target: j.target.clone(),
            state: name_of(&j.state),
            created_at: time(j.created_at),
            started_at: j.started_at.map(time),
            finished_at: j.finished_at.map(time),
            updated_at: time(j.updated_at),
            timeout_seconds: j.timeout.as_secs(),
            cancel_requested: j.cancel_requested,
            progress: ProgressView {
                phase: name_of(&p.phase),
                total_files: p.total_files,
                processed_files: p.processed_files,
                total_bytes: p.total_bytes,
                processed_bytes: p.processed_bytes,
                percent: p.percent,
                bytes_per_second: p.bytes_per_second,
                eta_seconds: p.eta_seconds,
            },
            error: j.error.as_ref().map(|e| JobErrorView {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            partial: j.partial,
            committed: j.committed,
            resource: j.resource.as_ref().map(|r| ResourceView {
                kind: name_of(&r.kind),
                id: r.id.clone(),
            }),
            result: j.result.clone(),
            links: JobLinks {
                self_: format!("/v1/jobs/{}", j.id),
                events: format!("/v1/jobs/{}/events", j.id),
            },
        }
    }
}

/// A list of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The jobs.
    pub items: Vec<JobView>,
}

/// A backup's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    /// `bkp_...`.
    pub id: String,
    /// Its target.
    pub target: String,
    /// `manual`, `scheduled`, `pre_deploy`, `uploaded`.
    #[schema(schema_with = schema::backup_kind)]
    pub kind: String,
    /// `creating`, `uploading`, `ready`, `restoring`, `failed`.
    #[schema(schema_with = schema::backup_status)]
    pub status: String,
    /// Why it failed, for operators.
    pub status_message: Option<String>,
    /// The operator's label.
    pub label: Option<String>,
    /// The operator's description.
    pub description: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// How long capture took.
    pub duration_ms: Option<u64>,
    /// Origin id of the installation it came from.
    pub origin: Option<String>,
    /// The machine that made it: host name, device model and serial,
    /// software version.
    pub origin_identity: OriginView,
    /// Id of the key that signed it.
    pub signer: Option<String>,
    /// For an uploaded Cairn archive: who had signed it where it was made.
    pub source: Option<SourceView>,
    /// `zstd` or `gzip`.
    pub codec: Option<String>,
    /// Its components.
    pub components: Vec<String>,
    /// Each component's kind (`dir`, `file`, `sqlite`), when known.
    #[schema(value_type = Object)]
    pub component_kinds: std::collections::BTreeMap<String, String>,
    /// Entries in its manifest.
    pub entries: u64,
    /// Bytes of file content.
    pub data_bytes: u64,
    /// Where and what the archive is.
    pub archive: ArchiveView,
    /// SHA-256 of the signed manifest, hex.
    pub manifest_sha256: Option<String>,
    /// Pinned: never evicted or deleted.
    pub pinned: bool,
    /// When it was soft-deleted (RFC 3339).
    pub deleted_at: Option<String>,
    /// Its last verification.
    pub verification: Option<VerificationView>,
    /// For an incremental backup, the backup it builds on.
    pub parent: Option<String>,
    /// Backups its chain holds before it (0: a full backup).
    pub depth: u64,
    /// The whole chain it reads unchanged files from, nearest first.
    pub chain: Vec<String>,
    /// What this backup added to the store (its archive's bytes); the state
    /// it describes is `data_bytes`.
    pub stored_bytes: Option<u64>,
    /// Whether its archive is stored encrypted (an age file:
    /// `docs/encryption.md`).
    pub encrypted: bool,
    /// The fingerprints (16 hex digits) of the age recipients it was
    /// encrypted to; empty when it is stored in the clear. Never the keys.
    pub recipients: Vec<String>,
}

/// Who made a backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct OriginView {
    /// The host's name.
    pub hostname: Option<String>,
    /// The device model.
    pub model: Option<String>,
    /// The device serial number.
    pub serial: Option<String>,
    /// The software that made it.
    pub software_version: Option<String>,
}

/// Where an uploaded Cairn archive came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// The key id its own manifest was signed with.
    pub signer: String,
    /// Whether this installation trusted that key when it was uploaded.
    pub trusted: bool,
}

/// The archive of a backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveView {
    /// Key in the store.
    pub key: Option<String>,
    /// Bytes.
    pub size_bytes: Option<u64>,
    /// SHA-256, hex (signed in its seal).
    pub sha256: Option<String>,
}

/// A verification's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationView {
    /// RFC 3339.
    pub at: String,
    /// `quick`, `sample`, `full`.
    pub tier: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it found.
    pub message: String,
}

impl From<&BackupRecord> for BackupView {
    fn from(r: &BackupRecord) -> Self {
        Self {
            id: r.id.to_string(),
            target: r.target.to_string(),
            kind: name_of(&r.kind),
            status: name_of(&r.status),
            status_message: r.status_message.clone(),
            label: r.label.clone(),
            description: r.description.clone(),
            created_at: time(r.created_at),
            duration_ms: r.duration_ms,
            origin: r.origin.clone(),
            origin_identity: OriginView {
                hostname: r.hostname.clone(),
                model: r.model.clone(),
                serial: r.serial.clone(),
                software_version: r.software_version.clone(),
            },
            signer: r.signer.clone(),
            source: r.source_signer.clone().map(|signer| SourceView {
                signer,
                trusted: r.source_trusted.unwrap_or(false),
            }),
            codec: r.codec.clone(),
            components: r.components.clone(),
            component_kinds: r
                .component_kinds
                .iter()
                .map(|(n, k)| (n.clone(), k.as_str().to_owned()))
                .collect(),
            entries: r.entries,
            data_bytes: r.data_bytes,
            archive: ArchiveView {
                key: r.archive_key.clone(),
                size_bytes: r.archive_size,
                sha256: r.archive_sha256.clone(),
            },
            manifest_sha256: r.manifest_sha256.clone(),
            pinned: r.pinned,
            deleted_at: r.deleted_at.map(time),
            verification: r.verification.as_ref().map(|v| VerificationView {
                at: time(v.at),
                tier: v.tier.clone(),
                ok: v.ok,
                message: v.message.clone(),
            }),
            parent: r.parent().map(ToString::to_string),
            depth: r.depth() as u64,
            chain: r.parents.iter().map(ToString::to_string).collect(),
            stored_bytes: r.archive_size,
            encrypted: !r.recipients.is_empty(),
            recipients: r.recipients.clone(),
        }
    }
}

/// A page of backups, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupPage {
    /// The backups.
    pub items: Vec<BackupView>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
    /// Whether there is a next page.
    pub has_more: bool,
}

/// Filters and paging of `GET /v1/backups`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    /// Only this target.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub target: Option<String>,
    /// `manual`, `scheduled`, `pre_deploy`, `uploaded`.
    #[param(schema_with = schema::backup_kind)]
    pub kind: Option<String>,
    /// `in_progress`, `ready`, `failed`.
    #[param(schema_with = schema::backup_status)]
    pub status: Option<String>,
    /// Exact label.
    pub label: Option<String>,
    /// RFC 3339; at or after.
    #[param(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339; before.
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// Include soft-deleted backups.
    pub include_deleted: Option<bool>,
    /// The fleet view: backups of every target of the store, also those
    /// this server does not run (followed from the store first, at most
    /// every 30 s). Without it, the targets this server runs, or the one
    /// `target` names.
    pub all_targets: Option<bool>,
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    /// Its name.
    pub name: String,
    /// Its components.
    pub components: Vec<ComponentView>,
    /// Automatic backups.
    pub schedule: ScheduleView,
    /// The retention policy in force.
    #[schema(value_type = Object)]
    pub retention: serde_json::Value,
    /// The mutating job running on it, if any.
    pub current_job: Option<JobView>,
    /// Its last restore.
    pub restore_status: RestoreStatusView,
}

/// A component of a target.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// Its name.
    pub name: String,
    /// `dir`, `file`, `sqlite`.
    pub kind: String,
    /// Where it lives on the server.
    pub path: String,
    /// Backed up only when asked for.
    pub optional: bool,
}

/// A target's automatic backups.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Whether they run.
    pub enabled: bool,
    /// Interval in seconds (none: manual only).
    pub every_seconds: Option<u64>,
    /// When they were last disabled (RFC 3339).
    pub disabled_at: Option<String>,
    /// When re-enabling becomes possible (RFC 3339), while a cooldown runs.
    pub cooldown_until: Option<String>,
    /// When the last scheduled backup started (RFC 3339).
    pub last_run: Option<String>,
}

impl From<&cairn::Schedule> for ScheduleView {
    fn from(s: &cairn::Schedule) -> Self {
        Self {
            enabled: s.enabled,
            every_seconds: s.every_seconds,
            disabled_at: s.disabled_at.map(time),
            cooldown_until: s.cooldown_until.map(time),
            last_run: s.last_run.map(time),
        }
    }
}

/// A target's last restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreStatusView {
    /// RFC 3339, or none if never.
    pub last_restore_time: Option<String>,
    /// `not_run`, `started`, `failed`, `completed`, `completed_with_errors`.
    pub status: String,
    /// What happened.
    pub status_message: String,
}

impl From<&cairn::RestoreStatus> for RestoreStatusView {
    fn from(s: &cairn::RestoreStatus) -> Self {
        Self {
            last_restore_time: s.last_restore_time.map(time),
            status: name_of(&s.status),
            status_message: s.status_message.clone(),
        }
    }
}

/// The components of a target config, as the API shows them.
pub fn components(t: &TargetConfig) -> Vec<ComponentView> {
    t.components
        .iter()
        .map(|c| ComponentView {
            name: c.name.to_string(),
            kind: name_of(&c.kind),
            path: c.path.display().to_string(),
            optional: c.optional,
        })
        .collect()
}

/// A list of targets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetList {
    /// The targets, by name.
    pub items: Vec<TargetView>,
}

/// `POST /v1/targets/{t}/backups`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// A label (at most 256 bytes of UTF-8).
    pub label: Option<String>,
    /// A description (at most 16 KiB of UTF-8).
    pub description: Option<String>,
    /// Only these components (optional ones included); default: all required ones.
    #[serde(default)]
    #[schema(schema_with = schema::component_names)]
    pub includes: Vec<String>,
    /// `manual` (default), `scheduled`, `pre_deploy`.
    #[schema(schema_with = schema::requested_backup_kind)]
    pub kind: Option<String>,
    /// A full backup even when the target's chain rule would make it
    /// incremental (default false).
    #[serde(default)]
    pub full: bool,
    /// Read every file instead of trusting unchanged metadata (default
    /// false); what did not change is still not stored again.
    #[serde(default)]
    pub full_read: bool,
}

/// `POST /v1/backups/{id}/restore`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Only these components.
    #[serde(default)]
    #[schema(schema_with = schema::component_names)]
    pub includes: Vec<String>,
    /// Must be true (unless `dry_run`): the restore replaces the target's
    /// data. Without it the answer is 422.
    #[serde(default)]
    pub confirm: bool,
    /// Report what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Restore a backup of another installation (origin id) anyway.
    #[serde(default)]
    pub force_foreign: bool,
}

/// `POST /v1/backups/{id}/verify`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// `quick` (seal and manifest), `sample` (some entries), `full` (default: every byte).
    #[schema(schema_with = schema::verify_tier)]
    pub tier: Option<String>,
}

/// `PUT /v1/backups/{id}/pin`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// Pin or unpin.
    pub pinned: bool,
}

/// `PUT /v1/targets/{t}/schedule`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Enable or disable automatic backups (re-enabling waits for the cooldown).
    pub enabled: Option<bool>,
    /// New interval in seconds; 0 = manual only. At least the target's
    /// minimum interval, at most 100 years of 366 days (else 422).
    #[schema(maximum = 3_162_240_000_u64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub every_seconds: Option<u64>,
}

/// A non-negative integer, also when written `60.0` (JSON Schema counts a
/// number with a zero fraction as an integer; serde does not).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=9.0e15).contains(f))
            .map(|f| f as u64)
    });
    whole
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number of seconds")))
}

/// `POST /v1/targets/{t}/prune`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneBody {
    /// Only compute the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/targets/{t}/reset-factory`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// Must be true: a reset replaces every component of the target.
    /// Missing or false is refused with 422.
    #[serde(default)]
    #[schema(schema_with = schema::must_be_true, required = true)]
    pub confirm: bool,
}

/// `GET /v1/backups/{id}/download`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadView {
    /// A URL anyone holding it can GET until it expires.
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The archive's size.
    pub size_bytes: u64,
}

/// One event of `GET /v1/jobs/{id}/events` (Server-Sent Events).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEvent {
    /// `job` each time the job changes, `end` once with the final job (the
    /// last event), `error` if the job can no longer be read.
    #[schema(schema_with = schema::event_name)]
    pub event: String,
    /// Increasing from 1.
    #[schema(pattern = "^[0-9]+$")]
    pub id: Option<String>,
    /// The job (`JobView`) as JSON text; for `error`, a message.
    #[schema(schema_with = schema::event_data)]
    pub data: String,
}

/// A retention policy (docs/retention.md). Every field is optional; the
/// engine checks the policy as a whole and refuses unknown fields, wrong
/// types and bad durations or zones (422). Documentation only: the body is
/// read by the retention crate itself.
#[derive(Debug, ToSchema)]
pub struct PolicyDoc {
    /// Keep the N newest ready backups.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the N most recent hours that have one.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_hourly: Option<u32>,
    /// The same by days.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_daily: Option<u32>,
    /// The same by ISO weeks.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_weekly: Option<u32>,
    /// The same by months.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_monthly: Option<u32>,
    /// The same by years.
    #[schema(maximum = 4_294_967_295_u64)]
    pub keep_yearly: Option<u32>,
    /// Keep everything younger than this (`"7d"`, `"72h"`, `"PT72H"`).
    pub keep_within: Option<String>,
    /// Never keep fewer ready backups than this.
    #[schema(maximum = 4_294_967_295_u64)]
    pub min_keep: Option<u32>,
    /// How long failed backups stay (a duration).
    pub failed_grace: Option<String>,
    /// How long soft-deleted backups can be brought back (a duration).
    pub deleted_grace: Option<String>,
    /// Time zone of the calendar periods (`"UTC"`, `"Europe/Paris"`).
    pub timezone: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
