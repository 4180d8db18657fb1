//! The handlers of SPEC §8, each with its OpenAPI description.

// utoipa's `IntoParams` expansion names the extractor types in full.
#![allow(unused_qualifications)]

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cairn::{
    BackupFilter, BackupRequest, Cursor, JobHandle, RestoreRequest, TargetConfig, UploadRequest,
};
use cairn_job::JobState;
use cairn_job::idempotency::IdempotencyKey;
use cairn_manifest::{BackupKind, ComponentName, TargetName};
use cairn_retention::Policy;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody, status_of_code};
use crate::schema::{self, IdempotencyHeader, RangeHeader};
use crate::views::{
    BackupBody, BackupPage, BackupQuery, BackupView, DownloadView, Health, JobEvent, JobList,
    JobView, PinBody, PolicyDoc, PruneBody, ResetBody, RestoreBody, RestoreStatusView,
    ScheduleBody, ScheduleView, TargetList, TargetView, VerifyBody, components,
};

type ApiResult<T> = Result<T, ApiError>;

fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| ApiError::bad_request(format!("{what}: {value:?} is not a known value")))
}

fn names(list: &[String]) -> ApiResult<Vec<ComponentName>> {
    list.iter()
        .map(|n| {
            ComponentName::parse(n)
                .map_err(|e| ApiError::bad_request(format!("component {n:?}: {e}")))
        })
        .collect()
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<IdempotencyKey>> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
                ApiError::bad_request("Idempotency-Key: 1 to 255 visible characters")
            })
        })
        .transpose()
}

/// 202 Accepted with the job and `Location`; the metrics follow the job.
fn accepted(state: &AppState, handle: JobHandle) -> Response {
    let job = handle.status();
    state.track(handle);
    let mut res = (StatusCode::ACCEPTED, Json(JobView::from(&job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

async fn schedule_view(state: &AppState, config: &TargetConfig) -> ApiResult<ScheduleView> {
    let schedule = state.vault.schedule_status(config.name.as_str()).await?;
    let cooldown_until = schedule
        .disabled_at
        .filter(|_| !schedule.enabled)
        .map(|d| d + config.schedule_rules.cooldown())
        .filter(|u| *u > jiff::Timestamp::now());
    Ok(ScheduleView {
        enabled: schedule.enabled,
        every_seconds: config.schedule.map(|d| d.as_secs()),
        disabled_at: schedule.disabled_at.map(|t| t.to_string()),
        cooldown_until: cooldown_until.map(|t| t.to_string()),
        last_run: schedule.last_run.map(|t| t.to_string()),
    })
}

async fn target_view(state: &AppState, name: &str) -> ApiResult<TargetView> {
    let config = state.vault.target(name)?;
    let restore = state.vault.restore_status(name).await?;
    let running = state
        .vault
        .jobs(Some(name), &[JobState::Queued, JobState::Running], 10)
        .await?;
    let current = running.iter().find(|j| j.kind.is_mutating());
    Ok(TargetView {
        name: config.name.to_string(),
        components: components(&config),
        schedule: schedule_view(state, &config).await?,
        retention: serde_json::to_value(&config.retention).unwrap_or_default(),
        current_job: current.map(JobView::from),
        restore_status: RestoreStatusView::from(&restore),
    })
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The targets, with components, schedule, current job and restore status.
#[utoipa::path(get, path = "/v1/targets", tag = "targets",
    responses((status = 200, body = TargetList)),
    security(("bearer" = ["backups:read"])))]
pub async fn list_targets(State(state): State<AppState>) -> ApiResult<Json<TargetList>> {
    let mut items = Vec::new();
    for t in state.vault.targets() {
        items.push(target_view(&state, t.name.as_str()).await?);
    }
    Ok(Json(TargetList { items }))
}

/// One target.
#[utoipa::path(get, path = "/v1/targets/{target}", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = TargetView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_target(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Json<TargetView>> {
    Ok(Json(target_view(&state, &target).await?))
}

/// Starts a backup of a target.
#[utoipa::path(post, path = "/v1/targets/{target}/backups", tag = "backups",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
        IdempotencyHeader),
    request_body(content = Option<BackupBody>, content_type = "application/json"),
    responses((status = 202, description = "Started", body = JobView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A job runs on the target, or the key was used for another request", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn create_backup(
    State(state): State<AppState>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Option<JsonBody<BackupBody>>,
) -> ApiResult<Response> {
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let mut req = BackupRequest::new();
    if let Some(kind) = &body.kind {
        let kind: BackupKind = parse_enum("kind", kind)?;
        if kind == BackupKind::Uploaded {
            return Err(ApiError::bad_request(
                "kind: uploaded backups come from POST /v1/targets/{t}/uploads",
            ));
        }
        req = req.kind(kind);
    }
    if let Some(l) = body.label {
        req = req.label(l);
    }
    if let Some(d) = body.description {
        req = req.description(d);
    }
    for n in names(&body.includes)? {
        req = req.include(n);
    }
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    let handle = state.vault.backup(&target, req).await?;
    Ok(accepted(&state, handle))
}

/// Backups, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/backups", tag = "backups", params(BackupQuery),
    responses((status = 200, body = BackupPage), (status = 400, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn list_backups(
    State(state): State<AppState>,
    Query(q): Query<BackupQuery>,
) -> ApiResult<Json<BackupPage>> {
    let time = |what: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map_err(|_| ApiError::bad_request(format!("{what}: an RFC 3339 time")))
            })
            .transpose()
    };
    let filter = BackupFilter {
        target: q
            .target
            .as_deref()
            .map(|t| {
                TargetName::parse(t).map_err(|e| ApiError::bad_request(format!("target: {e}")))
            })
            .transpose()?,
        kind: q
            .kind
            .as_deref()
            .map(|k| parse_enum("kind", k))
            .transpose()?,
        status: q
            .status
            .as_deref()
            .map(|s| parse_enum("status", s))
            .transpose()?,
        label: q.label.clone(),
        created_after: time("created_after", &q.created_after)?,
        created_before: time("created_before", &q.created_before)?,
        include_deleted: q.include_deleted.unwrap_or(false),
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c).map_err(|_| ApiError::bad_request("cursor: not one this server gave"))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 1000"));
    }
    let page = state.vault.list(filter, limit as usize, cursor).await?;
    Ok(Json(BackupPage {
        items: page.items.iter().map(BackupView::from).collect(),
        next_cursor: page.next.as_ref().map(Cursor::encode),
        has_more: page.next.is_some(),
    }))
}

/// One backup's record.
#[utoipa::path(get, path = "/v1/backups/{id}", tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, body = BackupView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupView>> {
    Ok(Json(BackupView::from(&state.vault.get(&id).await?)))
}

/// The backup's manifest, authenticated against its seal.
#[utoipa::path(get, path = "/v1/backups/{id}/manifest", tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, description = "The manifest (docs/format.md)", body = Object),
        (status = 404, body = ErrorBody), (status = 422, description = "It failed verification", body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let m = state.vault.manifest(&id).await?;
    Ok(Json(serde_json::to_value(&m).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?))
}

/// A `Range: bytes=...` header's one range, within `size`; `None` for
/// anything else (several ranges, other units, malformed, outside the
/// object), which is answered 416.
fn parse_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let (a, b) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let range = match (number(a), number(b)) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if a.is_empty() => size.saturating_sub(n)..size,
        // bytes=S-: from S to the end.
        (Some(start), None) if b.is_empty() => start..size,
        // bytes=S-E, E inclusive.
        (Some(start), Some(last)) if start <= last => start..last.saturating_add(1).min(size),
        _ => return None,
    };
    (range.start < range.end).then_some(range)
}

/// Streams `range` of an object in pieces of at most 8 MiB.
fn range_stream(state: &AppState, key: String, range: std::ops::Range<u64>) -> Body {
    const PIECE: u64 = 8 << 20;
    let store = state.vault.clone();
    let stream = futures::stream::unfold(range.start, move |at| {
        let store = store.clone();
        let key = key.clone();
        let end = range.end;
        async move {
            if at >= end {
                return None;
            }
            let to = (at + PIECE).min(end);
            let piece = store
                .store()
                .get_range(&key, at..to)
                .await
                .map_err(std::io::Error::other);
            Some((piece, to))
        }
    });
    Body::from_stream(stream)
}

/// Serves an archive, whole or a byte range.
pub(crate) async fn serve_archive(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let record = state.vault.get(id).await?;
    let (Some(key), Some(size)) = (record.archive_key.clone(), record.archive_size) else {
        return Err(ApiError::not_found(format!("backup {id} has no archive")));
    };
    let mut res = if let Some(r) = headers.get(header::RANGE) {
        let Some(range) = r.to_str().ok().and_then(|r| parse_range(r, size)) else {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("Range: one range bytes=START-END within the archive's {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        };
        let mut res = Response::new(range_stream(state, key, range.clone()));
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let h = res.headers_mut();
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(range.end - range.start),
        );
        res
    } else {
        let (_, stream) = state
            .vault
            .store()
            .get_stream(&key)
            .await
            .map_err(|e| ApiError::from(cairn::Error::from(e)))?;
        let mut res = Response::new(Body::from_stream(
            stream.map(|c| c.map_err(std::io::Error::other)),
        ));
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        res
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.tar.zst\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(sha) = &record.archive_sha256
        && let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\""))
    {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

/// The archive's bytes, streamed from the store (`Range` supported).
#[utoipa::path(get, path = "/v1/backups/{id}/archive", tag = "backups",
    params(("id" = String, Path, description = "Backup id"),
        RangeHeader),
    responses((status = 200, description = "The archive", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "A range of it", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn get_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_archive(&state, &id, &headers).await
}

/// Query of the signed archive route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// Unix seconds.
    pub expires: i64,
    /// HMAC-SHA256, hex.
    pub sig: String,
}

/// The archive through a signed URL of this server (no token needed).
#[utoipa::path(get, path = "/v1/signed/backups/{id}/archive", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), SignedQuery),
    responses((status = 200, description = "The archive", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "A range of it", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "Expired or altered", body = ErrorBody)))]
pub async fn get_signed_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state
        .url_key
        .check(&id, q.expires, &q.sig, jiff::Timestamp::now().as_second())
    {
        return Err(ApiError::forbidden("this URL has expired or was altered"));
    }
    serve_archive(&state, &id, &headers).await
}

/// Query of `GET /v1/backups/{id}/download`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Lifetime in seconds, 1..=604800 (default 900).
    #[param(minimum = 1, maximum = 604_800)]
    pub ttl_seconds: Option<u64>,
}

/// A short-lived signed URL of the archive: presigned by S3/Azure, or
/// this server's own for local stores.
#[utoipa::path(get, path = "/v1/backups/{id}/download", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), DownloadQuery),
    responses((status = 200, body = DownloadView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn download_url(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Json<DownloadView>> {
    let ttl = q.ttl_seconds.unwrap_or(900);
    if !(1..=604_800).contains(&ttl) {
        return Err(ApiError::bad_request("ttl_seconds: 1 to 604800"));
    }
    let record = state.vault.get(&id).await?;
    let size = record
        .archive_size
        .ok_or_else(|| ApiError::not_found(format!("backup {id} has no archive")))?;
    match state
        .vault
        .download_url(&id, Duration::from_secs(ttl))
        .await
    {
        Ok(u) => Ok(Json(DownloadView {
            url: u.url,
            expires_at: u.expires_at.to_string(),
            size_bytes: size,
        })),
        Err(cairn::Error::Unsupported(_)) => {
            let now = jiff::Timestamp::now().as_second();
            let expires = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
            let sig = state.url_key.sign(&id, expires);
            let at = jiff::Timestamp::from_second(expires)
                .map_or_else(|_| String::new(), |t| t.to_string());
            Ok(Json(DownloadView {
                url: format!(
                    "{}/v1/signed/backups/{id}/archive?expires={expires}&sig={sig}",
                    state.base_url
                ),
                expires_at: at,
                size_bytes: size,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Query of `DELETE /v1/backups/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Unpin a pinned backup and delete it.
    pub force: Option<bool>,
}

/// Soft-deletes a backup (undo with `undelete` within the grace period).
#[utoipa::path(delete, path = "/v1/backups/{id}", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), DeleteQuery),
    responses((status = 200, body = BackupView), (status = 404, body = ErrorBody),
        (status = 409, description = "Pinned (without force), or in use by a job", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn delete_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<BackupView>> {
    if q.force.unwrap_or(false) && state.vault.get(&id).await?.pinned {
        state.vault.pin(&id, false).await?;
    }
    Ok(Json(BackupView::from(&state.vault.delete(&id).await?)))
}

/// Brings a soft-deleted backup back.
#[utoipa::path(post, path = "/v1/backups/{id}/undelete", tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, body = BackupView), (status = 404, body = ErrorBody),
        (status = 410, description = "The grace period is over", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn undelete_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupView>> {
    Ok(Json(BackupView::from(&state.vault.undelete(&id).await?)))
}

/// Pins or unpins a backup.
#[utoipa::path(put, path = "/v1/backups/{id}/pin", tag = "backups",
    params(("id" = String, Path, description = "Backup id")),
    request_body(content = PinBody, content_type = "application/json"),
    responses((status = 200, body = BackupView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn pin_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PinBody>,
) -> ApiResult<Json<BackupView>> {
    Ok(Json(BackupView::from(
        &state.vault.pin(&id, body.pinned).await?,
    )))
}

/// Restores a backup onto its target (needs `confirm: true`).
#[utoipa::path(post, path = "/v1/backups/{id}/restore", tag = "restore",
    params(("id" = String, Path, description = "Backup id"),
        IdempotencyHeader),
    request_body(content = RestoreBody, content_type = "application/json"),
    responses((status = 202, description = "Started", body = JobView), (status = 404, body = ErrorBody),
        (status = 409, description = "Busy target, foreign origin without force_foreign, key reused", body = ErrorBody),
        (status = 422, description = "Not confirmed, a component that cannot be restored in place, or an archive that fails verification (truncated, damaged)", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn restore_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RestoreBody>,
) -> ApiResult<Response> {
    let mut req = RestoreRequest::new();
    for n in names(&body.includes)? {
        req = req.include(n);
    }
    if body.confirm {
        req = req.confirm();
    }
    if body.dry_run {
        req = req.dry_run();
    }
    if body.force_foreign {
        req = req.force();
    }
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    let handle = state.vault.restore(&id, req).await?;
    Ok(accepted(&state, handle))
}

/// Verifies a backup (`quick`, `sample` or `full`).
#[utoipa::path(post, path = "/v1/backups/{id}/verify", tag = "backups",
    params(("id" = String, Path, description = "Backup id"),
        IdempotencyHeader),
    request_body(content = Option<VerifyBody>, content_type = "application/json"),
    responses((status = 202, description = "Started", body = JobView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn verify_backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<JsonBody<VerifyBody>>,
) -> ApiResult<Response> {
    let tier = body
        .and_then(|JsonBody(b)| b.tier)
        .map_or(Ok(cairn::VerifyTier::Full), |t| {
            t.parse().map_err(|_| {
                ApiError::bad_request(format!("tier: {t:?} is not quick, sample or full"))
            })
        })?;
    let handle = state
        .vault
        .verify_with_key(&id, tier, idempotency_key(&headers)?)
        .await?;
    Ok(accepted(&state, handle))
}

/// Query of the upload route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// A label for the new backup.
    pub label: Option<String>,
}

/// Ingests an external `.tar`, `.tar.gz`, `.tar.zst` or Cairn archive, streamed
/// as the request body, as a new backup of the target. Answers when the
/// archive has been read and stored: 201 with the finished job.
#[utoipa::path(post, path = "/v1/targets/{target}/uploads", tag = "backups",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"), UploadQuery,
        IdempotencyHeader),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored", body = JobView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, description = "Larger than the limit", body = ErrorBody),
        (status = 422, description = "Not an archive, or hostile paths", body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn upload(
    State(state): State<AppState>,
    Path(target): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let limit = state.max_upload;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("uploads are limited to {limit} bytes"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let mut req = UploadRequest::new();
    if let Some(l) = q.label {
        req = req.label(l);
    }
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    let (stream, pump) = pump_body(body, limit);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let started = state.vault.upload(&target, reader, req).await;
    let job = match started {
        Ok(handle) => handle.wait().await,
        Err(e) => {
            drained(pump).await;
            return Err(e.into());
        }
    };
    state.record(&job);
    if drained(pump).await {
        return Err(too_large());
    }
    if job.state != JobState::Succeeded {
        let (code, message) = job
            .error
            .as_ref()
            .map_or(("internal", "the upload failed".to_owned()), |e| {
                (e.code.as_str(), e.message.clone())
            });
        let (status, code) = status_of_code(code);
        return Err(ApiError::new(
            status,
            code,
            format!("upload {}: {message}", job.id),
        ));
    }
    let mut res = (StatusCode::CREATED, Json(JobView::from(&job))).into_response();
    if let Some(b) = job.result.as_ref().and_then(|r| r["backup_id"].as_str())
        && let Ok(v) = HeaderValue::from_str(&format!("/v1/backups/{b}"))
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// After the ingest stopped early (limit, bad archive), how much more of the
/// request body is read and thrown away so that the client finishes sending
/// and reads the answer: closing a socket with unread data resets the
/// connection, and the client may never see the 413 or 422.
const DRAIN_CAP: u64 = 64 << 20;

/// Reads a request body on its own task: the chunks up to `limit` go to the
/// returned stream; past it, or once the reader has gone, the rest is
/// drained (up to [`DRAIN_CAP`]). The task returns whether the limit was passed.
fn pump_body(
    body: Body,
    limit: u64,
) -> (
    impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin + 'static,
    tokio::task::JoinHandle<bool>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let task = tokio::spawn(async move {
        let mut body = body.into_data_stream();
        let mut count = 0u64;
        let mut over = false;
        let mut reading = true;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                let _ = tx
                    .send(Err(std::io::Error::other("the request body broke off")))
                    .await;
                return over;
            };
            count += chunk.len() as u64;
            if !reading {
                if count > limit.saturating_add(DRAIN_CAP) {
                    break;
                }
                continue;
            }
            if count > limit {
                over = true;
                reading = false;
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "the upload is larger than the limit",
                    )))
                    .await;
            } else if tx.send(Ok(chunk)).await.is_err() {
                reading = false;
            }
        }
        over
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (stream, task)
}

/// Waits (at most 30 s) for [`pump_body`]'s task; whether the limit was passed.
async fn drained(task: tokio::task::JoinHandle<bool>) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(30), task).await,
        Ok(Ok(true))
    )
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this target.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub target: Option<String>,
    /// Only this state.
    #[param(schema_with = schema::job_state)]
    pub state: Option<String>,
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<JobList>> {
    let states: Vec<JobState> = q
        .state
        .as_deref()
        .map(|s| parse_enum("state", s))
        .transpose()?
        .into_iter()
        .collect();
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 1000"));
    }
    if let Some(t) = &q.target {
        TargetName::parse(t).map_err(|e| ApiError::bad_request(format!("target: {e}")))?;
    }
    let jobs = state
        .vault
        .jobs(q.target.as_deref(), &states, limit as usize)
        .await?;
    Ok(Json(JobList {
        items: jobs.iter().map(JobView::from).collect(),
    }))
}

/// One job, with progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(JobView::from(&state.vault.job(&id).await?.status())))
}

/// Server-Sent Events: the job each time it changes (`event: job`), until
/// it ends (`event: end`, carrying the final job).
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "An event stream; each event is described here", content_type = "text/event-stream", body = JobEvent),
        (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let first = state.vault.job(&id).await?;
    let rx = first.subscribe();
    struct Follow {
        state: AppState,
        id: String,
        rx: tokio::sync::watch::Receiver<cairn::Job>,
        last: Option<cairn::Job>,
        seq: u64,
        done: bool,
    }
    let follow = Follow {
        state,
        id,
        rx,
        last: None,
        seq: 0,
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            // A job of this process changes through its watch; one of
            // another process through the catalog (progress saved once a second).
            let job = match f.state.vault.job(&f.id).await {
                Ok(h) => h.status(),
                Err(e) => {
                    f.done = true;
                    let ev = Event::default().event("error").data(e.to_string());
                    return Some((Ok::<_, std::convert::Infallible>(ev), f));
                }
            };
            if f.last.as_ref() != Some(&job) {
                f.seq += 1;
                let end = job.state.is_terminal();
                let data = serde_json::to_string(&JobView::from(&job)).unwrap_or_default();
                let ev = Event::default()
                    .id(f.seq.to_string())
                    .event(if end { "end" } else { "job" })
                    .data(data);
                f.done = end;
                f.last = Some(job);
                return Some((Ok(ev), f));
            }
            tokio::select! {
                _ = f.rx.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Asks a job to stop; it undoes what it did.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, description = "Asked", body = JobView), (status = 404, body = ErrorBody),
        (status = 409, description = "It has ended", body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    state.vault.cancel(&id).await?;
    let job = state.vault.job(&id).await?.status();
    let mut res = (StatusCode::ACCEPTED, Json(JobView::from(&job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// A target's last restore.
#[utoipa::path(get, path = "/v1/targets/{target}/restore-status", tag = "restore",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = RestoreStatusView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn restore_status(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Json<RestoreStatusView>> {
    Ok(Json(RestoreStatusView::from(
        &state.vault.restore_status(&target).await?,
    )))
}

/// A target's automatic backups.
#[utoipa::path(get, path = "/v1/targets/{target}/schedule", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_schedule(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(
        schedule_view(&state, &state.vault.target(&target)?).await?,
    ))
}

/// Enables or disables automatic backups, or changes their interval.
/// Re-enabling is refused (409, `cooldown`) until the cooldown ends.
#[utoipa::path(put, path = "/v1/targets/{target}/schedule", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body(content = ScheduleBody, content_type = "application/json"),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody),
        (status = 409, description = "Cooldown not over, or a backup/restore runs", body = ErrorBody),
        (status = 422, description = "Interval below the minimum", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn put_schedule(
    State(state): State<AppState>,
    Path(target): Path<String>,
    JsonBody(body): JsonBody<ScheduleBody>,
) -> ApiResult<Json<ScheduleView>> {
    if let Some(every) = body.every_seconds {
        let every = (every > 0).then(|| Duration::from_secs(every));
        state.vault.set_schedule_every(&target, every).await?;
    }
    if let Some(enabled) = body.enabled {
        state.vault.schedule(&target, enabled).await?;
    }
    Ok(Json(
        schedule_view(&state, &state.vault.target(&target)?).await?,
    ))
}

/// A target's retention policy.
#[utoipa::path(get, path = "/v1/targets/{target}/retention", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, description = "The policy (docs/retention.md)", body = PolicyDoc), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_retention(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let t = state.vault.target(&target)?;
    Ok(Json(serde_json::to_value(&t.retention).unwrap_or_default()))
}

/// Replaces a target's retention policy (kept over restarts).
#[utoipa::path(put, path = "/v1/targets/{target}/retention", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    request_body(content = PolicyDoc, description = "The policy (docs/retention.md)", content_type = "application/json"),
    responses((status = 200, description = "The policy in force", body = PolicyDoc), (status = 404, body = ErrorBody),
        (status = 409, description = "A backup or restore runs", body = ErrorBody),
        (status = 422, description = "Not a valid policy", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn put_retention(
    State(state): State<AppState>,
    Path(target): Path<String>,
    JsonBody(body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<serde_json::Value>> {
    state.vault.target(&target)?;
    // The body is already a JSON object: deserialise it in place rather than
    // through `Policy::from_json_str`, which would re-read it from text.
    let policy: Policy = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::invalid(format!("retention: {e}")))?;
    state.vault.set_retention(&target, policy).await?;
    get_retention(State(state), Path(target)).await
}

/// Applies retention now (`dry_run`: only the plan).
#[utoipa::path(post, path = "/v1/targets/{target}/prune", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
        IdempotencyHeader),
    request_body(content = Option<PruneBody>, content_type = "application/json"),
    responses((status = 202, description = "Started", body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn prune(
    State(state): State<AppState>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Option<JsonBody<PruneBody>>,
) -> ApiResult<Response> {
    let dry_run = body.is_some_and(|JsonBody(b)| b.dry_run);
    let handle = state
        .vault
        .prune_with_key(&target, dry_run, idempotency_key(&headers)?)
        .await?;
    Ok(accepted(&state, handle))
}

/// Factory reset: restores the target's pinned `factory` backup, or empties
/// its components (needs `confirm: true`).
#[utoipa::path(post, path = "/v1/targets/{target}/reset-factory", tag = "restore",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
        IdempotencyHeader),
    request_body(content = ResetBody, content_type = "application/json"),
    responses((status = 202, description = "Started", body = JobView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, description = "Not confirmed", body = ErrorBody)),
    security(("bearer" = ["backups:admin"])))]
pub async fn reset_factory(
    State(state): State<AppState>,
    Path(target): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ResetBody>,
) -> ApiResult<Response> {
    let handle = state
        .vault
        .reset_with_key(&target, body.confirm, idempotency_key(&headers)?)
        .await?;
    Ok(accepted(&state, handle))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Some(0..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=-0",
            "bytes=5-4",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
            "@iO",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
