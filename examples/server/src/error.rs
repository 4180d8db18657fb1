//! Errors as HTTP responses: `{"error": {"code", "message", "request_id"}}`.
//!
//! The request id is added by the request-id layer (`crate::ids`), which
//! also turns the plain-text rejections of axum's extractors into this shape,
//! so that every error body is one document of one form.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code (`not_found`, `conflict`, ...).
    pub code: &'static str,
    /// One line for a human.
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `cooldown`, `gone`, `too_large`, `invalid`,
    /// `verification_failed`, `foreign_origin`, `unsupported`, `internal`, ...
    pub code: String,
    /// One line for a human.
    pub message: String,
    /// The request's id (also in `X-Request-Id`).
    pub request_id: String,
}

impl ApiError {
    /// An error with this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: understood but refused (e.g. a restore without `confirm`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

/// The status and stable code of an engine error code (`Error::code`, or
/// a failed job's `error.code`); unknown codes are `internal`.
pub fn status_of_code(code: &str) -> (StatusCode, &'static str) {
    match code {
        "not_found" => (StatusCode::NOT_FOUND, "not_found"),
        "invalid" => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        "verification_failed" => (StatusCode::UNPROCESSABLE_ENTITY, "verification_failed"),
        "conflict" => (StatusCode::CONFLICT, "conflict"),
        "cooldown" => (StatusCode::CONFLICT, "cooldown"),
        "foreign_origin" => (StatusCode::CONFLICT, "foreign_origin"),
        "gone" => (StatusCode::GONE, "gone"),
        "unsupported" => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<cairn::Error> for ApiError {
    fn from(e: cairn::Error) -> Self {
        let (status, code) = status_of_code(e.code());
        if status.is_server_error() {
            tracing::error!(error = %e, code = e.code(), "request failed");
        }
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id is filled in by the request-id layer.
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The code of an error status that carries no code of its own (axum's
/// rejections: bad JSON, bad query, wrong method, body too large).
pub fn code_of_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}
