//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, docs/fuzzing.md): the node's
//! parsers of untrusted input, reached without a swarm. Wrappers only; the code under test is the
//! node's own, called the way a request or a start-up calls it.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request};
use tower::ServiceExt;

use crate::http::{app, AppState, HttpConfig};
use crate::net::Client;
use crate::service::{FetchOptions, Service};
use crate::store::{NamedEntry, Store, StoreError};

/// What `http::range::requested` answers for a `Range` header of `value` on a file of `len`
/// bytes: the inclusive range, `None` for the whole file, or the error's status. `None` when
/// `value` cannot be a header value at all (the HTTP stack refuses it before any handler).
pub fn range(value: &[u8], len: u64) -> Option<Result<Option<(u64, u64)>, u16>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(header::RANGE, value);
    Some(crate::http::range::requested(&headers, len).map_err(|e| e.status.as_u16()))
}

/// A data dir opened again and again with a given `collection.json`, as a node's start-up opens it.
pub struct DataDir {
    dir: tempfile::TempDir,
}

/// What [`DataDir::open_with`] found.
#[derive(Debug)]
pub struct Opened {
    /// The names the store kept, sorted.
    pub names: Vec<(String, NamedEntry)>,
    /// Whether the open reported the collection file as damaged.
    pub damaged: bool,
    /// The damaged file kept aside (`collection.damaged-<ms>.json`), if there is one.
    pub kept_aside: Option<Vec<u8>>,
}

impl DataDir {
    /// A fresh data dir, in memory (`/dev/shm`) where there is one: opens fsync.
    pub fn new() -> std::io::Result<Self> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)?
        } else {
            tempfile::tempdir()?
        };
        Ok(Self { dir })
    }

    /// Writes `bytes` as `collection.json` (and nothing else) and opens the store.
    pub fn open_with(&self, bytes: &[u8]) -> Result<Opened, StoreError> {
        for aside in self.kept_aside_files() {
            let _ = std::fs::remove_file(aside);
        }
        let path = self.dir.path().join("collection.json");
        std::fs::write(&path, bytes).map_err(|e| StoreError::Io {
            op: "write",
            path,
            source: e,
        })?;
        self.reopen()
    }

    /// Opens the store on what the last open left.
    pub fn reopen(&self) -> Result<Opened, StoreError> {
        let (store, report) = Store::open(self.dir.path())?;
        let damaged = report
            .dropped
            .iter()
            .any(|(p, _)| p.file_name().is_some_and(|n| n == "collection.json"));
        let kept_aside = self
            .kept_aside_files()
            .first()
            .and_then(|p| std::fs::read(p).ok());
        Ok(Opened {
            names: store.collection(),
            damaged,
            kept_aside,
        })
    }

    fn kept_aside_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("collection.damaged-"))
            })
            .collect()
    }
}

/// The router over a store and a service with no swarm, for `POST /upload_fragment`.
pub struct Uploads {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    store: Store,
    announced: tokio::sync::mpsc::UnboundedReceiver<vidswarm_proto::wire::Announcement>,
    _dir: tempfile::TempDir,
}

/// The boundary of the multipart bodies [`Uploads::post`] sends.
pub const BOUNDARY: &str = "fuzzboundary";

/// What one upload answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Every name of the default collection after the upload.
    pub names: Vec<String>,
}

impl Uploads {
    /// Uploads of at most `max_upload` bytes each.
    pub fn new(max_upload: u64) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let dir = DataDir::new()?.dir;
        let (store, _) = Store::open(dir.path()).map_err(std::io::Error::other)?;
        let (client, announced) = runtime.block_on(async { Client::offline() });
        let service = Service::new(client, store.clone(), FetchOptions::default());
        let config = HttpConfig {
            max_upload,
            ..HttpConfig::default()
        };
        let router = app(AppState::new(service, config));
        Ok(Self {
            runtime,
            router,
            store,
            announced,
            _dir: dir,
        })
    }

    /// `POST /upload_fragment` (with `?replace=true` if `replace`) of `body`, a multipart form
    /// delimited by [`BOUNDARY`].
    pub fn post(&mut self, body: &[u8], replace: bool) -> Answer {
        let uri = if replace {
            "/upload_fragment?replace=true"
        } else {
            "/upload_fragment"
        };
        let request = Request::post(uri)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body.to_vec()))
            .expect("a valid request");
        let router = self.router.clone();
        let (status, body) = self.runtime.block_on(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, body)
        });
        while self.announced.try_recv().is_ok() {}
        Answer {
            status,
            body,
            names: self
                .store
                .collection()
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
        }
    }
}
