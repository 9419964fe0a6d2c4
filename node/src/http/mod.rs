//! The HTTP sidecar: a thin axum API next to the swarm, documented with utoipa and browsable in
//! Swagger UI. Handlers parse the request, call the [`Service`], and map its error's kind to a
//! status; reads go to the store and the availability table directly.
//!
//! - `api.rs`: `/health` and the native API under `/api/v1`.
//! - `upload.rs`: uploading a whole split (manifest, then fragments).
//! - `legacy.rs`: the original system's routes.
//! - `extract.rs`: typed path parameters that reject in the API's error shape.
//! - `incoming.rs`: request bodies streamed into the store's `tmp/`, hashed on the way.
//! - `events.rs`: `/events`, the node's event stream as Server-Sent Events.
//! - `range.rs`: HTTP Range for fragment downloads.
//! - `playback.rs`: the HLS playlist and its segments, viewer reports.
//! - `ui/`: the web UI, its pages and assets built into the binary.
//! - `error.rs`: [`ApiError`], the one JSON error shape and its status codes.
//!
//! The spec is served at `/api-docs/openapi.json`, Swagger UI at `/swagger-ui/` (its assets are
//! built into the binary: nothing is fetched at build or run time).

mod api;
mod auth;
mod conn;
mod delete;
mod error;
mod events;
mod extract;
mod guard;
mod incoming;
mod legacy;
mod playback;
pub(crate) mod range;
mod server;
mod stall;
mod ui;
mod upload;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ErrorBody};
pub use guard::WebPolicy;
pub use server::{
    ServerLimits, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_CLIENT, DEFAULT_SEND_TIMEOUT,
};

use crate::service::Service;

/// The sidecar's own settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest fragment an upload may carry, in bytes.
    pub max_upload: u64,
    /// When set, every route that changes state wants `Authorization: Bearer <token>`.
    pub api_token: Option<Arc<str>>,
    /// Fragment uploads streaming in at once; more are answered 503 (each may fill `max_upload`
    /// bytes of the data dir's `tmp/` before it is checked).
    pub max_uploads: usize,
    /// Connections and timeouts.
    pub limits: ServerLimits,
    /// Which hosts the API answers for, and which other sites' pages may use it.
    pub web: WebPolicy,
}

/// 1 GiB: a fragment of a long 4K video, far above the 10 % of a typical upload.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;

pub const DEFAULT_MAX_UPLOADS: usize = 8;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_upload: DEFAULT_MAX_UPLOAD,
            api_token: None,
            max_uploads: DEFAULT_MAX_UPLOADS,
            limits: ServerLimits::default(),
            web: WebPolicy::default(),
        }
    }
}

/// What every handler may use: the service and the sidecar's own settings. Built from a
/// `Service` over any `Client`, so router tests can run on one with no swarm.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub config: HttpConfig,
    /// Permits for uploads in progress (`config.max_uploads` of them).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(service: Service, config: HttpConfig) -> Self {
        Self {
            service,
            uploads: Arc::new(tokio::sync::Semaphore::new(config.max_uploads)),
            config,
        }
    }

    /// A permit for one upload, or 503 when `max_uploads` are streaming in already.
    pub(crate) fn upload_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable(format!(
                "{} uploads are in progress, the most this node takes at once; retry shortly",
                self.config.max_uploads
            ))
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "vidswarm node API", description = "A vidswarm node's HTTP sidecar: its videos, fragments, peers and fetches. Routes that change state want `Authorization: Bearer <token>` when the node was started with --api-token."),
    paths(
        api::health,
        events::events,
        api::metrics,
        api::info,
        api::peers,
        api::traffic,
        api::videos,
        upload::put_manifest,
        api::manifest,
        api::fragment,
        upload::put_fragment,
        api::start_fetch,
        delete::delete_video,
        api::fetch_status,
        api::fetches,
        playback::playlist,
        playback::init_segment,
        playback::media_segment,
        playback::report,
        legacy::upload_fragment,
        legacy::get_fragment,
        legacy::list_fragments,
        legacy::fragments,
        legacy::send_all_fragments,
    ),
    components(schemas(
        ErrorBody,
        api::Health,
        api::NodeInfo,
        api::PeerInfo,
        api::Traffic,
        playback::PlaybackReport,
        api::Videos,
        api::VideoSummary,
        api::FragmentAvailability,
        api::FetchRequest,
        api::FetchStarted,
        delete::Deleted,
        crate::service::FetchProgress,
        crate::service::FetchState,
        upload::ManifestStored,
        upload::FragmentStored,
        legacy::Uploaded,
        legacy::UploadForm,
        legacy::FragmentNames,
        legacy::CollectionFragment,
        legacy::CollectionFragments,
        legacy::SentReport,
        legacy::SendFailure,
    )),
    modifiers(&BearerScheme, &ForbiddenEverywhere),
    tags(
        (name = "node", description = "This node"),
        (name = "videos", description = "Videos and fragments"),
        (name = "playback", description = "Playing a video while it arrives: an HLS playlist for desktop players, viewer reports from the web player"),
        (name = "original routes", description = "The student system's routes, for its clients; loose fragments live in the default collection"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route may answer 403: the host and cross-site checks (`guard.rs`) run before any handler.
struct ForbiddenEverywhere;

impl Modify for ForbiddenEverywhere {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description("A host name this node does not answer for (--allow-host), or a write from another site's page (--cors-origin)")
                            .content(
                                "application/json",
                                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                            )
                            .into()
                    });
            }
        }
    }
}

/// The whole router; `tests.rs` calls it without a socket.
pub fn app(state: AppState) -> Router {
    let web = Arc::new(state.config.web.clone());
    // Routes that change state: behind the bearer token when one is set.
    let writes = Router::new()
        // Bodies read whole get their own, small limits (the router's is for fragment uploads).
        .route(
            "/api/v1/videos",
            post(upload::put_manifest)
                .layer(DefaultBodyLimit::max(vidswarm_proto::MAX_MANIFEST_BYTES)),
        )
        .route(
            "/api/v1/videos/{video_id}/fragments/{index}",
            put(upload::put_fragment),
        )
        .route(
            "/api/v1/videos/{video_id}/fetch",
            post(api::start_fetch).layer(DefaultBodyLimit::max(api::MAX_FETCH_REQUEST)),
        )
        .route("/api/v1/videos/{video_id}", delete(delete::delete_video))
        .route("/upload_fragment", post(legacy::upload_fragment))
        .route("/send_all_fragments", get(legacy::send_all_fragments))
        .route_layer(axum::middleware::from_fn_with_state(
            state.config.api_token.clone(),
            auth::require_token,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            web.clone(),
            guard::refuse_cross_site,
        ))
        .route_layer(axum::middleware::from_fn(conn::close_if_body_unread));
    let router = Router::new()
        .route("/health", get(api::health))
        .route("/events", get(events::events))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/info", get(api::info))
        .route("/api/v1/peers", get(api::peers))
        .route("/api/v1/traffic", get(api::traffic))
        .route(
            "/api/v1/videos/{video_id}/playlist.m3u8",
            get(playback::playlist),
        )
        .route(
            "/api/v1/videos/{video_id}/hls/init.mp4",
            get(playback::init_segment),
        )
        .route(
            "/api/v1/videos/{video_id}/hls/{segment}",
            get(playback::media_segment),
        )
        // Open like the reads: counters only, and a page with no token must be able to report.
        .route(
            "/api/v1/videos/{video_id}/playback",
            post(playback::report).layer(DefaultBodyLimit::max(playback::MAX_PLAYBACK_REPORT)),
        )
        .route("/api/v1/videos", get(api::videos))
        .route("/api/v1/videos/{video_id}/manifest", get(api::manifest))
        .route(
            "/api/v1/videos/{video_id}/fragments/{index}",
            get(api::fragment),
        )
        .route("/api/v1/videos/{video_id}/fetch", get(api::fetch_status))
        .route("/api/v1/fetches", get(api::fetches))
        .route("/get_fragment/{name}", get(legacy::get_fragment))
        .route("/list_fragments", get(legacy::list_fragments))
        .route("/fragments", get(legacy::fragments))
        .merge(writes)
        .merge(ui::routes())
        // Manifests and multipart uploads are read through axum's limit; raw fragment bodies
        // (PUT) are limited by the fragment's own size as they stream.
        .layer(DefaultBodyLimit::max(
            usize::try_from(state.config.max_upload.saturating_add(64 << 10)).unwrap_or(usize::MAX),
        ))
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", ApiDoc::openapi()));
    let router = match web.cors() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(web, guard::check_host))
        .with_state(state)
}
/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.limits.clone();
    server::serve_router(listener, app(state), limits, shutdown).await
}

#[cfg(test)]
mod tests;
