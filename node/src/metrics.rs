//! Prometheus metrics: libp2p's own (swarm, identify, kad, gossipsub, ping and bandwidth per
//! transport, from the libp2p-metrics crate) and the node's, in one registry that
//! `GET /metrics` encodes. Counters the swarm's hot path touches (bytes, chunks) are updated
//! where the work happens; the rest are derived from the node's event stream.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use crate::events::NodeEvent;

/// Labels of the per-protocol byte counter: `protocol` and `direction` (`sent` or `received`).
type ProtocolLabels = [(&'static str, &'static str); 2];

pub const TRANSFER: &str = vidswarm_proto::wire::TRANSFER_PROTOCOL;
pub const ANNOUNCE: &str = vidswarm_proto::wire::ANNOUNCE_TOPIC;
pub const HAVE: &str = vidswarm_proto::wire::HAVE_PROTOCOL;

/// Every metric of one node. (No `Debug`: the registry's families are not worth printing.)
pub struct Metrics {
    registry: Registry,
    pub libp2p: libp2p::metrics::Metrics,
    protocol_bytes: Family<ProtocolLabels, Counter>,
    pub chunks_served: Counter,
    pub chunks_declined: Counter,
    fragments_served: Family<[(&'static str, &'static str); 1], Counter>,
    pub fragments_fetched: Counter,
    fetches: Family<[(&'static str, &'static str); 1], Counter>,
    pub fetch_seconds: Histogram,
    pub fragment_fetch_seconds: Histogram,
    pub verification_failures: Counter,
    pub announcements_received: Counter,
    pub peers: Gauge,
    /// Keys of provider records held for other peers (`net/provider_store.rs` bounds them).
    pub dht_remote_keys: Gauge,
    /// Viewer quality, as the browser player reports it (`POST /api/v1/videos/{id}/playback`).
    pub playback_first_frame: Histogram,
    pub playback_stalls: Counter,
    pub playback_late: Counter,
    /// When the node started (for `/api/v1/info`'s uptime).
    pub started: std::time::Instant,
}

impl Metrics {
    /// Registers every metric in `registry` (which may already hold the transport's bandwidth
    /// metrics) and keeps it for encoding.
    pub fn new(mut registry: Registry) -> Arc<Self> {
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let reg = registry.sub_registry_with_prefix("vidswarm");
        let m = Self {
            libp2p,
            protocol_bytes: Family::default(),
            chunks_served: Counter::default(),
            chunks_declined: Counter::default(),
            fragments_served: Family::default(),
            fragments_fetched: Counter::default(),
            fetches: Family::default(),
            fetch_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            fragment_fetch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            verification_failures: Counter::default(),
            announcements_received: Counter::default(),
            peers: Gauge::default(),
            dht_remote_keys: Gauge::default(),
            playback_first_frame: Histogram::new(exponential_buckets(0.025, 2.0, 12)),
            playback_stalls: Counter::default(),
            playback_late: Counter::default(),
            started: std::time::Instant::now(),
            registry: Registry::default(),
        };
        reg.register(
            "protocol_bytes",
            "Application bytes sent and received, per vidswarm protocol",
            m.protocol_bytes.clone(),
        );
        reg.register(
            "chunks_served",
            "Fragment chunks served to peers",
            m.chunks_served.clone(),
        );
        reg.register(
            "chunks_declined",
            "Chunk requests declined because the chunk went to another peer a moment ago while the upload was busy (its upload went to chunks the swarm lacked)",
            m.chunks_declined.clone(),
        );
        reg.register(
            "fragments_served",
            "Fragments served: over the swarm, counted when a fragment's last chunk is served; over HTTP, whole downloads",
            m.fragments_served.clone(),
        );
        reg.register(
            "fragments_fetched",
            "Fragments fetched from peers, verified and stored",
            m.fragments_fetched.clone(),
        );
        reg.register(
            "fetches",
            "Fetches that ended, by result",
            m.fetches.clone(),
        );
        reg.register(
            "fetch_duration_seconds",
            "How long completed fetches took",
            m.fetch_seconds.clone(),
        );
        reg.register(
            "fragment_fetch_duration_seconds",
            "How long each fetched fragment took, first request to stored",
            m.fragment_fetch_seconds.clone(),
        );
        reg.register(
            "verification_failures",
            "Chunks or fragments from peers that failed their hash (the peer is excluded)",
            m.verification_failures.clone(),
        );
        reg.register(
            "announcements_received",
            "Valid announcements received over gossip",
            m.announcements_received.clone(),
        );
        reg.register("peers", "Connected peers", m.peers.clone());
        reg.register(
            "dht_remote_provider_keys",
            "Keys of the DHT provider records this node holds for other peers",
            m.dht_remote_keys.clone(),
        );
        reg.register(
            "playback_first_frame_seconds",
            "Browser players: from the play click to the first frame shown",
            m.playback_first_frame.clone(),
        );
        reg.register(
            "playback_stalls",
            "Browser players: playback stopped to wait for data after it had started",
            m.playback_stalls.clone(),
        );
        reg.register(
            "playback_late_fragments",
            "Browser players: stalls on a fragment that had not arrived when playback reached it (it missed its deadline)",
            m.playback_late.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    pub fn bytes(&self, protocol: &'static str, direction: Direction, n: usize) {
        let direction = match direction {
            Direction::Sent => "sent",
            Direction::Received => "received",
        };
        self.protocol_bytes
            .get_or_create(&[("protocol", protocol), ("direction", direction)])
            .inc_by(n as u64);
    }

    /// Fragment bytes (the transfer protocol's chunks) received and sent since the node started.
    pub fn transfer_bytes(&self) -> (u64, u64) {
        self.protocol_bytes_of(TRANSFER)
    }

    /// Application bytes of `protocol` ([`TRANSFER`], [`ANNOUNCE`], [`HAVE`]) received and sent
    /// since the node started.
    pub fn protocol_bytes_of(&self, protocol: &'static str) -> (u64, u64) {
        let get = |direction| {
            self.protocol_bytes
                .get_or_create(&[("protocol", protocol), ("direction", direction)])
                .get()
        };
        (get("received"), get("sent"))
    }

    pub fn fragment_served(&self, via: &'static str) {
        self.fragments_served.get_or_create(&[("via", via)]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Keeps the event-derived metrics up to date until the node stops.
    pub async fn follow(self: Arc<Self>, mut events: Receiver<NodeEvent>) {
        loop {
            match events.recv().await {
                Ok(event) => self.on_event(&event),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn on_event(&self, event: &NodeEvent) {
        match event {
            NodeEvent::AnnouncementReceived { .. } => {
                self.announcements_received.inc();
            }
            NodeEvent::FragmentStored { millis, .. } => {
                self.fragments_fetched.inc();
                self.fragment_fetch_seconds.observe(*millis as f64 / 1e3);
            }
            NodeEvent::FetchCompleted { millis, .. } => {
                self.fetches.get_or_create(&[("result", "completed")]).inc();
                self.fetch_seconds.observe(*millis as f64 / 1e3);
            }
            NodeEvent::FetchFailed { .. } => {
                self.fetches.get_or_create(&[("result", "failed")]).inc();
            }
            NodeEvent::PeerMisbehaved { .. } => {
                self.verification_failures.inc();
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Sent,
    Received,
}
