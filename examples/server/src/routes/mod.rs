//! The handlers of SPEC §8, each with its OpenAPI description, grouped by
//! what they work on. Each handler turns its request into one call of the
//! engine and its answer into one of [`crate::views`]' documents.

// utoipa's `IntoParams` expansion names the extractor types in full.
#![allow(unused_qualifications)]
// A handler's errors are HTTP answers, listed in its `responses(...)`
// annotation, which the OpenAPI document carries: no `# Errors` prose.
#![allow(clippy::missing_errors_doc)]

pub mod archive;
pub mod backups;
pub mod files;
pub mod jobs;
pub mod restore;
pub mod targets;
pub mod upload;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn::{ComponentName, IdempotencyKey, JobHandle};

use crate::error::ApiError;
use crate::views::{Health, JobView};

type ApiResult<T> = Result<T, ApiError>;

/// A value of one of the library's enums, by its serde name; a 400 naming
/// the field otherwise.
fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> ApiResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| ApiError::bad_request(format!("{what}: {value:?} is not a known value")))
}

/// Component names of a body's `includes`.
fn names(list: &[String]) -> ApiResult<Vec<ComponentName>> {
    list.iter()
        .map(|n| {
            ComponentName::parse(n)
                .map_err(|e| ApiError::bad_request(format!("component {n:?}: {e}")))
        })
        .collect()
}

/// The `Idempotency-Key` header, if any.
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

/// `status` with `body` and a `Location` header.
fn located(status: StatusCode, body: impl serde::Serialize, location: &str) -> Response {
    let mut res = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// 202 Accepted with the job and its `Location`.
fn accepted(handle: &JobHandle) -> Response {
    let job = handle.status();
    located(
        StatusCode::ACCEPTED,
        JobView::from(&job),
        &format!("/v1/jobs/{}", job.id),
    )
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}
