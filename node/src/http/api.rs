//! The native API (`/health`, `/api/v1/...`). Handlers parse, call the service (or read the store
//! and the availability table), and map the error.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vidswarm_proto::VideoId;

use super::extract::{FragmentPath, VideoPath};
use super::range::send_file;
use super::{ApiError, AppState, ErrorBody};
use crate::service::{FetchProgress, Playable};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: String,
    pub peer_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    pub peer_id: String,
    /// Full dialable libp2p addresses (`.../p2p/<peer id>`).
    pub addresses: Vec<String>,
    /// The same as `addresses`: every address this node listens on.
    pub listen_addresses: Vec<String>,
    /// The addresses peers are told to reach it at (its listen addresses on interfaces that
    /// are up, or the operator's `--external-address`).
    pub external_addresses: Vec<String>,
    pub version: String,
    /// Videos whose manifest this node holds.
    pub videos: usize,
    /// Seconds since the node started.
    pub uptime_secs: f64,
}

/// Fragment bytes exchanged with peers since the node started.
#[derive(Debug, Serialize, ToSchema)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeerInfo {
    pub peer_id: String,
    /// The remote address of its first connection.
    pub address: String,
    /// `tcp`, `quic` or `other`.
    pub transport: String,
    /// `outbound` when this node dialed it, else `inbound`.
    pub direction: String,
    /// The latest ping round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Fragment bytes received from it and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connected_secs: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FragmentAvailability {
    pub index: u32,
    pub name: String,
    pub size: u64,
    pub blake3: String,
    /// Whether this node holds it.
    pub held: bool,
    /// Peers that announced holding it.
    pub peers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoSummary {
    pub video_id: String,
    pub name: String,
    pub size: u64,
    pub duration: f64,
    /// Kept whatever the disk budget: published here or fetched on request. What auto-fetch or
    /// playback brought is not, and is evicted (least recently used first) when the store is
    /// over `--max-store` or the disk nearly full.
    pub pinned: bool,
    pub fragments: Vec<FragmentAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Videos {
    /// Videos whose manifest this node holds, with per-fragment availability across the swarm.
    pub videos: Vec<VideoSummary>,
    /// Videos peers announced whose manifest this node does not hold (yet).
    pub announced: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FetchStarted {
    pub video_id: String,
    pub status: String,
    /// The fragments asked for; the whole video when absent.
    pub fragments: Option<Vec<u32>>,
}

#[utoipa::path(get, path = "/health", tag = "node",
    responses((status = 200, description = "The node is up", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        peer_id: state.service.peer_id().to_string(),
    })
}

#[utoipa::path(get, path = "/api/v1/info", tag = "node",
    responses(
        (status = 200, description = "Who this node is", body = NodeInfo),
        (status = 503, description = "The swarm is not running", body = ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Result<Json<NodeInfo>, ApiError> {
    let videos = state.service.store().manifests().len();
    let client = state.service.client();
    let text = |addrs: Vec<libp2p::Multiaddr>| addrs.iter().map(|a| a.to_string()).collect();
    // Asked of the swarm each time: addresses change (a container with a new IP).
    let addresses: Vec<String> = text(client.listen_addrs().await?);
    Ok(Json(NodeInfo {
        peer_id: state.service.peer_id().to_string(),
        listen_addresses: addresses.clone(),
        addresses,
        external_addresses: text(client.advertised_addrs().await?),
        version: env!("CARGO_PKG_VERSION").into(),
        videos,
        uptime_secs: client.metrics().started.elapsed().as_secs_f64(),
    }))
}

#[utoipa::path(get, path = "/api/v1/peers", tag = "node",
    responses(
        (status = 200, description = "Connected peers", body = [PeerInfo]),
        (status = 503, description = "The swarm is not running", body = ErrorBody)))]
pub async fn peers(State(state): State<AppState>) -> Result<Json<Vec<PeerInfo>>, ApiError> {
    let mut links = state.service.client().peer_links().await?;
    links.sort_by_key(|l| l.since);
    Ok(Json(
        links
            .into_iter()
            .map(|l| PeerInfo {
                peer_id: l.peer.to_string(),
                address: l.address.to_string(),
                transport: l.transport.into(),
                direction: if l.outbound { "outbound" } else { "inbound" }.into(),
                rtt_ms: l.rtt.map(|d| d.as_secs_f64() * 1000.0),
                bytes_in: l.bytes_in,
                bytes_out: l.bytes_out,
                connected_secs: l.since.elapsed().as_secs_f64(),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/traffic", tag = "node",
    responses((status = 200, description = "Fragment bytes exchanged with peers since the node started (for throughput graphs: poll and difference)", body = Traffic)))]
pub async fn traffic(State(state): State<AppState>) -> Json<Traffic> {
    let (bytes_in, bytes_out) = state.service.client().metrics().transfer_bytes();
    Json(Traffic {
        bytes_in,
        bytes_out,
    })
}

#[utoipa::path(get, path = "/api/v1/videos", tag = "videos",
    responses((status = 200, description = "Videos and who holds which fragment", body = Videos)))]
pub async fn videos(State(state): State<AppState>) -> Result<Json<Videos>, ApiError> {
    let store = state.service.store().clone();
    let availability = state.service.client().availability().clone();
    let result = store
        .call(move |store| {
            let manifests = store.manifests();
            let known: std::collections::HashSet<VideoId> =
                manifests.iter().map(|m| m.video_id).collect();
            let videos = manifests
                .iter()
                .map(|m| {
                    let holders = availability.of_video(&m.video_id);
                    VideoSummary {
                        video_id: m.video_id.to_string(),
                        name: m.source.name.clone(),
                        size: m.total_size(),
                        duration: m.source.duration,
                        pinned: store.is_pinned(&m.video_id),
                        fragments: m
                            .fragments
                            .iter()
                            .map(|f| FragmentAvailability {
                                index: f.index,
                                name: f.name.clone(),
                                size: f.size,
                                blake3: f.blake3.to_string(),
                                held: store.has_fragment(&f.blake3),
                                peers: holders
                                    .get(&f.index)
                                    .map(|ps| ps.iter().map(|p| p.to_string()).collect())
                                    .unwrap_or_default(),
                            })
                            .collect(),
                    }
                })
                .collect();
            let mut announced: Vec<String> = availability
                .videos()
                .into_iter()
                .filter(|v| !known.contains(v))
                .map(|v| v.to_string())
                .collect();
            announced.sort();
            Ok(Videos { videos, announced })
        })
        .await?;
    Ok(Json(result))
}

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/manifest", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The manifest (see docs/architecture.md); one held by a peer that announced the video is asked of it first, and kept", content_type = "application/json", body = Object),
        (status = 400, description = "Not a video id", body = ErrorBody),
        (status = 404, description = "A video neither held here nor announced by a peer", body = ErrorBody),
        (status = 503, description = "Announced, but no peer gave the manifest in time", body = ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
) -> Result<Response, ApiError> {
    // One a peer announced is asked of the swarm (what a page about the video needs first).
    let manifest = state.service.manifest_for_playback(video).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        manifest.to_json_pretty(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/fragments/{index}", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$"),
           ("index" = u32, Path, description = "Fragment index", maximum = 999),
           ("Range" = Option<String>, Header, description = "One byte range: bytes=a-b, bytes=a- or bytes=-n", pattern = "^bytes=([0-9]{1,19}-[0-9]{0,19}|-[0-9]{1,19})$")),
    responses(
        (status = 200, description = "The fragment's bytes; one not held yet is fetched from the swarm first (the video's fetch puts it first)", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "The requested range of the fragment", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Not a video id, or a malformed Range", body = ErrorBody),
        (status = 404, description = "A video neither held here nor announced by a peer, or no such fragment", body = ErrorBody),
        (status = 416, description = "The range starts past the end", body = ErrorBody),
        (status = 503, description = "The fragment could not be fetched in time", body = ErrorBody)))]
pub async fn fragment(
    State(state): State<AppState>,
    FragmentPath { video, index }: FragmentPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Not held yet: fetched first (the playback window after it too). A whole answer is sent
    // as its chunks are verified; a Range waits for the whole fragment.
    if headers.contains_key(header::RANGE) {
        let path = state.service.fragment_for_playback(video, index).await?;
        return send_file(&path, &headers).await;
    }
    match state.service.fragment_as_it_arrives(video, index).await? {
        Playable::Held(path) => send_file(&path, &headers).await,
        Playable::Arriving(partial) => Ok(super::playback::as_it_arrives(partial)),
    }
}

/// A fetch request lists at most 1000 indices: 64 KiB is ample.
pub const MAX_FETCH_REQUEST: usize = 64 << 10;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FetchRequest {
    /// Only these fragment indices; the whole video when absent.
    pub fragments: Option<Vec<u32>>,
}

#[utoipa::path(post, path = "/api/v1/videos/{video_id}/fetch", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    request_body(content = Option<FetchRequest>, content_type = "application/json",
        description = "Optional: which fragments; the whole video without a body"),
    responses(
        (status = 202, description = "Fetch started in the background; follow it at GET /api/v1/videos/{video_id}/fetch or /events", body = FetchStarted),
        (status = 400, description = "Not a video id, or a body that is not a FetchRequest", body = ErrorBody),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 409, description = "A fetch of this video is running already", body = ErrorBody),
        (status = 413, description = "A body larger than a fetch request may be", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn start_fetch(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<FetchStarted>), ApiError> {
    let body = body?;
    let request: FetchRequest = if body.iter().all(u8::is_ascii_whitespace) {
        FetchRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("not a FetchRequest: {e}")))?
    };
    if let Some(bad) = request
        .fragments
        .iter()
        .flatten()
        .find(|&&i| i >= vidswarm_proto::MAX_FRAGMENTS)
    {
        return Err(ApiError::bad_request(format!(
            "fragment index {bad} is past the most a video has"
        )));
    }
    state
        .service
        .start_fetch(video, request.fragments.clone())?;
    Ok((
        StatusCode::ACCEPTED,
        Json(FetchStarted {
            video_id: video.to_string(),
            status: "started".into(),
            fragments: request.fragments,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/fetch", tag = "videos",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The latest fetch of this video and how far it got", body = FetchProgress),
        (status = 400, description = "Not a video id", body = ErrorBody),
        (status = 404, description = "No fetch of this video since the node started", body = ErrorBody)))]
pub async fn fetch_status(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
) -> Result<Json<FetchProgress>, ApiError> {
    state
        .service
        .fetches()
        .get(&video)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no fetch of {video} since this node started")))
}

#[utoipa::path(get, path = "/api/v1/fetches", tag = "videos",
    responses((status = 200, description = "Every fetch since the node started (the latest per video), asked for or automatic", body = [FetchProgress])))]
pub async fn fetches(State(state): State<AppState>) -> Json<Vec<FetchProgress>> {
    Json(state.service.fetches().all())
}

#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text format: libp2p's metrics (libp2p_*) and the node's (vidswarm_*)", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.service.client().metrics().encode(),
    )
        .into_response()
}
