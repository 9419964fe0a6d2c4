//! The HTTP sidecar: a thin axum API next to the swarm, documented with utoipa and browsable in
//! Swagger UI. It only reads the store and talks to the swarm through the node's `Client`.
//!
//! - `api.rs`: `/health` and the native API under `/api/v1`.
//! - `events.rs`: `/events`, the node's event stream as Server-Sent Events.
//! - `range.rs`: HTTP Range for fragment downloads.
//! - `error.rs`: [`ApiError`], the one JSON error shape and its status codes.
//!
//! The spec is served at `/api-docs/openapi.json`, Swagger UI at `/swagger-ui/` (its assets are
//! built into the binary: nothing is fetched at build or run time).

mod api;
mod error;
mod events;
mod range;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use libp2p::Multiaddr;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ErrorBody};

use crate::fetch::FetchOptions;
use crate::net::Client;
use crate::store::Store;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub client: Client,
    pub store: Store,
    pub listen_addrs: Arc<Vec<Multiaddr>>,
    pub fetch: FetchOptions,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "vidswarm node API", description = "A vidswarm node's HTTP sidecar: its videos, fragments, peers and fetches."),
    paths(
        api::health,
        events::events,
        api::info,
        api::peers,
        api::videos,
        api::manifest,
        api::fragment,
        api::start_fetch,
    ),
    components(schemas(
        ErrorBody,
        api::Health,
        api::NodeInfo,
        api::PeerInfo,
        api::Videos,
        api::VideoSummary,
        api::FragmentAvailability,
        api::FetchStarted,
    )),
    tags((name = "node", description = "This node"), (name = "videos", description = "Videos and fragments"))
)]
pub struct ApiDoc;

/// The whole router; tests call it without a socket too.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(api::health))
        .route("/events", get(events::events))
        .route("/api/v1/info", get(api::info))
        .route("/api/v1/peers", get(api::peers))
        .route("/api/v1/videos", get(api::videos))
        .route("/api/v1/videos/{video_id}/manifest", get(api::manifest))
        .route(
            "/api/v1/videos/{video_id}/fragments/{index}",
            get(api::fragment),
        )
        .route("/api/v1/videos/{video_id}/fetch", post(api::start_fetch))
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
