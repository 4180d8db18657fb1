//! Jobs: list, read, follow as Server-Sent Events, cancel.

#![allow(unused_qualifications)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cairn::{JobState, TargetName};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiResult, located, parse_enum};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::schema;
use crate::views::{JobEvent, JobList, JobView};

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
    let changes = state.vault.follow(&id).await?;
    let events = changes.enumerate().map(|(seq, change)| {
        let event = match change {
            Ok(job) => Event::default()
                .id((seq + 1).to_string())
                .event(if job.state.is_terminal() {
                    "end"
                } else {
                    "job"
                })
                .data(serde_json::to_string(&JobView::from(&job)).unwrap_or_default()),
            Err(e) => {
                let e = ApiError::from(e);
                if let Some(internal) = &e.internal {
                    tracing::error!(%internal, "following a job failed");
                }
                Event::default().event("error").data(e.message)
            }
        };
        Ok::<_, std::convert::Infallible>(event)
    });
    Ok(Sse::new(events)
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
    Ok(located(
        StatusCode::ACCEPTED,
        JobView::from(&job),
        &format!("/v1/jobs/{id}"),
    ))
}
