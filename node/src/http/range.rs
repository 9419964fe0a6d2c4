//! HTTP Range for fragment downloads: one `bytes=` range per request (`a-b`, `a-`, `-n`), which is
//! what players and download tools send. A malformed header is a 400, a range that starts past the
//! end is a 416; both with the usual JSON error.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ApiError;

/// Streams a stored file, or the one range `headers` ask for (never read whole into memory).
pub async fn send_file(path: &std::path::Path, headers: &HeaderMap) -> Result<Response, ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("cannot read a stored fragment: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let len = file.metadata().await.map_err(io)?.len();
    let (status, start, count) = match requested(headers, len)? {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, len),
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, count.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
        ],
        body,
    )
        .into_response();
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{len}", start + count - 1);
        if let Ok(v) = value.parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// The inclusive byte range to send, `None` for the whole file.
pub fn requested(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(axum::http::header::RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "Range must be one range like bytes=0-1023, bytes=1024- or bytes=-500",
        )
    };
    let spec = value.to_str().map_err(|_| bad())?.trim();
    let spec = spec.strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(ApiError::bad_request(
            "only one range per request is supported",
        ));
    }
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (false, false) => {
            let (start, end) = (number(first)?, number(last)?);
            if start > end {
                return Err(bad());
            }
            (start, end)
        }
        (false, true) => (number(first)?, u64::MAX),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err(not_satisfiable(len));
            }
            (len.saturating_sub(suffix), u64::MAX)
        }
        (true, true) => return Err(bad()),
    };
    if start >= len {
        return Err(not_satisfiable(len));
    }
    Ok(Some((start, end.min(len - 1))))
}

fn not_satisfiable(len: u64) -> ApiError {
    ApiError {
        status: StatusCode::RANGE_NOT_SATISFIABLE,
        message: format!("the range lies outside the fragment's {len} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, len: u64) -> Result<Option<(u64, u64)>, StatusCode> {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::RANGE, v.parse().unwrap());
        requested(&h, len).map_err(|e| e.status)
    }

    #[test]
    fn single_ranges_in_all_three_forms() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(
            requested(&HeaderMap::new(), 100).map_err(|e| e.status),
            Ok(None)
        );
    }

    #[test]
    fn malformed_is_400_and_outside_is_416() {
        for bad in [
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "items=0-1",
            "bytes=5-2",
            "bytes=0-1,3-4",
            "bytes=1-2-3",
        ] {
            assert_eq!(range(bad, 100), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
        assert_eq!(
            range("bytes=100-", 100),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(
            range("bytes=-0", 100),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
    }
}
