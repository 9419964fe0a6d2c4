//! What this node knows of its peers' reachability, node-wide and shared by every fetch: who is
//! connected now, and who failed to connect recently (skipped for a back-off period that doubles
//! with each failure, 1 s up to [`MAX_BACKOFF`], and is forgotten on the next success).
//!
//! Work goes only to connected peers; a holder that is not connected is dialed in the background
//! (unless backed off) and gets work once connected. So a peer that left costs one failed dial,
//! never a fetch's wait.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The longest a peer that keeps failing is skipped before it is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a peer is skipped after its first failure; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct Peers {
    inner: Arc<RwLock<State>>,
}

#[derive(Debug, Default)]
struct State {
    connected: HashSet<PeerId>,
    failing: HashMap<PeerId, Backoff>,
    /// Peers that said goodbye and have not connected since.
    left: HashSet<PeerId>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: Instant,
    next: Duration,
}

impl Peers {
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.read().connected.contains(peer)
    }

    /// Every peer connected now.
    pub fn connected_now(&self) -> Vec<PeerId> {
        self.read().connected.iter().copied().collect()
    }

    /// How many peers are connected now.
    pub fn connected_count(&self) -> usize {
        self.read().connected.len()
    }

    /// Whether `peer` failed recently enough to be left alone for now.
    pub fn is_backed_off(&self, peer: &PeerId) -> bool {
        self.read()
            .failing
            .get(peer)
            .is_some_and(|b| Instant::now() < b.until)
    }

    pub(crate) fn connected(&self, peer: PeerId) {
        let mut state = self.write();
        state.connected.insert(peer);
        state.failing.remove(&peer);
        state.left.remove(&peer);
    }

    pub(crate) fn disconnected(&self, peer: &PeerId) {
        self.write().connected.remove(peer);
    }

    /// A dial of `peer` failed or did not finish in time: skip it for a while, longer each time.
    pub(crate) fn failed(&self, peer: PeerId) {
        let now = Instant::now();
        let mut state = self.write();
        if state.connected.contains(&peer) {
            return; // Another connection is up: the peer is reachable.
        }
        let backoff = state.failing.entry(peer).or_insert(Backoff {
            until: now,
            next: FIRST_BACKOFF,
        });
        backoff.until = now + backoff.next;
        backoff.next = (backoff.next * 2).min(MAX_BACKOFF);
        // Bounded: the table forgets peers whose back-off ran out long ago.
        if state.failing.len() > 4096 {
            state.failing.retain(|_, b| now < b.until + MAX_BACKOFF);
        }
    }

    /// `peer` said it is leaving: it is not dialed for [`MAX_BACKOFF`] unless it connects again
    /// (a restarted node dials its bootstrap peers itself).
    pub(crate) fn left(&self, peer: PeerId) {
        let mut state = self.write();
        state.failing.insert(
            peer,
            Backoff {
                until: Instant::now() + MAX_BACKOFF,
                next: MAX_BACKOFF,
            },
        );
        if state.left.len() >= 4096 {
            state.left.clear(); // Bounded; forgetting a goodbye only costs a failed dial.
        }
        state.left.insert(peer);
    }

    /// Whether `peer` said goodbye and has not connected since.
    pub fn has_left(&self, peer: &PeerId) -> bool {
        self.read().left.contains(peer)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_peer_is_backed_off_longer_each_time_and_forgiven_on_connect() {
        let peers = Peers::default();
        let p = PeerId::random();
        assert!(!peers.is_backed_off(&p));
        peers.failed(p);
        assert!(peers.is_backed_off(&p));
        let first = peers.read().failing[&p].next;
        peers.failed(p);
        assert!(peers.read().failing[&p].next > first);
        for _ in 0..20 {
            peers.failed(p);
        }
        assert_eq!(peers.read().failing[&p].next, MAX_BACKOFF);
        peers.connected(p);
        assert!(peers.is_connected(&p) && !peers.is_backed_off(&p));
        // A failed extra dial of a connected peer does not back it off.
        peers.failed(p);
        assert!(!peers.is_backed_off(&p));
        peers.disconnected(&p);
        assert!(!peers.is_connected(&p));
        // A peer that said goodbye is left alone until it connects again.
        peers.left(p);
        assert!(peers.is_backed_off(&p) && peers.has_left(&p));
        peers.connected(p);
        assert!(!peers.is_backed_off(&p) && !peers.has_left(&p));
    }
}
