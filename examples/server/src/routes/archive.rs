//! A backup's archive: streamed whole or by range, through a signed URL of
//! this server, or through one the store presigns.

#![allow(unused_qualifications)]

use std::ops::Range;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiResult;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::schema::RangeHeader;
use crate::views::DownloadView;

/// A `Range: bytes=...` header's one range, within `size`; `None` for
/// anything else (several ranges, other units, malformed, outside the
/// object), which is answered 416.
pub(super) fn parse_range(value: &str, size: u64) -> Option<Range<u64>> {
    let (a, b) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let range = match (number(a), number(b)) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if a.is_empty() => size.saturating_sub(n)..size,
        // bytes=S-: from S to the end.
        (Some(start), None) if b.is_empty() => start..size,
        // bytes=S-E, E inclusive.
        (Some(start), Some(last)) if start <= last => start..last.saturating_add(1).min(size),
        _ => return None,
    };
    (range.start < range.end).then_some(range)
}

pub(super) fn insert(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

/// The 416 answer to a `Range` that is not one range within `what`'s
/// `size` bytes.
pub(super) fn unsatisfiable(what: &str, size: u64) -> Response {
    let mut res = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("Range: one range bytes=START-END within {what}'s {size} bytes"),
    )
    .into_response();
    insert(&mut res, header::CONTENT_RANGE, &format!("bytes */{size}"));
    res
}

/// Serves an archive, whole or a byte range.
async fn serve_archive(state: &AppState, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let record = state.vault.get(id).await?;
    let size = record
        .archive_size
        .ok_or_else(|| ApiError::not_found(format!("backup {id} has no archive")))?;
    if record.parent().is_some() && headers.contains_key(header::RANGE) {
        // Assembled as it streams: its bytes have no offsets before they exist.
        return Ok(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!(
                "backup {id} is incremental: its archive is assembled from its chain as it streams, so a byte range of it cannot be served; download it whole"
            ),
        )
        .into_response());
    }
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(r) => match r.to_str().ok().and_then(|r| parse_range(r, size)) {
            Some(range) => Some(range),
            None => return Ok(unsatisfiable("the archive", size)),
        },
    };
    let partial = range.is_some();
    let archive = state.vault.open_archive(id, range).await?;
    let (shown, sha256) = (archive.range.clone(), archive.sha256.clone());
    let extension = if archive.encrypted {
        "tar.zst.age"
    } else {
        "tar.zst"
    };
    let mut res = Response::new(Body::from_stream(
        archive.map(|piece| piece.map_err(std::io::Error::other)),
    ));
    // An assembled archive's length is known only at its end: chunked.
    if let Some(shown) = &shown {
        res.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(shown.end - shown.start),
        );
        if partial {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            insert(
                &mut res,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{size}", shown.start, shown.end - 1),
            );
        }
    }
    download_headers(&mut res, &format!("{id}.{extension}"), sha256.as_deref());
    Ok(res)
}

/// The headers of a download of bytes: `application/octet-stream`, byte
/// ranges accepted, its file name, and its SHA-256 as the `ETag` when known.
pub(super) fn download_headers(res: &mut Response, filename: &str, sha256: Option<&str>) {
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert(
        res,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{filename}\""),
    );
    if let Some(sha) = sha256 {
        insert(res, header::ETAG, &format!("\"{sha}\""));
    }
}

/// The archive's bytes, streamed from the store (`Range` supported).
#[utoipa::path(get, path = "/v1/backups/{id}/archive", tag = "backups",
    params(("id" = String, Path, description = "Backup id"),
        RangeHeader),
    responses((status = 200, description = "The archive (an age file, ID.tar.zst.age, for an encrypted backup)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "A range of it", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody),
        (status = 416, description = "A range that is not within the archive, or any range of an incremental backup (assembled as it streams)", body = ErrorBody),
        (status = 501, description = "An encrypted incremental backup whose target has no recipients left to encrypt its assembled archive to", body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn get_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_archive(&state, &id, &headers).await
}

/// Query of the signed archive route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// Unix seconds.
    pub expires: i64,
    /// HMAC-SHA256, hex.
    pub sig: String,
}

/// The archive through a signed URL of this server (no token needed).
#[utoipa::path(get, path = "/v1/signed/backups/{id}/archive", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), SignedQuery),
    responses((status = 200, description = "The archive (an age file, ID.tar.zst.age, for an encrypted backup)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "A range of it", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "Expired or altered", body = ErrorBody),
        (status = 416, description = "A range that is not within the archive, or any range of an incremental backup", body = ErrorBody)))]
pub async fn get_signed_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !state
        .url_key
        .check(&id, q.expires, &q.sig, jiff::Timestamp::now().as_second())
    {
        return Err(ApiError::forbidden("this URL has expired or was altered"));
    }
    serve_archive(&state, &id, &headers).await
}

/// Query of `GET /v1/backups/{id}/download`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Lifetime in seconds, 1..=604800 (default 900).
    #[param(minimum = 1, maximum = 604_800)]
    pub ttl_seconds: Option<u64>,
}

/// A short-lived signed URL of the archive: presigned by S3/Azure, or
/// this server's own for local stores.
#[utoipa::path(get, path = "/v1/backups/{id}/download", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), DownloadQuery),
    responses((status = 200, body = DownloadView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn download_url(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Json<DownloadView>> {
    let ttl = q.ttl_seconds.unwrap_or(900);
    if !(1..=604_800).contains(&ttl) {
        return Err(ApiError::bad_request("ttl_seconds: 1 to 604800"));
    }
    let record = state.vault.get(&id).await?;
    let size = record
        .archive_size
        .ok_or_else(|| ApiError::not_found(format!("backup {id} has no archive")))?;
    match state
        .vault
        .download_url(&id, Duration::from_secs(ttl))
        .await
    {
        Ok(u) => Ok(Json(DownloadView {
            url: u.url,
            expires_at: u.expires_at.to_string(),
            size_bytes: size,
        })),
        // Stores that cannot sign, and incremental backups (whose stored
        // object is not their whole state): this server serves the archive.
        Err(cairn::Error::Unsupported(_) | cairn::Error::Incremental { .. }) => {
            let now = jiff::Timestamp::now().as_second();
            let expires = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
            let sig = state.url_key.sign(&id, expires);
            let at = jiff::Timestamp::from_second(expires)
                .map_or_else(|_| String::new(), |t| t.to_string());
            Ok(Json(DownloadView {
                url: format!(
                    "{}/v1/signed/backups/{id}/archive?expires={expires}&sig={sig}",
                    state.base_url
                ),
                expires_at: at,
                size_bytes: size,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Some(0..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=-0",
            "bytes=5-4",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
            "@iO",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
