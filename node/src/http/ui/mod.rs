//! The web UI: plain HTML, CSS and JavaScript in `assets/`, built into the binary (nothing is
//! fetched at build or run time). Every page has its own URL; they use only the documented API
//! (`/api/v1/*`, `/events`, `/metrics`).
//!
//! | URL | page |
//! |---|---|
//! | `/` | this node and its videos |
//! | `/ui/swarm` | peers, throughput, the live event log |
//! | `/ui/videos` | every video, announced ones, uploading a split |
//! | `/ui/videos/{id}` | one video's fragment x peer grid, fetch buttons |
//! | `/ui/play/{id}` | the player (Media Source Extensions, `assets/player.js`) |

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::extract::VideoPath;
use super::AppState;

/// Each asset: its name under `/ui/assets/`, its type, its bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", "text/css", include_str!("assets/style.css")),
    ("common.js", JS, include_str!("assets/common.js")),
    ("swarm.js", JS, include_str!("assets/swarm.js")),
    ("videos.js", JS, include_str!("assets/videos.js")),
    ("video.js", JS, include_str!("assets/video.js")),
    ("player.js", JS, include_str!("assets/player.js")),
];

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

const INDEX: &str = include_str!("assets/index.html");
const SWARM: &str = include_str!("assets/swarm.html");
const VIDEOS: &str = include_str!("assets/videos.html");
const VIDEO: &str = include_str!("assets/video.html");
const PLAYER: &str = include_str!("assets/player.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(StatusCode::OK, INDEX) }))
        .route("/ui/swarm", get(|| async { page(StatusCode::OK, SWARM) }))
        .route("/ui/videos", get(|| async { page(StatusCode::OK, VIDEOS) }))
        .route("/ui/videos/{video_id}", get(video_page))
        .route("/ui/play/{video_id}", get(player_page))
        .route("/ui/assets/{name}", get(asset))
}

fn page(status: StatusCode, html: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// A page about one video: 404 (with the page, which says so) for a video this node neither
/// holds nor heard of.
fn about(state: &AppState, video: vidswarm_proto::VideoId, html: &'static str) -> Response {
    let known = state.service.knows(&video);
    page(
        if known {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        html,
    )
}

async fn video_page(State(state): State<AppState>, VideoPath(video): VideoPath) -> Response {
    about(&state, video, VIDEO)
}

async fn player_page(State(state): State<AppState>, VideoPath(video): VideoPath) -> Response {
    about(&state, video, PLAYER)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => super::ApiError::not_found(format!("no asset {name:?}")).into_response(),
    }
}
