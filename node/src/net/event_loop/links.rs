//! What this node sees of each connected peer: the connection's address and direction, its
//! ping round trip, and the fragment bytes exchanged (what `/api/v1/peers` and the swarm page
//! show). One entry per connected peer, made at its first connection and gone with its last.

use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use super::EventLoop;

/// One connected peer, as [`crate::net::Client::peer_links`] reports it.
#[derive(Debug, Clone)]
pub struct PeerLink {
    pub peer: PeerId,
    /// The remote address of the first connection.
    pub address: Multiaddr,
    /// `tcp`, `quic` or `other`.
    pub transport: &'static str,
    /// Whether this node dialed it.
    pub outbound: bool,
    pub since: Instant,
    /// The latest ping round trip.
    pub rtt: Option<Duration>,
    /// Fragment bytes received from it and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn transport_of(addr: &Multiaddr) -> &'static str {
    if addr.iter().any(|p| matches!(p, Protocol::QuicV1)) {
        "quic"
    } else if addr.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
        "tcp"
    } else {
        "other"
    }
}

impl EventLoop {
    pub(super) fn link_up(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
        let address = endpoint.get_remote_address().clone();
        self.links.entry(peer).or_insert_with(|| PeerLink {
            peer,
            transport: transport_of(&address),
            address,
            outbound: endpoint.is_dialer(),
            since: Instant::now(),
            rtt: None,
            bytes_in: 0,
            bytes_out: 0,
        });
    }

    pub(super) fn link_down(&mut self, peer: &PeerId) {
        self.links.remove(peer);
    }

    pub(super) fn link_rtt(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(link) = self.links.get_mut(peer) {
            link.rtt = Some(rtt);
        }
    }

    pub(super) fn link_bytes(&mut self, peer: &PeerId, received: usize, sent: usize) {
        if let Some(link) = self.links.get_mut(peer) {
            link.bytes_in += received as u64;
            link.bytes_out += sent as u64;
        }
    }
}
