//! Reaching peers: background dials of holders that are not connected (bounded in time, backed off
//! when they fail: `peers.rs`), forgetting addresses that failed, and which of a peer's advertised
//! addresses are worth keeping.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;
use tracing::debug;

use super::EventLoop;

/// A background dial that has not connected within this long counts as failed. The transports
/// give up sooner (`CONNECTION_TIMEOUT`, `QUIC_HANDSHAKE_TIMEOUT` in `behaviour.rs`); this is the
/// backstop for a dial that never reports back.
pub const DIAL_TIMEOUT: Duration =
    Duration::from_secs(super::super::behaviour::CONNECTION_TIMEOUT.as_secs() + 1);

impl EventLoop {
    /// Dials `peer` in the background unless it is connected, being dialed, or backed off.
    pub(super) fn connect(&mut self, peer: PeerId) {
        if peer == self.local()
            || self.swarm.is_connected(&peer)
            || self.dialing.contains_key(&peer)
            || self.peers.is_backed_off(&peer)
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dialing.insert(peer, Instant::now() + DIAL_TIMEOUT);
            }
            Err(e) => {
                debug!(%peer, error = %e, "cannot dial");
                self.peers.failed(peer);
            }
        }
    }

    /// Dials that did not connect in time: the peer is backed off (the dial itself may go on).
    pub(super) fn expire_dials(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .dialing
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.dialing.remove(&peer);
            debug!(%peer, "dial timed out");
            self.peers.failed(peer);
        }
    }

    /// A dial failed: back the peer off and forget the addresses that failed, so they are not
    /// dialed again (a restarted peer's old address, an interface others cannot reach, an
    /// address another peer now holds). Kademlia itself keeps a peer's last address however
    /// often it fails, and keeps any address that answered with another peer's identity.
    pub(super) fn on_dial_failed(&mut self, peer: PeerId, error: &DialError) {
        self.dialing.remove(&peer);
        self.peers.failed(peer);
        let failed: Vec<Multiaddr> = match error {
            DialError::Transport(attempts) => attempts.iter().map(|(a, _)| a.clone()).collect(),
            DialError::WrongPeerId { address, .. } => vec![address.clone()],
            _ => Vec::new(),
        };
        for addr in failed {
            debug!(%peer, %addr, "forgetting an address that failed");
            let addr = without_p2p(&addr);
            self.swarm.behaviour_mut().kad.remove_address(&peer, &addr);
        }
    }

    /// What a live peer says its addresses are now (identify) replaces what the routing table
    /// had for it: an address it no longer has (an old IP) is not kept, dialed or passed on to
    /// other peers' lookups.
    pub(super) fn set_addresses(&mut self, peer: PeerId, current: Vec<Multiaddr>) {
        if current.is_empty() {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        for addr in &current {
            kad.add_address(&peer, addr.clone());
        }
        let key = libp2p::kad::KBucketKey::from(peer);
        let known: Vec<Multiaddr> = kad
            .kbucket(peer)
            .and_then(|bucket| {
                bucket
                    .iter()
                    .find(|e| *e.node.key == key)
                    .map(|e| e.node.value.iter().cloned().collect())
            })
            .unwrap_or_default();
        let current: Vec<Multiaddr> = current.iter().map(without_p2p).collect();
        for addr in known {
            let addr = without_p2p(&addr);
            if !current.contains(&addr) {
                debug!(%peer, %addr, "forgetting an address the peer no longer has");
                kad.remove_address(&peer, &addr);
            }
        }
    }

    pub(super) fn on_connected(&mut self, peer: PeerId) {
        self.dialing.remove(&peer);
        self.peers.connected(peer);
    }
}

/// Which of a peer's advertised addresses to keep for dialing it: never unspecified ones, and its
/// loopback ones only when it has nothing else (another host's 127.0.0.1 is not that host).
pub(super) fn worth_dialing(addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let is = |addr: &Multiaddr, test: fn(&Protocol) -> bool| addr.iter().any(|p| test(&p));
    let loopback = |p: &Protocol| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    };
    let unspecified = |p: &Protocol| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    };
    let addrs: Vec<Multiaddr> = addrs.into_iter().filter(|a| !is(a, unspecified)).collect();
    if addrs.iter().all(|a| is(a, loopback)) {
        return addrs;
    }
    addrs.into_iter().filter(|a| !is(a, loopback)).collect()
}

/// `addr` without a trailing `/p2p/<peer>` (how the routing table keeps addresses).
fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_remote_peers_loopback_and_unspecified_addresses_are_not_kept() {
        let kept = worth_dialing(vec![
            a("/ip4/127.0.0.1/tcp/1"),
            a("/ip4/0.0.0.0/tcp/1"),
            a("/ip4/10.0.0.7/tcp/1"),
            a("/ip6/::1/tcp/1"),
        ]);
        assert_eq!(kept, vec![a("/ip4/10.0.0.7/tcp/1")]);
        // A peer that only has loopback (tests, one host) keeps it.
        let only = vec![a("/ip4/127.0.0.1/tcp/1"), a("/ip4/127.0.0.1/udp/1/quic-v1")];
        assert_eq!(worth_dialing(only.clone()), only);
    }
}
