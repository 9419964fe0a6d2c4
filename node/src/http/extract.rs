//! Typed path parameters. They are parsed here rather than by axum's `Path<T>`, so a bad one is
//! rejected in the API's error shape.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use vidswarm_proto::VideoId;

use super::ApiError;

/// `{video_id}`: 64 lowercase hex digits.
pub struct VideoPath(pub VideoId);

/// `{video_id}/fragments/{index}`.
pub struct FragmentPath {
    pub video: VideoId,
    pub index: u32,
}

/// `{video_id}/hls/{index}.m4s`: a playlist's media segment.
pub struct SegmentPath {
    pub video: VideoId,
    pub index: u32,
}

fn parse_video(id: &str) -> Result<VideoId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("a video id is 64 lowercase hex digits"))
}

fn parse_index(index: &str) -> Result<u32, ApiError> {
    index
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{index:?} is not a fragment index")))
}

async fn raw<T, S>(parts: &mut Parts, state: &S) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    Path::<T>::from_request_parts(parts, state)
        .await
        .map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

impl<S: Send + Sync> FromRequestParts<S> for VideoPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let id: String = raw(parts, state).await?;
        parse_video(&id).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SegmentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (id, segment): (String, String) = raw(parts, state).await?;
        let index = segment
            .strip_suffix(".m4s")
            .ok_or_else(|| ApiError::bad_request("a segment is <fragment index>.m4s"))?;
        Ok(Self {
            video: parse_video(&id)?,
            index: parse_index(index)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FragmentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (id, index): (String, String) = raw(parts, state).await?;
        Ok(Self {
            video: parse_video(&id)?,
            index: parse_index(&index)?,
        })
    }
}
