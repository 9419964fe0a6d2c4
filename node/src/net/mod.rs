//! The swarm side of a node. One task (`EventLoop`) owns the libp2p `Swarm`; everything else
//! holds a cloneable [`Client`] and sends it commands.
//!
//! - `behaviour.rs`: the composed behaviour and the swarm's build.
//! - `transport.rs`: TCP and QUIC, or TCP behind a private swarm's key.
//! - `codec.rs`: framing of the transfer protocol with hard size limits.
//! - `client.rs`: [`Client`] and its commands.
//! - `event_loop/`: the loop: swarm events, commands, DHT queries, gossip validation.
//! - `have.rs`: each connected peer's progress stream (chunk bitmaps, straight to the peer).
//! - `serve.rs`: answering transfer requests from the store.
//! - `provider_store.rs`: Kademlia's record store, bounded against other peers.
//!
//! DHT keys: `/vidswarm/manifest/<video id>` for a manifest, `/vidswarm/fragment/<blake3>` for a
//! fragment (fragments are content-addressed, so two videos sharing a fragment share its key).

pub mod advertise;
mod behaviour;
mod client;
mod codec;
mod event_loop;
mod gossip_score;
mod have;
mod peers;
pub mod provider_store;
mod serve;
mod transport;

use libp2p::gossipsub::IdentTopic;
use libp2p::identity::Keypair;
use libp2p::kad::RecordKey;
use tokio::sync::mpsc;
use vidswarm_proto::wire::ANNOUNCE_TOPIC;
use vidswarm_proto::{Hash, VideoId};

pub use behaviour::{
    NetConfig, CONNECTION_TIMEOUT, DEFAULT_MAX_MEMORY, DIAL_CONCURRENCY, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_PEER, MAX_INBOUND_CONNECTIONS, MAX_PENDING_CONNECTIONS,
    MAX_STREAMS_PER_CONNECTION, MAX_TRANSFER_STREAMS, QUIC_HANDSHAKE_TIMEOUT,
};
pub use client::{Client, NetError};
pub use event_loop::dialing::DIAL_TIMEOUT;
pub use event_loop::links::PeerLink;
#[cfg(test)]
pub(crate) use event_loop::spread::DECLINE_WINDOW;
pub use gossip_score::{POSITIVE_CAP, REJECTED_HALF_LIFE, REJECTED_WEIGHT};
pub use peers::{Peers, FIRST_BACKOFF, MAX_BACKOFF};
pub use transport::{parse_swarm_key, usable_with_swarm_key, MAX_SWARM_KEY_BYTES};

/// Inbound requests served at once; more are answered `Busy` so a flood cannot queue without
/// bound.
pub const MAX_SERVING: usize = 32;

use crate::availability::Availability;
use crate::events::EventSender;
use crate::metrics::Metrics;
use crate::store::Store;

pub fn manifest_key(video: &VideoId) -> RecordKey {
    RecordKey::new(&format!("/vidswarm/manifest/{video}"))
}

pub fn fragment_key(hash: &Hash) -> RecordKey {
    RecordKey::new(&format!("/vidswarm/fragment/{hash}"))
}

/// Builds the swarm, subscribes to the announcement topic and spawns the event loop on the
/// current tokio runtime. The loop stops when the last `Client` is dropped.
pub fn spawn(
    key: Keypair,
    store: Store,
    events: EventSender,
    cfg: &NetConfig,
) -> Result<(Client, tokio::task::JoinHandle<()>), NetError> {
    let peer_id = key.public().to_peer_id();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut swarm = behaviour::build_swarm(key, cfg, &mut registry)?;
    let metrics = Metrics::new(registry);
    let topic = IdentTopic::new(ANNOUNCE_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetError::Build {
            part: "announcement topic",
            reason: e.to_string(),
        })?;
    for addr in &cfg.external {
        swarm.add_external_address(addr.clone());
    }
    let have = have::ProgressStreams::start(swarm.behaviour().have.new_control()).map_err(|e| {
        NetError::Build {
            part: "progress streams",
            reason: e.to_string(),
        }
    })?;
    let (tx, rx) = mpsc::channel(256);
    let client = Client {
        tx,
        peer_id,
        availability: Availability::default(),
        events,
        metrics,
        inbox: Default::default(),
        peers: Peers::default(),
    };
    let event_loop = event_loop::EventLoop::new(swarm, store, rx, &client, topic, cfg, have);
    let task = tokio::spawn(event_loop.run());
    Ok((client, task))
}
