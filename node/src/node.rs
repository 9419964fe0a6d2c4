//! A running node: its store, its swarm (through a `Client`), and two background tasks: the
//! announcer (re-announces what the node holds, on schedule and when a peer subscribes) and
//! auto-fetch (fetches what peers announce and the node lacks).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};
use vidswarm_proto::{Manifest, VideoId};

use crate::events::{self, NodeEvent};
use crate::fetch::{self, blocking, FetchError, FetchOptions, FetchReport};
use crate::net::{self, Client, NetConfig};
use crate::progress::FetchTable;
use crate::store::{ImportReport, NamedEntry, Store, StoreError};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub auto_fetch: bool,
    /// How often the node re-announces everything it holds.
    pub announce_every: Duration,
    pub net: NetConfig,
    pub fetch: FetchOptions,
}

impl NodeConfig {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid"),
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid"),
            ],
            bootstrap: vec![],
            auto_fetch: true,
            announce_every: Duration::from_secs(15),
            net: NetConfig::default(),
            fetch: FetchOptions::default(),
        }
    }

    /// Loopback only, port 0: for tests and the in-process demo.
    pub fn loopback(data: impl Into<PathBuf>) -> Self {
        let mut cfg = Self::new(data);
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")];
        cfg
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open the data dir: {0}")]
    Store(#[from] StoreError),
    #[error("the identity key in the data dir is not valid: {0}")]
    Identity(String),
    #[error("cannot start the swarm: {0}")]
    Swarm(String),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("no listen address came up within {0:?}")]
    NoListenAddr(Duration),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

pub struct Node {
    client: Client,
    store: Store,
    listen_addrs: Vec<Multiaddr>,
    fetch: FetchOptions,
    fetches: FetchTable,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    pub async fn start(cfg: NodeConfig) -> Result<Self, NodeError> {
        let data = cfg.data.clone();
        let (store, report) = tokio::task::spawn_blocking(move || Store::open(&data))
            .await
            .map_err(|e| NodeError::Swarm(e.to_string()))??;
        for (path, reason) in &report.dropped {
            warn!(path = %path.display(), %reason, "dropped from the store");
        }
        let s = store.clone();
        let key_bytes = tokio::task::spawn_blocking(move || {
            s.load_or_create_identity(|| {
                Keypair::generate_ed25519()
                    .to_protobuf_encoding()
                    .unwrap_or_default()
            })
        })
        .await
        .map_err(|e| NodeError::Swarm(e.to_string()))??;
        let key = Keypair::from_protobuf_encoding(&key_bytes)
            .map_err(|e| NodeError::Identity(e.to_string()))?;

        let events = events::channel();
        let (client, loop_task) =
            net::spawn(key, store.clone(), events.clone(), &cfg.net).map_err(NodeError::Swarm)?;
        let mut rx = client.subscribe();
        for addr in &cfg.listen {
            client.listen(addr.clone()).await?;
        }
        let listen_addrs = wait_for_listen_addrs(&client, &mut rx, cfg.listen.len()).await?;
        for addr in &cfg.bootstrap {
            if let Err(e) = client.dial(addr.clone()).await {
                warn!(error = %e, "cannot dial bootstrap address");
            }
        }
        if !cfg.bootstrap.is_empty() {
            client.bootstrap().await?;
        }

        let mut tasks = vec![loop_task];
        if !cfg.bootstrap.is_empty() {
            tasks.push(tokio::spawn(
                rejoin(client.clone(), cfg.bootstrap.clone())
                    .instrument(tracing::info_span!("rejoin")),
            ));
        }
        tasks.push(tokio::spawn(
            client.metrics().clone().follow(client.subscribe()),
        ));
        let fetches = FetchTable::default();
        tasks.push(tokio::spawn(fetches.clone().follow(client.subscribe())));
        tasks.push(tokio::spawn(
            learn_names(client.subscribe(), store.clone())
                .instrument(tracing::info_span!("collection")),
        ));
        tasks.push(tokio::spawn(
            announcer(client.clone(), store.clone(), cfg.announce_every)
                .instrument(tracing::info_span!("announcer")),
        ));
        if cfg.auto_fetch {
            tasks.push(tokio::spawn(
                auto_fetch(client.clone(), store.clone(), cfg.fetch.clone())
                    .instrument(tracing::info_span!("auto_fetch")),
            ));
        }
        info!(peer = %client.peer_id(), "node started");
        Ok(Self {
            client,
            store,
            listen_addrs,
            fetch: cfg.fetch,
            fetches,
            tasks,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn peer_id(&self) -> PeerId {
        self.client.peer_id()
    }

    /// Full dialable addresses (`.../p2p/<peer id>`).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// What the HTTP sidecar needs: the same client and store, nothing that owns the swarm.
    pub fn http_state(&self, config: crate::http::HttpConfig) -> crate::http::AppState {
        crate::http::AppState {
            client: self.client.clone(),
            store: self.store.clone(),
            listen_addrs: std::sync::Arc::new(self.listen_addrs.clone()),
            fetch: self.fetch.clone(),
            fetches: self.fetches.clone(),
            uploads: std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_uploads)),
            config,
        }
    }

    pub async fn fetch(
        &self,
        video: VideoId,
        opts: &FetchOptions,
    ) -> Result<FetchReport, FetchError> {
        fetch::fetch(&self.client, &self.store, video, opts).await
    }

    /// Imports a whole split dir, then provides and announces it.
    pub async fn import_split(&self, dir: &Path) -> Result<ImportReport, FetchError> {
        let (s, d) = (self.store.clone(), dir.to_owned());
        let report = blocking(move || s.import_split_dir(&d)).await??;
        self.publish(&report.video_id).await?;
        Ok(report)
    }

    /// Stores `manifest` and the fragments `indices` from `dir` (a split dir), without telling
    /// anyone: how the demo and tests seed a node with part of a video before [`Node::publish`].
    pub async fn seed(
        &self,
        manifest: &Manifest,
        dir: &Path,
        indices: &[u32],
    ) -> Result<(), FetchError> {
        let (s, m, d, idx) = (
            self.store.clone(),
            manifest.clone(),
            dir.to_owned(),
            indices.to_vec(),
        );
        blocking(move || -> Result<(), StoreError> {
            s.put_manifest(&m)?;
            for i in idx {
                let f = &m.fragments[i as usize];
                s.import_fragment_file(&d.join(&f.name), &f.blake3)?;
            }
            Ok(())
        })
        .await??;
        Ok(())
    }

    /// Provides and announces what the node holds of `video`.
    pub async fn publish(&self, video: &VideoId) -> Result<(), FetchError> {
        let (s, v) = (self.store.clone(), *video);
        if let Some(m) = blocking(move || s.manifest(&v)).await?? {
            fetch::announce_held(&self.client, &self.store, &m, true).await?;
        }
        Ok(())
    }

    /// Stops the node's tasks (and with them the swarm).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn wait_for_listen_addrs(
    client: &Client,
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    expected: usize,
) -> Result<Vec<Multiaddr>, NodeError> {
    const LIMIT: Duration = Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let addrs = client.listen_addrs().await?;
        if addrs.len() >= expected.max(1) {
            return Ok(addrs);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => return Err(NodeError::Net(net::NetError::Stopped)),
            Err(_) => return Err(NodeError::NoListenAddr(LIMIT)),
        }
    }
}

/// Announces everything held: at start, every `every`, and soon after a peer subscribes (so a
/// node that joins late learns what exists without waiting for the next round).
async fn announcer(client: Client, store: Store, every: Duration) {
    let mut rx = client.subscribe();
    let mut tick = tokio::time::interval(every);
    let mut last = Instant::now() - every;
    let mut first = true;
    loop {
        let due = tokio::select! {
            _ = tick.tick() => true,
            event = rx.recv() => match event {
                Ok(NodeEvent::PeerSubscribed { .. }) => last.elapsed() > Duration::from_millis(250),
                Ok(_) | Err(RecvError::Lagged(_)) => false,
                Err(RecvError::Closed) => return,
            },
        };
        if !due {
            continue;
        }
        last = Instant::now();
        let s = store.clone();
        let Ok(Ok(manifests)) = blocking(move || s.manifests()).await else {
            continue;
        };
        for m in manifests {
            // Provide once at start; the DHT re-provides on its own schedule after that.
            if let Err(e) = fetch::announce_held(&client, &store, &m, first).await {
                debug!(error = %e, "announcement failed");
            }
        }
        first = false;
    }
}

/// Dials the bootstrap addresses again whenever the node has no peer: a node started before its
/// bootstrap node (or cut off from the swarm) joins as soon as one answers, with no restart.
async fn rejoin(client: Client, bootstrap: Vec<Multiaddr>) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::time::sleep(EVERY).await;
        match client.connected_peers().await {
            Ok(peers) if peers.is_empty() => {
                debug!("no peers; dialing the bootstrap addresses again");
                for addr in &bootstrap {
                    let _ = client.dial(addr.clone()).await;
                }
                let _ = client.bootstrap().await;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Keeps the default collection's names up to date from announcements of loose uploads.
async fn learn_names(mut rx: tokio::sync::broadcast::Receiver<NodeEvent>, store: Store) {
    loop {
        let (video, named) = match rx.recv().await {
            Ok(NodeEvent::AnnouncementReceived {
                video,
                named: Some(named),
                ..
            }) => (video, named),
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let s = store.clone();
        let entry = NamedEntry {
            uploaded_at_ms: named.uploaded_at_ms,
            video,
        };
        let name = named.name.clone();
        match blocking(move || s.observe_name(&name, entry)).await {
            Ok(Ok(true)) => info!(name = %named.name, video = %video.short(), "learned a name"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot record a name"),
            Err(e) => warn!(error = %e, "cannot record a name"),
        }
    }
}

/// Fetches videos peers announce that this node does not fully hold; one fetch per video at a
/// time, and a failed one is retried on a later announcement.
async fn auto_fetch(client: Client, store: Store, opts: FetchOptions) {
    let mut rx = client.subscribe();
    let running: Arc<Mutex<HashSet<VideoId>>> = Arc::default();
    loop {
        let video = match rx.recv().await {
            Ok(NodeEvent::AnnouncementReceived { video, .. }) => video,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&video)
        {
            continue;
        }
        let s = store.clone();
        let complete = blocking(move || match s.manifest(&video) {
            Ok(Some(m)) => m.fragments.iter().all(|f| s.has_fragment(&f.blake3)),
            _ => false,
        })
        .await
        .unwrap_or(false);
        if complete {
            continue;
        }
        running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(video);
        let (client, store, opts, running) =
            (client.clone(), store.clone(), opts.clone(), running.clone());
        tokio::spawn(async move {
            match fetch::fetch(&client, &store, video, &opts).await {
                Ok(r) => info!(video = %video.short(), fetched = ?r.fetched, "auto-fetch done"),
                Err(e) => {
                    warn!(video = %video.short(), error = %e, "auto-fetch failed; will retry")
                }
            }
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&video);
        });
    }
}
