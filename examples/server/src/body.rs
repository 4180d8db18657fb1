//! JSON request bodies with the API's error document. Every body of this
//! API is a JSON object: anything else (not JSON, an array, a wrong type, an
//! unknown field) is 400 `bad_request`; a body sent without
//! `Content-Type: application/json` is 415; one over the limit 413. (axum's
//! `Json` answers 422 for a wrong type, the status this API keeps for
//! requests that are well formed but refused, and reads an array into a
//! struct field by field.)
//!
//! As an `Option`, an absent body (nothing but white space, or JSON `null`)
//! is `None`.

use axum::Json;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON, with Content-Type: application/json",
    )
}

/// `application/json` or `application/<anything>+json`, parameters aside.
fn declared_json(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

/// The body as `T`, or `None` when it is empty; `declared` is
/// [`declared_json`] of the request, which the caller needs too.
async fn read<T, S>(req: Request, declared: bool, state: &S) -> Result<Option<T>, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, e.body_text())
    })?;
    if bytes.trim_ascii().is_empty() || (declared && bytes.trim_ascii() == b"null") {
        return Ok(None);
    }
    if !declared {
        return Err(not_json());
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Json::<T>::from_bytes(&bytes)
        .map(|Json(v)| Some(v))
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = declared_json(&req);
        match read(req, declared, state).await? {
            Some(v) => Ok(Self(v)),
            None if declared => Err(ApiError::bad_request("a JSON body is required")),
            None => Err(not_json()),
        }
    }
}

impl<T, S> OptionalFromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let declared = declared_json(&req);
        Ok(read(req, declared, state).await?.map(Self))
    }
}

/// Whether a request comes with a body: a non-zero `Content-Length`, or
/// any `Transfer-Encoding`.
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The layer (`axum::middleware::from_fn`) that answers an error to a
/// request with a body with `Connection: close`. An error may come before
/// the body was read (a token refused, a body over the limit); hyper then
/// closes the connection after the answer, and a client that was not told
/// would send its next request on a dead connection.
pub async fn close_after_refused_body(req: Request, next: axum::middleware::Next) -> Response {
    let with_body = has_body(&req);
    let mut res = next.run(req).await;
    let status = res.status();
    if with_body && (status.is_client_error() || status.is_server_error()) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
