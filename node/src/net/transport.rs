//! The swarm's transports: TCP (noise, yamux) beside QUIC; or, in a private swarm, TCP alone
//! behind libp2p's pre-shared-key handshake (pnet), which QUIC cannot carry.

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{noise, quic, tcp, yamux, PeerId, Transport};

use super::behaviour::{MAX_STREAMS_PER_CONNECTION, QUIC_HANDSHAKE_TIMEOUT};

/// The largest swarm key file read: Kubo's format is about 100 bytes.
pub const MAX_SWARM_KEY_BYTES: u64 = 1024;

/// A swarm key as Kubo writes `swarm.key`:
/// `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits, one per line.
pub fn parse_swarm_key(text: &str) -> Result<PreSharedKey, String> {
    text.trim().parse::<PreSharedKey>().map_err(|e| {
        format!("not a swarm key (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits): {e}")
    })
}

pub(super) fn build(
    key: &Keypair,
    swarm_key: Option<PreSharedKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = noise::Config::new(key)?;
    let mut yamux = yamux::Config::default();
    yamux.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    if let Some(psk) = swarm_key {
        return Ok(tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed());
    }
    let tcp = tcp
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let mut quic_config = quic::Config::new(key);
    quic_config.handshake_timeout = QUIC_HANDSHAKE_TIMEOUT;
    quic_config.max_concurrent_stream_limit = MAX_STREAMS_PER_CONNECTION as u32;
    let quic = quic::tokio::Transport::new(quic_config)
        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)));
    Ok(quic
        .or_transport(tcp)
        .map(|either, _| either.into_inner())
        .boxed())
}

/// Whether `addr` can be used in a private swarm (TCP only).
pub fn usable_with_swarm_key(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    !addr
        .iter()
        .any(|p| matches!(p, Protocol::Udp(_) | Protocol::QuicV1 | Protocol::Quic))
}
