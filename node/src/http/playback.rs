//! Playing a video from this node while it arrives: an HLS playlist for desktop players (ffplay,
//! mpv, VLC), its init segment and media segments. The browser player (`/ui/play/{id}`) takes the
//! fragments themselves (`GET /api/v1/videos/{id}/fragments/{index}`) through Media Source
//! Extensions; both fetch what is not held yet, the asked fragment first (docs/playback.md).
//!
//! Fragments are fragmented MP4 cut with their own timestamps from zero (each plays on its own).
//! A playlist needs one timeline: segment `k` is fragment `k` without its init segment, each
//! movie fragment's decode time (`tfdt`) moved by the fragment's start. Everything served is
//! read from verified, stored fragments.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use vidswarm_proto::{mp4, Manifest};

use super::extract::{SegmentPath, VideoPath};
use super::{ApiError, AppState};

/// The longest init segment or movie fragment header (`moof`) read whole; what is past it is an
/// error, not an allocation. A moof lists one keyframe interval's samples: a few KiB.
pub const MAX_BOX_READ: usize = 16 << 20;

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/playlist.m3u8", tag = "playback",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "An HLS playlist (fragmented MP4 segments) for ffplay, mpv, VLC; its segments are fetched from the swarm as they are asked for", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, description = "Not a video id", body = super::ErrorBody),
        (status = 404, description = "No such video here or among the peers", body = super::ErrorBody),
        (status = 409, description = "The video's fragments are not fragmented MP4 (split before vidswarm made them so, or a loose upload)", body = super::ErrorBody),
        (status = 503, description = "The manifest could not be fetched", body = super::ErrorBody)))]
pub async fn playlist(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
) -> Result<Response, ApiError> {
    let manifest = state.service.manifest_for_playback(video).await?;
    playable(&manifest)?;
    let target = manifest
        .fragments
        .iter()
        .map(|f| f.duration.ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut m3u8 = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"hls/init.mp4\"\n"
    );
    for f in &manifest.fragments {
        let _ = write!(m3u8, "#EXTINF:{:.6},\nhls/{}.m4s\n", f.duration, f.index);
    }
    m3u8.push_str("#EXT-X-ENDLIST\n");
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
        m3u8,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/hls/init.mp4", tag = "playback",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The init segment (ftyp and moov) of the playlist", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Not a video id", body = super::ErrorBody),
        (status = 404, description = "No such video", body = super::ErrorBody),
        (status = 409, description = "Not fragmented MP4", body = super::ErrorBody),
        (status = 503, description = "Fragment 0 could not be fetched", body = super::ErrorBody)))]
pub async fn init_segment(
    State(state): State<AppState>,
    VideoPath(video): VideoPath,
) -> Result<Response, ApiError> {
    let manifest = state.service.manifest_for_playback(video).await?;
    playable(&manifest)?;
    let path = state.service.fragment_for_playback(video, 0).await?;
    let init = blocking(move || read_init(&path).map(|(init, _)| init)).await?;
    Ok(([(header::CONTENT_TYPE, "video/mp4")], init).into_response())
}

#[utoipa::path(get, path = "/api/v1/videos/{video_id}/hls/{segment}", tag = "playback",
    params(
        ("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$"),
        ("segment" = String, Path, description = "`<fragment index>.m4s`", pattern = "^[0-9]+\\.m4s$")),
    responses(
        (status = 200, description = "Fragment `index` as a media segment of the playlist's timeline", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Not a video id or a segment name", body = super::ErrorBody),
        (status = 404, description = "No such video or fragment", body = super::ErrorBody),
        (status = 409, description = "Not fragmented MP4", body = super::ErrorBody),
        (status = 503, description = "The fragment could not be fetched", body = super::ErrorBody)))]
pub async fn media_segment(
    State(state): State<AppState>,
    SegmentPath { video, index }: SegmentPath,
) -> Result<Response, ApiError> {
    let manifest = state.service.manifest_for_playback(video).await?;
    playable(&manifest)?;
    let Some(fragment) = manifest.fragment(index) else {
        return Err(ApiError::not_found(format!(
            "video {video} has no fragment {index}"
        )));
    };
    let start = fragment.start;
    let path = state.service.fragment_for_playback(video, index).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // The segment's first bytes (a shifted moof) are made before answering, so a fragment that
    // is not fragmented MP4 is an error status, not a broken body.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || stream_segment(&path, start, tx, first_tx));
    match first_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal("the segment reader stopped".to_owned())),
    }
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "video/mp4")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Refuses a video whose fragments a playlist (or Media Source Extensions) cannot take.
fn playable(manifest: &Manifest) -> Result<(), ApiError> {
    if manifest.codecs.is_none() {
        return Err(ApiError::conflict(format!(
            "video {} was split before vidswarm made fragments fragmented MP4 (or is a loose \
             upload): publish it again with this version to play it here",
            manifest.video_id
        )));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a reader failed: {e}")))?
}

fn io_error(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("cannot read {}: {e}", path.display()))
}

/// The init segment of the fragment at `path`, and the file positioned after it. Reads the
/// top-level boxes up to the first `moof` (a few KiB), not the fragment.
fn read_init(path: &PathBuf) -> Result<(Vec<u8>, std::fs::File), ApiError> {
    let not_fmp4 =
        || ApiError::conflict("the fragment is not fragmented MP4 (no init segment)".to_owned());
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut head = Vec::new();
    loop {
        let mut header = [0u8; 8];
        if !read_full(&mut file, &mut header).map_err(|e| io_error(path, e))? {
            return Err(not_fmp4()); // the end of the file, and no moof
        }
        if &header[4..8] == b"moof" {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Current(-8))
                .map_err(|e| io_error(path, e))?;
            break;
        }
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size < 8 || head.len() + size > MAX_BOX_READ {
            return Err(not_fmp4());
        }
        let at = head.len();
        head.extend_from_slice(&header);
        head.resize(at + size, 0);
        file.read_exact(&mut head[at + 8..])
            .map_err(|e| io_error(path, e))?;
    }
    // ftyp first, a moov before the first moof: the checks init_segment_len makes.
    let mut probe = head.clone();
    probe.extend_from_slice(&[0, 0, 0, 8, b'm', b'o', b'o', b'f']);
    if mp4::init_segment_len(&probe) != Some(head.len()) {
        return Err(not_fmp4());
    }
    Ok((head, file))
}

/// Sends the fragment at `path` after its init segment, each `moof` shifted by `start` seconds,
/// each `mdat` as it is. `first` hears whether the segment could be started at all.
fn stream_segment(
    path: &PathBuf,
    start: f64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    first: tokio::sync::oneshot::Sender<Result<(), ApiError>>,
) {
    let (init, mut file) = match read_init(path) {
        Ok(x) => x,
        Err(e) => {
            let _ = first.send(Err(e));
            return;
        }
    };
    let shift: HashMap<u32, u64> = mp4::track_timescales(&init)
        .into_iter()
        .map(|(track, scale)| (track, (start * f64::from(scale)).round() as u64))
        .collect();
    let mut first = Some(first);
    let mut send = |item: Result<Bytes, std::io::Error>| {
        if let Some(f) = first.take() {
            let _ = f.send(Ok(()));
        }
        tx.blocking_send(item).is_ok()
    };
    loop {
        let mut header = [0u8; 8];
        match read_full(&mut file, &mut header) {
            Ok(false) => return, // the end of the file, between boxes
            Ok(true) => {}
            Err(e) => {
                send(Err(e));
                return;
            }
        }
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        if size < 8 {
            // 64-bit or to-the-end sizes: ffmpeg writes neither for a fragment's boxes.
            send(Err(std::io::Error::other(
                "an MP4 box with an unsupported size",
            )));
            return;
        }
        if &kind == b"moof" {
            if size > MAX_BOX_READ {
                send(Err(std::io::Error::other("a moof box too large to read")));
                return;
            }
            let mut moof = header.to_vec();
            moof.resize(size, 0);
            if let Err(e) = file.read_exact(&mut moof[8..]) {
                send(Err(e));
                return;
            }
            if let Err(e) = mp4::shift_decode_times(&mut moof, &shift) {
                send(Err(std::io::Error::other(e)));
                return;
            }
            if !send(Ok(Bytes::from(moof))) {
                return;
            }
        } else {
            // mdat (and anything else, such as mfra) go out as they are, in pieces.
            let keep = &kind == b"mdat";
            if keep && !send(Ok(Bytes::copy_from_slice(&header))) {
                return;
            }
            let mut left = size - 8;
            let mut buf = vec![0u8; 64 << 10];
            while left > 0 {
                let n = left.min(buf.len());
                if let Err(e) = file.read_exact(&mut buf[..n]) {
                    send(Err(e));
                    return;
                }
                if keep && !send(Ok(Bytes::copy_from_slice(&buf[..n]))) {
                    return;
                }
                left -= n;
            }
        }
    }
}

/// Fills `buf`; `false` at a clean end of file before its first byte.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(true)
}

/// What a browser player reports about its viewer's experience.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PlaybackReport {
    /// The first frame was shown `millis` after the play click.
    FirstFrame { millis: u64 },
    /// Playback stopped to wait for data; `late` when the fragment it reached had not arrived.
    Stall {
        #[serde(default)]
        late: bool,
    },
}

/// A report is a few dozen bytes.
pub const MAX_PLAYBACK_REPORT: usize = 1024;

#[utoipa::path(post, path = "/api/v1/videos/{video_id}/playback", tag = "playback",
    params(("video_id" = String, Path, description = "64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    request_body(content = PlaybackReport, content_type = "application/json"),
    responses(
        (status = 204, description = "Counted in /metrics (vidswarm_playback_*)"),
        (status = 400, description = "Not a video id or not a report", body = super::ErrorBody),
        (status = 413, description = "A body larger than a report may be", body = super::ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    VideoPath(_video): VideoPath,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body?;
    let report: PlaybackReport = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a playback report: {e}")))?;
    let metrics = state.service.client().metrics();
    match report {
        PlaybackReport::FirstFrame { millis } => metrics
            .playback_first_frame
            .observe(millis.min(3_600_000) as f64 / 1000.0),
        PlaybackReport::Stall { late } => {
            metrics.playback_stalls.inc();
            if late {
                metrics.playback_late.inc();
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A fragment's bytes, each chunk sent once it is verified (`store/partial.rs`). If its
/// download stops before the end, the body ends with an error (the client sees a cut answer,
/// never unverified bytes).
pub fn as_it_arrives(partial: std::sync::Arc<crate::store::partial::Partial>) -> Response {
    use crate::store::partial::End;
    let size = partial.size();
    let state = partial.subscribe();
    let chunks = futures::stream::unfold((0u32, partial, state), |(k, p, mut state)| async move {
        if k >= p.chunks() {
            return None;
        }
        loop {
            let (ready, end) = {
                let s = state.borrow_and_update();
                (s.verified.get(k as usize).copied().unwrap_or(false), s.end)
            };
            match end {
                _ if ready => break,
                Some(End::Committed) => break,
                Some(End::Abandoned) => {
                    let e = std::io::Error::other("the download of this fragment stopped");
                    return Some((Err(e), (u32::MAX, p, state)));
                }
                None => {
                    if state.changed().await.is_err() {
                        let e = std::io::Error::other("the download of this fragment went away");
                        return Some((Err(e), (u32::MAX, p, state)));
                    }
                }
            }
        }
        let reader = p.clone();
        let data = tokio::task::spawn_blocking(move || reader.read_chunk(k))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        Some((data.map(Bytes::from), (k + 1, p, state)))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}
