//! `GET /api/v1/tickets/{id}/recording`: the caller's message as `audio/wav`, with HTTP
//! Range (206), so that the browser's player can seek without downloading the whole file.
//! 410 when the ticket had a recording that no longer exists (deleted by retention); 404
//! when it never had one. Only files under the recordings directory are served, whatever
//! a stored document says.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Seek, SeekFrom};

use super::api::error;
use super::{status_of, ApiCaller, Desk};
use crate::ticket::progress::decode;

/// The largest range served at once (a player asks again for the rest).
const MAX_CHUNK: u64 = 4 << 20;

/// `Range: bytes=a-b | a- | -n` of a file of `len` bytes → `(start, end_inclusive)`;
/// `Some(None)` when the range is unsatisfiable, `None` when there is no usable range
/// header (serve the whole file).
pub fn parse_range(h: Option<&str>, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = h?.trim().strip_prefix("bytes=")?;
    // One range only; a multi-range request gets the whole file (allowed by RFC 9110).
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Some(None);
        }
        (start, end)
    };
    Some(Some(r))
}

pub(crate) async fn serve(
    State(desk): State<Desk>,
    ApiCaller(who): ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rec = match desk.blocking(move |s| s.find(&id)).await {
        Ok(r) => r,
        Err(e) => return error(status_of(&e), e.to_string()),
    };
    let doc = decode(&rec.ticket_id, &rec.document).unwrap_or_default();
    let Some(location) = doc.pointer("/recording/location").and_then(|v| v.as_str()) else {
        return error(StatusCode::NOT_FOUND, "this ticket has no recording");
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Playing from the start is "played the recording"; the player's seeks are not logged again.
    if range.as_deref().is_none_or(|r| r.starts_with("bytes=0-")) {
        desk.audit(&who, "play_recording", &rec.ticket_id).await;
    }
    let location = std::path::PathBuf::from(location);
    let root = desk.recordings_dir.clone();
    let read =
        tokio::task::spawn_blocking(move || read_range(&root, &location, range.as_deref())).await;
    match read {
        Ok(Ok(r)) => r,
        Ok(Err(status)) => error(status, "recording not available"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn read_range(
    root: &std::path::Path,
    location: &std::path::Path,
    range: Option<&str>,
) -> Result<Response, StatusCode> {
    let Ok(path) = location.canonicalize() else {
        // The ticket says there was one: it expired (retention) or was removed.
        return Err(StatusCode::GONE);
    };
    let root = root.canonicalize().map_err(|_| StatusCode::GONE)?;
    if !path.starts_with(&root) {
        tracing::warn!(path = %path.display(), "recording outside the recordings directory refused");
        return Err(StatusCode::FORBIDDEN);
    }
    let mut f = std::fs::File::open(&path).map_err(|_| StatusCode::GONE)?;
    let len = f
        .metadata()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .len();
    let (status, start, end) = match parse_range(range, len) {
        Some(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e.min(s + MAX_CHUNK - 1)),
        Some(None) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let n = if len == 0 { 0 } else { end - start + 1 };
    tracing::debug!(
        status = status.as_u16(),
        start,
        end,
        len,
        "recording range served"
    );
    let mut body = vec![0u8; n as usize];
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_exact(&mut body))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-"), 100), Some(Some((0, 99))));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Some(Some((10, 19))));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Some(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Some(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Some(None));
        assert_eq!(parse_range(Some("bytes=5-1"), 100), Some(None));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), None);
        assert_eq!(parse_range(Some("items=0-1"), 100), None);
        assert_eq!(parse_range(None, 100), None);
    }
}
