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
    /// For a server error: what happened, logged (with the request's id)
    /// instead of sent.
    pub internal: Option<String>,
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
            internal: None,
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

/// The status of an engine error kind, and the code the error document
/// carries (the kind's name, except for the catch-all).
pub fn status_of(kind: cairn::ErrorKind) -> (StatusCode, &'static str) {
    use cairn::ErrorKind as K;
    let status = match kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::Invalid | K::VerificationFailed => StatusCode::UNPROCESSABLE_ENTITY,
        K::Conflict | K::Cooldown | K::ForeignOrigin => StatusCode::CONFLICT,
        K::Gone => StatusCode::GONE,
        K::Unsupported => StatusCode::NOT_IMPLEMENTED,
        K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = match kind {
        K::Config => "internal",
        k => k.as_str(),
    };
    (status, code)
}

/// The status and code of a failed job's `error.code` (an engine kind's
/// name; the runner's own `timeout` and `interrupted` are server errors).
pub fn status_of_code(code: &str) -> (StatusCode, &'static str) {
    cairn::ErrorKind::from_code(code)
        .map_or((StatusCode::INTERNAL_SERVER_ERROR, "internal"), status_of)
}

/// What a server error really was: kept out of the answer, logged with the
/// request's id by the request-id layer (`crate::ids`).
#[derive(Debug, Clone)]
pub struct Internal(pub String);

impl From<cairn::Error> for ApiError {
    fn from(e: cairn::Error) -> Self {
        // A pinned backup to delete, an ended job to cancel: refused for the
        // resource's state, which HTTP calls a conflict.
        if matches!(e, cairn::Error::Pinned { .. } | cairn::Error::Ended { .. }) {
            return Self::new(StatusCode::CONFLICT, "conflict", e.report());
        }
        let (status, code) = status_of(e.kind());
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            let mut err = Self::new(
                status,
                code,
                "internal error: the server's log has the details under this request's id",
            );
            err.internal = Some(e.report());
            return err;
        }
        Self::new(status, code, e.report())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id is filled in by the request-id layer.
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut res = (self.status, Json(body)).into_response();
        if let Some(detail) = self.internal {
            res.extensions_mut().insert(Internal(detail));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_keeps_its_details_out_of_the_answer() {
        let e = cairn::Error::Archive(cairn::errors::ArchiveError::Io {
            op: "reading",
            path: Some("/var/lib/secret/place".into()),
            source: std::io::Error::other("disk on fire"),
        });
        let err = ApiError::from(e);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code, "internal");
        assert!(!err.message.contains("secret") && !err.message.contains("fire"));
        let detail = err.internal.clone().unwrap();
        assert!(
            detail.contains("/var/lib/secret/place") && detail.contains("disk on fire"),
            "{detail}"
        );
        let res = err.into_response();
        assert!(
            res.extensions().get::<Internal>().is_some(),
            "the layer logs it"
        );

        // A client's error says what is wrong.
        let e = cairn::Error::NotFound {
            what: "backup",
            id: "bkp_x".into(),
        };
        let err = ApiError::from(e);
        assert_eq!((err.status, err.code), (StatusCode::NOT_FOUND, "not_found"));
        assert_eq!(err.message, "backup bkp_x not found");
        assert!(err.internal.is_none());
        let pinned = ApiError::from(cairn::Error::Pinned {
            backup: "bkp_x".into(),
        });
        assert_eq!(
            (pinned.status, pinned.code),
            (StatusCode::CONFLICT, "conflict")
        );
    }
}
