//! The node's libp2p behaviour (identify, ping, Kademlia, gossipsub, the transfer protocol, the
//! progress streams) and building the `Swarm` (TCP+Noise+Yamux and QUIC, on tokio).

use std::time::Duration;

use super::provider_store::ProviderStore;
use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::identity::Keypair;
use libp2p::memory_connection_limits;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{gossipsub, identify, kad, ping, PeerId, StreamProtocol, Swarm};
use vidswarm_proto::wire::{ANNOUNCE_TOPIC, MAX_ANNOUNCEMENT_BYTES, TRANSFER_PROTOCOL};

use super::client::NetError;
use super::codec::TransferCodec;

/// Our own DHT, apart from IPFS's: only vidswarm nodes answer on it.
pub const KAD_PROTOCOL: &str = "/vidswarm/kad/1.0.0";
pub const IDENTIFY_PROTOCOL: &str = "/vidswarm/id/1.0.0";

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connections beyond these are refused as they come (`docs/security.md`).
    pub limits: connection_limits::Behaviour,
    /// No new connection while the process holds more than `NetConfig::max_memory`.
    pub memory: memory_connection_limits::Behaviour,
    /// With `--allow-peer`, connections to and from any other peer are refused.
    pub allowed: Toggle<allow_block_list::Behaviour<AllowedPeers>>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<ProviderStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub transfer: request_response::Behaviour<TransferCodec>,
    /// Long-lived streams of our own: each connected peer's progress stream (`have.rs`).
    pub have: libp2p_stream::Behaviour,
}

/// The longest a connection may take to set up on any transport (for TCP: the connect, Noise
/// and Yamux, about three round trips plus a lost SYN or two, which TCP resends after 1 s and 3
/// s). libp2p's default is 10 s.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a QUIC handshake may take: one round trip carries it (TLS in the same packets),
/// and QUIC resends a lost packet within about a second, so it gets less than TCP.
pub const QUIC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many of a peer's addresses are dialed at once: the first to connect wins, so an address
/// that drops packets does not hold up one that answers.
pub const DIAL_CONCURRENCY: std::num::NonZeroU8 = std::num::NonZeroU8::new(8).unwrap();

/// Connections per peer: one is all a peer needs; two dialing each other at once make two, and
/// a TCP and a QUIC one may overlap while one replaces the other.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 3;
/// Connections being set up at once, each way: a flood of half-open handshakes is refused early.
pub const MAX_PENDING_CONNECTIONS: u32 = 64;
/// Established connections from peers that dialed this node, and in all. Each holds a socket
/// (the descriptors the store needs too) and its buffers.
pub const MAX_INBOUND_CONNECTIONS: u32 = 256;
pub const MAX_CONNECTIONS: u32 = 512;
/// Streams open at once on one connection, both ways and all protocols (yamux): each can
/// buffer up to yamux's 256 KiB window of unread bytes, so a connection holds at most 32 MiB.
pub const MAX_STREAMS_PER_CONNECTION: usize = 128;
/// Transfer requests in flight at once on one connection, both ways (request-response; an
/// inbound one beyond is dropped, an outbound one fails). An honest fetch keeps 4 per peer in
/// flight, and a peer's requests beyond 32 waiting are answered `Busy` anyway.
pub const MAX_TRANSFER_STREAMS: usize = 96;
/// The default of `NetConfig::max_memory` (`--max-memory`): about 25 times what a busy node
/// holds (about 40 MiB).
pub const DEFAULT_MAX_MEMORY: usize = 1 << 30;

/// Tunables that tests and the demo shorten.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub request_timeout: Duration,
    pub provider_republish: Duration,
    pub idle_timeout: Duration,
    /// Addresses the operator knows others can reach this node at (`--external-address`). When
    /// set, the node advertises only these, not its listen addresses.
    pub external: Vec<libp2p::Multiaddr>,
    /// How long a stopping node waits at most for its peers to confirm that its goodbyes
    /// arrived (`Request::Leaving`); usually they do within a round trip.
    pub goodbye_wait: Duration,
    /// A private swarm's pre-shared key (`--swarm-key`): only nodes with the same key can
    /// connect, over TCP only.
    pub swarm_key: Option<libp2p::pnet::PreSharedKey>,
    /// The only peers this node connects with (`--allow-peer`); empty: any.
    pub allowed_peers: Vec<PeerId>,
    /// Resident memory above which new connections are refused (`--max-memory`).
    pub max_memory: usize,
    /// Chunk bytes per second this node uploads at most, all peers together
    /// (`--max-upload-rate`); `None` or 0: as fast as the links go.
    pub max_upload_rate: Option<u64>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            provider_republish: Duration::from_secs(10 * 60),
            idle_timeout: Duration::from_secs(5 * 60),
            external: Vec::new(),
            goodbye_wait: Duration::from_secs(1),
            swarm_key: None,
            allowed_peers: Vec::new(),
            max_memory: DEFAULT_MAX_MEMORY,
            max_upload_rate: None,
        }
    }
}

impl Behaviour {
    fn new(
        key: &Keypair,
        cfg: &NetConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let peer_id = key.public().to_peer_id();

        let mut kad_cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_cfg
            .set_query_timeout(Duration::from_secs(10))
            .set_provider_publication_interval(Some(cfg.provider_republish))
            .set_provider_record_ttl(Some(cfg.provider_republish * 3))
            // Records from peers go through the event loop, which refuses those of a peer that
            // said goodbye (`gossip.rs`) and every PUT_VALUE record (vidswarm uses none).
            .set_record_filtering(kad::StoreInserts::FilterBoth);
        // What other peers can make it hold is bounded (`provider_store.rs`).
        let store = ProviderStore::new(peer_id);
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_cfg);
        // Loopback and private networks never confirm an external address, and a client-mode
        // node is not asked for provider records: every vidswarm node serves the DHT.
        kad.set_mode(Some(kad::Mode::Server));

        // Small swarms (2 to 10 nodes): a mesh of one peer is enough to deliver, and flood
        // publishing reaches every subscribed peer even before the mesh forms.
        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
            .mesh_n_low(1)
            .mesh_n(3)
            .mesh_n_high(6)
            .mesh_outbound_min(1)
            .flood_publish(true)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(MAX_ANNOUNCEMENT_BYTES + 4096)
            .build()?;
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_cfg,
        )?;
        let (score, thresholds) =
            super::gossip_score::params(gossipsub::IdentTopic::new(ANNOUNCE_TOPIC).hash());
        gossipsub.with_peer_score(score, thresholds)?;

        let transfer = request_response::Behaviour::with_codec(
            TransferCodec,
            [(
                StreamProtocol::new(TRANSFER_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(cfg.request_timeout)
                .with_max_concurrent_streams(MAX_TRANSFER_STREAMS),
        );

        let limits = ConnectionLimits::default()
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
            .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS))
            .with_max_established_incoming(Some(MAX_INBOUND_CONNECTIONS))
            .with_max_established(Some(MAX_CONNECTIONS));
        let allowed = (!cfg.allowed_peers.is_empty()).then(|| {
            let mut allowed = allow_block_list::Behaviour::<AllowedPeers>::default();
            for peer in &cfg.allowed_peers {
                allowed.allow_peer(*peer);
            }
            allowed
        });
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            memory: memory_connection_limits::Behaviour::with_max_bytes(cfg.max_memory),
            allowed: allowed.into(),
            identify: identify::Behaviour::new(
                // What peers learn is the swarm's external addresses: the operator's, or the
                // listen addresses worth advertising (`advertise.rs`).
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_hide_listen_addrs(true),
            ),
            // Failed pings close the connection (event loop): 5 s apart, 10 s to answer, so a
            // dead connection goes within about 15 s.
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(10)),
            ),
            kad,
            gossipsub,
            transfer,
            have: libp2p_stream::Behaviour::new(),
        })
    }
}

/// Builds the swarm; its transports' bandwidth is recorded in `registry` (bytes per transport
/// stack, the libp2p-metrics crate's `libp2p_bandwidth_bytes`).
pub fn build_swarm(
    key: Keypair,
    cfg: &NetConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<Behaviour>, NetError> {
    let idle = cfg.idle_timeout;
    let swarm_key = cfg.swarm_key;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            super::transport::build(key, swarm_key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| build_error("transports", e))?
        .with_dns()
        .map_err(|e| build_error("DNS resolver", e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| Behaviour::new(key, cfg))
        .map_err(|e| build_error("behaviour", e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(idle)
                .with_dial_concurrency_factor(DIAL_CONCURRENCY)
        })
        .with_connection_timeout(CONNECTION_TIMEOUT)
        .build();
    Ok(swarm)
}

fn build_error(part: &'static str, e: impl std::fmt::Display) -> NetError {
    NetError::Build {
        part,
        reason: e.to_string(),
    }
}
