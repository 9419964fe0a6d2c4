//! `DELETE /api/v1/videos/{video_id}`: the operator takes a video off this node.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::VideoPath;
use super::{ApiError, AppState, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub video_id: String,
    /// Fragments removed (those another video held here lists stay).
    pub fragments_removed: usize,
    /// Bytes given back to the disk.
    pub bytes_freed: u64,
}

#[utoipa::path(delete, path = "/api/v1/videos/{video_id}", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "Removed: the pin, the manifest and the fragments no other video here lists; peers are told this node no longer holds it", body = Deleted),
        (status = 400, description = "Not a video id", body = ErrorBody),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 404, description = "Neither held nor pinned here", body = ErrorBody),
        (status = 409, description = "A fetch of this video is running", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn delete_video(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
) -> Result<Json<Deleted>, ApiError> {
    let removed = state.service.delete_video(video).await?;
    Ok(Json(Deleted {
        video_id: video.to_string(),
        fragments_removed: removed.fragments.len(),
        bytes_freed: removed.bytes,
    }))
}
