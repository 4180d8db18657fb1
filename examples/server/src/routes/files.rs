//! Single files and folders out of any backup: one file (by range too) or
//! a folder as a tar.zst, every byte checked against the signed manifest
//! before it is sent (`cairn::Vault::extract`).

#![allow(unused_qualifications)]

use std::io::{Seek, SeekFrom};

use tokio::io::AsyncReadExt;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiResult;
use super::archive::{download_headers, insert, parse_range, unsatisfiable};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::schema::RangeHeader;

/// Query of `GET /v1/backups/{id}/files`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// `component/relative/path` as the manifest lists it (a component's
    /// name alone is its root folder); leading and trailing `/` ignored.
    #[param(min_length = 1, max_length = 4096)]
    pub path: String,
}

/// A file name safe in a `Content-Disposition` header: what is not a
/// letter, digit, dot, dash or underscore becomes `_`.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "file".to_owned() } else { s }
}

/// Chunks of a file sent at a time.
const CHUNK: usize = 256 * 1024;

/// One file of a backup (`Range` supported), or a folder as a tar.zst of
/// its subtree (entries named `component/…`; `Range` ignored). Each byte
/// is checked against the signed manifest before any is sent.
#[utoipa::path(get, path = "/v1/backups/{id}/files", tag = "backups",
    params(("id" = String, Path, description = "Backup id"), FileQuery, RangeHeader),
    responses(
        (status = 200, description = "The file, or a folder as a tar.zst",
            content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/zstd"))),
        (status = 206, description = "A range of the file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such backup, or no such path in it (a malformed path, with `..` or empty or over-long parts, is in none)", body = ErrorBody),
        (status = 416, description = "A range that is not within the file", body = ErrorBody),
        (status = 422, description = "A symbolic link (it has no content), a backup not ready or deleted, or one that failed verification: nothing of it is sent", body = ErrorBody)),
    security(("bearer" = ["backups:write"])))]
pub async fn get_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // A malformed path (`..`, empty or over-long parts) is one no backup
    // holds: not found, with the reason.
    cairn::parse_path(&q.path)
        .map_err(|e| ApiError::not_found(format!("{e}: no backup holds such a path")))?;
    let x = state.vault.extract(&id, &q.path).await?;
    let name = safe_name(&x.name());
    if x.is_dir() {
        // Written as it is read, by a blocking task that owns the unpacked
        // tree until the last byte is sent.
        let (w, r) = tokio::io::duplex(CHUNK);
        tokio::task::spawn_blocking(move || {
            let w = tokio_util::io::SyncIoBridge::new(w);
            if let Err(e) = x.write_tar_zst(w) {
                tracing::warn!(error = %e, "sending a folder stopped");
            }
        });
        let mut res = Response::new(Body::from_stream(
            tokio_util::io::ReaderStream::with_capacity(r, CHUNK),
        ));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zstd"),
        );
        insert(
            &mut res,
            header::CONTENT_DISPOSITION,
            &format!("attachment; filename=\"{name}.tar.zst\""),
        );
        return Ok(res);
    }
    let size = x.size();
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(r) => match r.to_str().ok().and_then(|r| parse_range(r, size)) {
            Some(range) => Some(range),
            None => return Ok(unsatisfiable("the file", size)),
        },
    };
    let shown = range.clone().unwrap_or(0..size);
    let mut file = std::fs::File::open(x.path()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("opening the unpacked file: {e}"),
        )
    })?;
    file.seek(SeekFrom::Start(shown.start)).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("reading the unpacked file: {e}"),
        )
    })?;
    let sha256 = x.sha256();
    // The open file outlives its folder, removed now.
    drop(x);
    let body = tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(file).take(shown.end - shown.start),
        CHUNK,
    );
    let mut res = Response::new(Body::from_stream(body));
    res.headers_mut().insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(shown.end - shown.start),
    );
    if range.is_some() {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        insert(
            &mut res,
            header::CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{size}",
                shown.start,
                shown.end.saturating_sub(1)
            ),
        );
    }
    download_headers(&mut res, &name, sha256.as_deref());
    Ok(res)
}
