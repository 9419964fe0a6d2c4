//! The original student system's routes, kept for its clients (curl, Postman):
//! `/upload_fragment`, `/get_fragment/{name}`, `/list_fragments`, `/fragments`,
//! `/send_all_fragments`. Loose fragments belong to the default collection
//! (`store/collection.rs`): each upload becomes a one-fragment video (mode `upload`) and its name
//! is announced with it, so every node resolves a name to the same bytes.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vidswarm_proto::{is_plain_file_name, DEFAULT_CHUNK_SIZE};

use super::incoming::Incoming;
use super::range::send_file;
use super::{ApiError, AppState, ErrorBody};
use crate::service::{CollectionItem, UploadStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// The name the fragment is stored under in the default collection.
    pub name: String,
    pub size: u64,
    pub blake3: String,
    /// The one-fragment video the upload became (see `/api/v1/videos`).
    pub video_id: String,
    /// `stored`, `unchanged` (this very content was there already) or `replaced`.
    pub status: String,
}

/// The form `/upload_fragment` takes (documentation only: the handler streams the parts).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The fragment; the part's filename is the name it is stored under.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// Replace a fragment uploaded earlier under the same name with other content.
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FragmentNames {
    /// Names of the default collection's fragments this node holds, sorted.
    pub fragments: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionFragment {
    pub name: String,
    pub size: u64,
    pub blake3: String,
    pub video_id: String,
    /// When the upload was taken, in milliseconds since the Unix epoch (the node's clock).
    pub uploaded_at_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionFragments {
    pub fragments: Vec<CollectionFragment>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendFailure {
    pub name: String,
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentReport {
    /// What was provided in the DHT and announced to peers (loose fragments by name, fragments
    /// of whole videos as `<video id>/fragment_<i>.mp4`).
    pub sent: Vec<String>,
    pub failed: Vec<SendFailure>,
    /// Peers connected when it was sent; they fetch what they miss.
    pub peers: usize,
}

#[utoipa::path(post, path = "/upload_fragment", tag = "original routes",
    params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "One field `file`, its filename the fragment's name (e.g. `fragment_3.mp4`)"),
    responses(
        (status = 200, description = "Stored durably, provided and announced", body = Uploaded),
        (status = 400, description = "No `file` field, two of them, a name that is not a plain file name, or an empty file", body = ErrorBody),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 409, description = "The name holds other content; pass `replace=true` to replace it", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 503, description = "Too many uploads in progress, or stored but the swarm is not running to announce it", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn upload_fragment(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Uploaded>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut multipart = multipart?;
    let _permit = state.upload_permit()?;
    let mut file: Option<(String, Incoming)> = None;
    while let Some(field) = multipart.next_field().await? {
        if field.name() != Some("file") {
            continue; // Other fields (Postman adds some) are read past and ignored.
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        if let Some((_, earlier)) = file.take() {
            earlier.abort().await;
            return Err(ApiError::bad_request("more than one `file` field"));
        }
        if !is_plain_file_name(&name) {
            return Err(ApiError::bad_request(format!(
                "the file name {name:?} is not a plain file name (1 to 255 bytes, no `/`, `\\`, control characters, `.` or `..`)"
            )));
        }
        let incoming = Incoming::start(
            state.service.store(),
            state.config.max_upload,
            None,
            DEFAULT_CHUNK_SIZE,
        );
        file = Some((name, incoming.feed(field).await?));
    }
    let (name, incoming) = file.ok_or_else(|| ApiError::bad_request("no `file` field"))?;
    let verified = incoming.finish().await?;
    let up = state
        .service
        .add_named(name.clone(), verified, query.replace)
        .await?;
    let status = match up.status {
        UploadStatus::Stored => "stored",
        UploadStatus::Unchanged => "unchanged",
        UploadStatus::Replaced => "replaced",
    };
    Ok(Json(Uploaded {
        name,
        size: up.size,
        blake3: up.hash.to_string(),
        video_id: up.video.to_string(),
        status: status.into(),
    }))
}

#[utoipa::path(get, path = "/get_fragment/{name}", tag = "original routes",
    params(("name" = String, Path, description = "A name in the default collection, e.g. fragment_3.mp4: 1 to 255 bytes, no `/`, `\\` or control characters, not `.` or `..`", min_length = 1, max_length = 255, pattern = "^(?!\\.{1,2}$)[^/\\\\\\x00-\\x1f\\x7f-\\x9f]+$"),
           ("Range" = Option<String>, Header, description = "One byte range: bytes=a-b, bytes=a- or bytes=-n", pattern = "^bytes=([0-9]{1,19}-[0-9]{0,19}|-[0-9]{1,19})$")),
    responses(
        (status = 200, description = "The fragment's bytes (fetched over the swarm first if only a peer held it)", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Not a plain file name, or a malformed Range", body = ErrorBody),
        (status = 404, description = "No fragment of that name in the default collection", body = ErrorBody),
        (status = 416, description = "The range starts past the end", body = ErrorBody),
        (status = 503, description = "Known, but no peer could provide it in time", body = ErrorBody)))]
pub async fn get_fragment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !is_plain_file_name(&name) {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a plain file name"
        )));
    }
    let path = state.service.named_fragment(&name).await?;
    send_file(&path, &headers).await
}

fn listed(item: CollectionItem) -> CollectionFragment {
    CollectionFragment {
        name: item.name,
        size: item.fragment.size,
        blake3: item.fragment.blake3.to_string(),
        video_id: item.entry.video.to_string(),
        uploaded_at_ms: item.entry.uploaded_at_ms,
    }
}

#[utoipa::path(get, path = "/list_fragments", tag = "original routes",
    responses((status = 200, description = "Names of the default collection's fragments held here", body = FragmentNames)))]
pub async fn list_fragments(
    State(state): State<AppState>,
) -> Result<Json<FragmentNames>, ApiError> {
    let held = state.service.collection().await?;
    Ok(Json(FragmentNames {
        fragments: held.into_iter().map(|f| f.name).collect(),
    }))
}

#[utoipa::path(get, path = "/fragments", tag = "original routes",
    responses((status = 200, description = "The default collection's fragments held here, with sizes and hashes", body = CollectionFragments)))]
pub async fn fragments(
    State(state): State<AppState>,
) -> Result<Json<CollectionFragments>, ApiError> {
    let held = state.service.collection().await?;
    Ok(Json(CollectionFragments {
        fragments: held.into_iter().map(listed).collect(),
    }))
}

#[utoipa::path(get, path = "/send_all_fragments", tag = "original routes",
    responses(
        (status = 200, description = "Every fragment held, provided and announced; peers fetch what they miss", body = SentReport),
        (status = 401, description = "A bearer token is required", body = ErrorBody),
        (status = 503, description = "The swarm is not running", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn send_all_fragments(
    State(state): State<AppState>,
) -> Result<Json<SentReport>, ApiError> {
    let report = state.service.announce_everything().await?;
    Ok(Json(SentReport {
        sent: report.sent,
        failed: report
            .failed
            .into_iter()
            .map(|(name, error)| SendFailure { name, error })
            .collect(),
        peers: report.peers,
    }))
}
