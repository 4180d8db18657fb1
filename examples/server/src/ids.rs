//! Request ids: taken from the client's `X-Request-Id` when it is sane,
//! else made; returned in the `X-Request-Id` header and in every JSON body
//! (`request_id` at the top, or inside `error`). Error responses that are not
//! JSON (axum's rejections: bad JSON, wrong method, ...) become the error
//! document here, so that clients see one shape. A response marked
//! [`Verbatim`] (the OpenAPI document, the dashboard's pages, its error
//! pages included) keeps its body as it is.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::code_of_status;

/// The request's id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A response extension: the body is served as the handler made it, with
/// the `X-Request-Id` header only. For documents whose shape belongs to a
/// standard (the OpenAPI document), where a `request_id` field would be
/// foreign.
#[derive(Debug, Clone, Copy)]
pub struct Verbatim;

/// The header.
pub const HEADER: &str = "x-request-id";

/// JSON bodies larger than this are passed through untouched (none of the
/// server's documents is near it; archives and event streams are not JSON).
const MAX_REWRITE: usize = 8 << 20;

/// The client ids kept (1–64 of `A-Za-z0-9._-`), as the OpenAPI document
/// states them.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// A client's id is kept when it matches [`ID_PATTERN`].
fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The layer (`axum::middleware::from_fn`).
pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(
            || format!("req_{}", ulid::Ulid::generate().to_string().to_lowercase()),
            str::to_owned,
        );
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let uri = req.uri().path().to_owned();
    let res = next.run(req).await;
    let (mut parts, body) = res.into_parts();
    if let Some(crate::error::Internal(detail)) = parts.extensions.remove() {
        tracing::error!(request_id = %id, %method, path = %uri, error = %detail, "request failed");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        parts.headers.insert(HEADER, v);
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let is_json = content_type.starts_with("application/json");
    let is_error = parts.status.is_client_error() || parts.status.is_server_error();
    let verbatim = parts.extensions.get::<Verbatim>().is_some();
    if verbatim || (!is_json && !is_error) {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITE).await else {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, Body::empty());
    };
    let doc = if is_json {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut map)) => {
                // Only an error response's `error` is the error document: a
                // failed job has an `error` of its own.
                match map.get_mut("error").filter(|_| is_error) {
                    Some(serde_json::Value::Object(e)) => {
                        e.insert("request_id".into(), id.clone().into());
                    }
                    _ => {
                        map.insert("request_id".into(), id.clone().into());
                    }
                }
                serde_json::Value::Object(map)
            }
            _ => return Response::from_parts(parts, Body::from(bytes)),
        }
    } else {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        let message = if text.is_empty() {
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_owned()
        } else {
            text
        };
        serde_json::json!({
            "error": {
                "code": code_of_status(parts.status),
                "message": message,
                "request_id": id,
            }
        })
    };
    let out = serde_json::to_vec(&doc).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}
