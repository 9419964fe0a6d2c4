//! A running node: its store, its swarm (through a `Client`), the [`Service`] over both, and the
//! node's own tasks (`tasks.rs`): the announcer, auto-fetch and name learning, and re-joining the
//! bootstrap nodes. [`Node::shutdown`] stops them in order and drains what is in flight.

mod tasks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};
use vidswarm_proto::{Manifest, VideoId};

use crate::events;
use crate::fetch::{FetchOptions, FetchReport};
use crate::net::{self, Client, NetConfig};
use crate::service::{AutoFetchConfig, Service, ServiceError, SpaceConfig};
use crate::store::{ImportReport, Store, StoreError};

/// How long [`Node::shutdown`] gives background fetches, then serves in flight, to finish.
pub const SHUTDOWN_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub auto_fetch: bool,
    /// Take up at start the fetches of pinned videos that a crash or a stop cut short
    /// (`service/resume.rs`). Off for `vidswarm fetch`, which runs its own.
    pub resume_fetches: bool,
    /// How many auto-fetches run at once, and how long a failed video is left alone.
    pub auto_fetch_pace: AutoFetchConfig,
    /// How often the node re-announces everything it holds.
    pub announce_every: Duration,
    pub net: NetConfig,
    pub fetch: FetchOptions,
    /// How far a slow reader of the event stream may fall behind before it loses events.
    pub events_buffer: usize,
    /// The disk budget (`service/space.rs`).
    pub space: SpaceConfig,
    /// How often garbage is collected and the budget enforced (beside after each fetch).
    pub tidy_every: Duration,
    /// The key that signs (and so owns) the names of this node's uploads; the node's identity
    /// when `None` (`--publisher-key`).
    pub publisher: Option<Keypair>,
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
            resume_fetches: true,
            auto_fetch_pace: AutoFetchConfig::default(),
            announce_every: Duration::from_secs(15),
            net: NetConfig::default(),
            fetch: FetchOptions::default(),
            events_buffer: events::EVENT_BUFFER,
            space: SpaceConfig::default(),
            tidy_every: crate::service::space::TIDY_EVERY,
            publisher: None,
        }
    }

    /// Loopback only, port 0: for tests and the in-process demo.
    pub fn loopback(data: impl Into<PathBuf>) -> Self {
        let mut cfg = Self::new(data);
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")];
        // Tests must not fail on a machine whose disk is merely nearly full.
        cfg.space.min_free = 0;
        cfg
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open the data dir: {0}")]
    Store(#[from] StoreError),
    #[error("the identity key in the data dir is not valid: {0}")]
    Identity(String),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("no listen address came up within {0:?}")]
    NoListenAddr(Duration),
}

/// The announcement interval a node runs with: at most half of [`AVAILABILITY_TTL`], or its
/// peers would forget its entries between two rounds; at least 1 ms.
///
/// [`AVAILABILITY_TTL`]: crate::availability::AVAILABILITY_TTL
pub fn announce_every(asked: Duration) -> Duration {
    let longest = crate::availability::AVAILABILITY_TTL / 2;
    if asked > longest {
        warn!(
            ?asked,
            ?longest,
            "announcing more seldom than peers remember: using the longest interval they allow"
        );
    }
    asked.clamp(Duration::from_millis(1), longest)
}

pub struct Node {
    service: Service,
    listen_addrs: Vec<Multiaddr>,
    /// The event loop, which owns the swarm.
    swarm_task: JoinHandle<()>,
    /// The node's own tasks; they end when the service stops.
    tasks: Vec<JoinHandle<()>>,
    /// Follows the event stream into the metrics: observation only, aborted at the end.
    metrics_task: JoinHandle<()>,
    bootstrap: tasks::Bootstrap,
}

impl Node {
    pub async fn start(cfg: NodeConfig) -> Result<Self, NodeError> {
        let data = cfg.data.clone();
        let (store, report) = tokio::task::spawn_blocking(move || Store::open(&data))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        for (path, reason) in &report.dropped {
            warn!(path = %path.display(), %reason, "dropped from the store");
        }
        let key_bytes = store
            .call(|s| {
                s.load_or_create_identity(|| {
                    Keypair::generate_ed25519()
                        .to_protobuf_encoding()
                        .unwrap_or_default()
                })
            })
            .await?;
        let key = Keypair::from_protobuf_encoding(&key_bytes)
            .map_err(|e| NodeError::Identity(e.to_string()))?;

        let events = events::channel(cfg.events_buffer);
        let publisher = cfg.publisher.clone().unwrap_or_else(|| key.clone());
        let (client, swarm_task) = net::spawn(key, store.clone(), events, &cfg.net)?;
        let mut rx = client.subscribe();
        // A private swarm speaks TCP only: its QUIC listen addresses are left out.
        let listen: Vec<&Multiaddr> = cfg
            .listen
            .iter()
            .filter(|addr| {
                let usable = cfg.net.swarm_key.is_none() || net::usable_with_swarm_key(addr);
                if !usable {
                    warn!(%addr, "not listening on a QUIC address: a private swarm (--swarm-key) is TCP only");
                }
                usable
            })
            .collect();
        for addr in &listen {
            client.listen((*addr).clone()).await?;
        }
        let listen_addrs = tasks::wait_for_listen_addrs(&client, &mut rx, listen.len()).await?;
        let bootstrap = tasks::Bootstrap::new(&cfg.bootstrap);
        let dials = tokio::spawn(bootstrap.clone().dial_all(client.clone()));
        if !cfg.bootstrap.is_empty() {
            client.bootstrap().await?;
        }

        let service = Service::new(client.clone(), store, cfg.fetch.clone())
            .with_auto_fetch(cfg.auto_fetch_pace.clone())
            .with_space(cfg.space)
            .with_publisher(publisher);
        // What a crash or an older run left goes before anything else touches the store.
        if let Err(e) = service.tidy().await {
            warn!(error = %e, "cannot tidy the store");
        }
        if cfg.resume_fetches {
            service.resume_interrupted();
        }
        let stop = service.stopping().clone();
        let mut tasks = vec![dials];
        if !cfg.bootstrap.is_empty() {
            tasks.push(tokio::spawn(
                tasks::rejoin(
                    client.clone(),
                    bootstrap.clone(),
                    cfg.bootstrap.clone(),
                    stop.clone(),
                )
                .instrument(tracing::info_span!("rejoin")),
            ));
        }
        let metrics_task = tokio::spawn(client.metrics().clone().follow(client.subscribe()));
        tasks.push(tokio::spawn(
            tasks::on_announced(service.clone(), cfg.auto_fetch)
                .instrument(tracing::info_span!("announced")),
        ));
        tasks.push(tokio::spawn(
            tasks::announcer(service.clone(), announce_every(cfg.announce_every))
                .instrument(tracing::info_span!("announcer")),
        ));
        tasks.push(tokio::spawn(
            tasks::tidier(service.clone(), cfg.tidy_every).instrument(tracing::info_span!("tidy")),
        ));
        info!(peer = %client.peer_id(), "node started");
        Ok(Self {
            service,
            listen_addrs,
            swarm_task,
            tasks,
            metrics_task,
            bootstrap,
        })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn client(&self) -> &Client {
        self.service.client()
    }

    pub fn store(&self) -> &Store {
        self.service.store()
    }

    pub fn peer_id(&self) -> PeerId {
        self.service.peer_id()
    }

    /// The bootstrap addresses that could not be reached (yet), each with why: for a person
    /// wondering why nothing was found.
    pub fn unreachable_bootstrap(&self) -> Vec<(Multiaddr, String)> {
        self.bootstrap.unreachable()
    }

    /// Full dialable addresses (`.../p2p/<peer id>`), as they were once the node had started
    /// (`Client::listen_addrs` has them as they are now).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// What the HTTP sidecar needs: the service, nothing that owns the swarm.
    pub fn http_state(&self, config: crate::http::HttpConfig) -> crate::http::AppState {
        crate::http::AppState::new(self.service.clone(), config)
    }

    pub async fn fetch(
        &self,
        video: VideoId,
        opts: &FetchOptions,
    ) -> Result<FetchReport, ServiceError> {
        self.service.fetch(video, opts).await
    }

    /// Imports a whole split dir, then provides and announces it.
    pub async fn import_split(&self, dir: &Path) -> Result<ImportReport, ServiceError> {
        self.service.import_split(dir).await
    }

    /// Stores `manifest` and the fragments `indices` from `dir` (a split dir), without telling
    /// anyone: how the demo and tests seed a node with part of a video before [`Node::publish`].
    pub async fn seed(
        &self,
        manifest: &Manifest,
        dir: &Path,
        indices: &[u32],
    ) -> Result<(), ServiceError> {
        self.service.seed(manifest, dir, indices).await
    }

    /// Provides and announces what the node holds of `video`.
    pub async fn publish(&self, video: &VideoId) -> Result<(), ServiceError> {
        self.service.publish(video).await
    }

    /// Stops the node in order, each step bounded by `within`: background fetches end (what they
    /// committed stays, uncommitted fragments rest with their resume records), the node's tasks end, the swarm stops taking
    /// requests and answers the ones being served, then it closes. What is still running after
    /// that is aborted. Returns whether everything finished in time.
    pub async fn shutdown(mut self, within: Duration) -> bool {
        let mut clean = self.service.stop(within).await;
        for task in std::mem::take(&mut self.tasks) {
            clean &= tokio::time::timeout(within, task).await.is_ok();
        }
        // After the announcer stopped, so nothing re-announces what the goodbye withdrew.
        match tokio::time::timeout(within, self.service.say_goodbye()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "cannot say goodbye"),
            Err(_) => clean = false,
        }
        if self.service.client().shutdown(within).await.is_ok() {
            clean &= tokio::time::timeout(within, &mut self.swarm_task)
                .await
                .is_ok();
        }
        // Writes and commits on the blocking pool, including those of cancelled fetches.
        clean &= self.service.store().quiesce(within).await;
        if !clean {
            warn!("the node did not stop cleanly within {within:?}; aborting what is left");
        }
        clean
    }
}

impl Drop for Node {
    /// Without [`Node::shutdown`]: everything stops at once.
    fn drop(&mut self) {
        self.service.stopping().cancel();
        for task in &self.tasks {
            task.abort();
        }
        self.metrics_task.abort();
        self.swarm_task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_interval_stays_within_what_peers_remember() {
        let longest = crate::availability::AVAILABILITY_TTL / 2;
        assert_eq!(announce_every(Duration::from_secs(3600)), longest);
        assert_eq!(
            announce_every(Duration::from_secs(15)),
            Duration::from_secs(15)
        );
        assert_eq!(announce_every(Duration::ZERO), Duration::from_millis(1));
    }
}
