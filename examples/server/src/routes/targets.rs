//! Targets and their settings: schedules, retention, pruning.

#![allow(unused_qualifications)]

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn::{JobState, Policy, PruneRequest};

use super::{ApiResult, accepted, idempotency_key};
use crate::AppState;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::schema::IdempotencyHeader;
use crate::views::{
    JobView, PolicyDoc, PruneBody, RestoreStatusView, ScheduleBody, ScheduleView, TargetList,
    TargetView, components,
};

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
        schedule: ScheduleView::from(&state.vault.schedule_status(name).await?),
        retention: serde_json::to_value(&config.retention).unwrap_or_default(),
        current_job: current.map(JobView::from),
        restore_status: RestoreStatusView::from(&restore),
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

/// A target's automatic backups.
#[utoipa::path(get, path = "/v1/targets/{target}/schedule", tag = "targets",
    params(("target" = String, Path, description = "Target name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:read"])))]
pub async fn get_schedule(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(ScheduleView::from(
        &state.vault.schedule_status(&target).await?,
    )))
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
    let schedule = match body.enabled {
        Some(enabled) => state.vault.schedule(&target, enabled).await?,
        None => state.vault.schedule_status(&target).await?,
    };
    Ok(Json(ScheduleView::from(&schedule)))
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
    let mut req = PruneRequest::new();
    if body.is_some_and(|JsonBody(b)| b.dry_run) {
        req = req.dry_run();
    }
    if let Some(k) = idempotency_key(&headers)? {
        req = req.idempotency_key(k);
    }
    Ok(accepted(&state.vault.prune(&target, req).await?))
}
