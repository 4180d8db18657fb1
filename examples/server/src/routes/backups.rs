//! Backups: start one, list and read them, verify, delete, pin.

#![allow(unused_qualifications)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cairn::{BackupFilter, BackupKind, BackupRequest, Cursor, TargetName, VerifyRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiResult, accepted, idempotency_key, names, parse_enum};
use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::schema::IdempotencyHeader;
use crate::views::{BackupBody, BackupPage, BackupQuery, BackupView, JobView, PinBody, VerifyBody};

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
    if body.full {
        req = req.full();
    }
    if body.full_read {
        req = req.full_read();
    }
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
    Ok(accepted(&state.vault.backup(&target, req).await?))
}

/// Backups, newest first, a page at a time: those of the targets this
/// server runs, or with `all_targets` those of every target of the store
/// (a fleet of hosts sharing it; restoring one of another target in place
/// stays refused).
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
    let all_targets = q.all_targets.unwrap_or(false);
    let filter = BackupFilter {
        targets: (!all_targets && q.target.is_none()).then(|| state.vault.target_names()),
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
    // The next pages of one listing do not follow the store again.
    if all_targets && cursor.is_none() {
        state.fleet.follow(&state.vault).await?;
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

/// Most entries one manifest request returns (`limit`).
const MAX_MANIFEST_LIMIT: u64 = 100_000;

/// Query of `GET /v1/backups/{id}/manifest`: a page of the entries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ManifestQuery {
    /// Entries to skip (default 0).
    #[param(maximum = 4_294_967_295_u64)]
    pub offset: Option<u64>,
    /// Entries to return, 1 to 100000 (default: all from `offset`). The
    /// components' `entries` add up to the total, to page through.
    #[param(minimum = 1, maximum = 100_000)]
    pub limit: Option<u64>,
}

/// The backup's manifest, authenticated against its seal; `offset` and
/// `limit` return a page of its entries (a format 2 backup then reads only
/// the pages of its manifest that hold them).
#[utoipa::path(get, path = "/v1/backups/{id}/manifest", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), ManifestQuery),
    responses((status = 200, description = "The manifest (docs/format.md)", body = Object),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "It failed verification", body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ManifestQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    if q.limit.is_some_and(|l| l == 0 || l > MAX_MANIFEST_LIMIT) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {MAX_MANIFEST_LIMIT}"
        )));
    }
    let m = state
        .vault
        .manifest_page(&id, q.offset.unwrap_or(0), q.limit)
        .await?;
    Ok(Json(serde_json::to_value(&m).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?))
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
    if q.force.unwrap_or(false) {
        state.vault.unpin(&id).await?;
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
    let record = if body.pinned {
        state.vault.pin(&id).await?
    } else {
        state.vault.unpin(&id).await?
    };
    Ok(Json(BackupView::from(&record)))
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
    let mut req = VerifyRequest::new(tier);
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    Ok(accepted(&state.vault.verify(&id, req).await?))
}
