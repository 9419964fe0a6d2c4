//! Uploading a whole split into a node (what `vidswarm publish` does): the manifest first, then
//! each fragment, verified against it on the way in. Every fragment stored is provided and
//! announced, so peers can start fetching before the last one is in.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use vidswarm_proto::Manifest;

use super::extract::FragmentPath;
use super::incoming::Incoming;
use super::{ApiError, AppState, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct ManifestStored {
    pub video_id: String,
    /// Whether the node did not hold this manifest before.
    pub new: bool,
    /// Indices of the fragments the node still lacks: upload these next.
    pub missing: Vec<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FragmentStored {
    pub video_id: String,
    pub index: u32,
    pub blake3: String,
    pub size: u64,
    /// Whether the node did not hold this fragment before.
    pub new: bool,
}

#[utoipa::path(post, path = "/api/v1/videos", tag = "videos",
    request_body(content = Object, content_type = "application/json",
        description = "A manifest, as `vidswarm split` writes it (see docs/architecture.md)"),
    responses(
        (status = 201, description = "Stored; upload the missing fragments next", body = ManifestStored),
        (status = 200, description = "Held already", body = ManifestStored),
        (status = 400, description = "Not a valid manifest", body = ErrorBody),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 413, description = "Larger than a manifest may be", body = ErrorBody),
        (status = 503, description = "Stored, but the swarm is not running to announce it", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn put_manifest(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<ManifestStored>), ApiError> {
    let body = body?;
    let manifest = Manifest::from_json(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let video_id = manifest.video_id.to_string();
    let put = state.service.put_manifest(manifest).await?;
    let new = put.new;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ManifestStored {
            video_id,
            new,
            missing: put.missing,
        }),
    ))
}

#[utoipa::path(put, path = "/api/v1/videos/{video_id}/fragments/{index}", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$"),
           ("index" = u32, Path, description = "Fragment index", maximum = 999)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The fragment's bytes; they must hash as the manifest says"),
    responses(
        (status = 201, description = "Verified and stored", body = FragmentStored),
        (status = 200, description = "Held already (the body is not read)", body = FragmentStored),
        (status = 400, description = "Not a video id, or the bytes do not match the manifest", body = ErrorBody),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 404, description = "No such manifest or fragment here (upload the manifest first)", body = ErrorBody),
        (status = 413, description = "Longer than the fragment, or than the upload limit", body = ErrorBody),
        (status = 503, description = "Too many uploads in progress, or stored but the swarm is not running to announce it", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn put_fragment(
    State(state): State<AppState>,
    FragmentPath { video, index }: FragmentPath,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FragmentStored>), ApiError> {
    let (manifest, info) = state.service.upload_target(video, index)?;
    let reply = |new| FragmentStored {
        video_id: video.to_string(),
        index,
        blake3: info.blake3.to_string(),
        size: info.size,
        new,
    };
    // HTTP/1.1: no Content-Length and no Transfer-Encoding means no body at all.
    let empty = match content_length(&headers) {
        Some(len) => len == 0,
        None => !headers.contains_key(header::TRANSFER_ENCODING),
    };
    if empty {
        return Err(ApiError::bad_request(
            "the body must carry the fragment's bytes",
        ));
    }
    if state.service.store().has_fragment(&info.blake3) {
        return Ok((StatusCode::OK, Json(reply(false))));
    }
    if info.size > state.config.max_upload {
        return Err(ApiError::too_large(format!(
            "fragment {index} is {} bytes; this node takes uploads of at most {}",
            info.size, state.config.max_upload
        )));
    }
    if let Some(len) = content_length(&headers) {
        if len > info.size {
            return Err(ApiError::too_large(format!(
                "the body is {len} bytes; fragment {index} is {}",
                info.size
            )));
        }
    }
    let _permit = state.upload_permit()?;
    let incoming = Incoming::start(
        state.service.store(),
        info.size,
        Some(info.clone()),
        manifest.chunk_size,
    );
    let verified = incoming
        .feed(body.into_data_stream())
        .await?
        .finish()
        .await?;
    state.service.add_fragment(&manifest, verified).await?;
    Ok((StatusCode::CREATED, Json(reply(true))))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
