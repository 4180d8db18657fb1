//! Uploads: an archive streamed as a request body becomes a backup.

#![allow(unused_qualifications)]

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn::{JobState, UploadRequest};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiResult, idempotency_key, located};
use crate::AppState;
use crate::error::{ApiError, ErrorBody, status_of_code};
use crate::schema::IdempotencyHeader;
use crate::views::JobView;

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
    let started = state
        .vault
        .upload(&target, tokio_util::io::StreamReader::new(stream), req)
        .await;
    let job = match started {
        Ok(handle) => handle.wait().await,
        Err(e) => {
            drained(pump).await;
            return Err(e.into());
        }
    };
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
    let view = JobView::from(&job);
    Ok(
        match job.result.as_ref().and_then(cairn::JobResult::backup_id) {
            Some(b) => located(StatusCode::CREATED, view, &format!("/v1/backups/{b}")),
            None => (StatusCode::CREATED, Json(view)).into_response(),
        },
    )
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
