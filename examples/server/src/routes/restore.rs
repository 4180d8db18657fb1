//! Restores and factory resets, and a target's last restore.

#![allow(unused_qualifications)]

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn::{ResetRequest, RestoreRequest};

use super::{ApiResult, accepted, idempotency_key, names};
use crate::AppState;
use crate::body::JsonBody;
use crate::error::ErrorBody;
use crate::schema::IdempotencyHeader;
use crate::views::{JobView, ResetBody, RestoreBody, RestoreStatusView};

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
    Ok(accepted(&state.vault.restore(&id, req).await?))
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
    let mut req = ResetRequest::new();
    if body.confirm {
        req = req.confirm();
    }
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    Ok(accepted(&state.vault.reset(&target, req).await?))
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
