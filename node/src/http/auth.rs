//! The optional bearer token on routes that change state (reads stay open).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

pub(super) async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared as BLAKE3 hashes: equal-length digests, compared in constant time.
    match given {
        Some(given) if blake3::hash(given.as_bytes()) == blake3::hash(token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = ApiError::unauthorized(
                "this route changes state and wants `Authorization: Bearer <token>` (the node's --api-token)",
            )
            .into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}
