//! One chunk at a time per peer: a peer's chunk requests are answered in the order they came, the
//! next one once the previous response is written out. Answered all at once, a peer's requests
//! would share the link and every chunk would complete late (four requests of 256 KiB over a
//! 14 Mbit/s share: the first chunk after 600 ms instead of 150 ms); in turn, each is usable, and
//! can be passed on, as early as the link allows (BitTorrent's peers answer a connection's
//! requests in order, too). The responses still follow one another without a gap: a response
//! counts as written once it is in the connection's buffers.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use libp2p::PeerId;

/// Chunk requests of one peer that may wait for their turn; past it they are answered `Busy`.
pub const MAX_WAITING_PER_PEER: usize = 32;

struct PeerUploads<K, V> {
    /// The request whose response is being read or written now.
    current: Option<K>,
    waiting: VecDeque<(K, V)>,
}

/// What to do with a chunk request that just came.
pub(super) enum Admit<K, V> {
    /// Its peer's turn: serve it now.
    Now(K, V),
    /// It waits behind the peer's earlier requests.
    Queued,
    /// The peer has too many waiting: answer `Busy`.
    Full(V),
}

/// The turns, by request id `K` (the swarm's inbound request id), each request carrying `V`
/// (the request and its response channel).
pub(super) struct Uploads<K, V> {
    peers: HashMap<PeerId, PeerUploads<K, V>>,
    /// Which peer each current request belongs to.
    current: HashMap<K, PeerId>,
    waiting: usize,
}

impl<K, V> Default for Uploads<K, V> {
    fn default() -> Self {
        Self {
            peers: HashMap::new(),
            current: HashMap::new(),
            waiting: 0,
        }
    }
}

impl<K: Copy + Eq + Hash, V> Uploads<K, V> {
    pub fn admit(&mut self, peer: PeerId, id: K, request: V) -> Admit<K, V> {
        let p = self.peers.entry(peer).or_insert_with(|| PeerUploads {
            current: None,
            waiting: VecDeque::new(),
        });
        if p.current.is_none() {
            p.current = Some(id);
            self.current.insert(id, peer);
            return Admit::Now(id, request);
        }
        if p.waiting.len() >= MAX_WAITING_PER_PEER {
            return Admit::Full(request);
        }
        p.waiting.push_back((id, request));
        self.waiting += 1;
        Admit::Queued
    }

    /// Request `id`'s response is written out (or failed): its peer's next request, if any, to
    /// serve now. `None` for ids that never held a turn (manifests, refusals before admission).
    pub fn done(&mut self, id: K) -> Option<(PeerId, K, V)> {
        let peer = self.current.remove(&id)?;
        let p = self.peers.get_mut(&peer)?;
        p.current = None;
        match p.waiting.pop_front() {
            Some((next, request)) => {
                self.waiting -= 1;
                p.current = Some(next);
                self.current.insert(next, peer);
                Some((peer, next, request))
            }
            None => {
                self.peers.remove(&peer);
                None
            }
        }
    }

    /// The peer is gone: what it had waiting is dropped (its streams are closed anyway).
    pub fn forget(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.remove(peer) {
            self.waiting -= p.waiting.len();
            if let Some(id) = p.current {
                self.current.remove(&id);
            }
        }
    }

    /// Requests waiting for their turn, over all peers.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_served_one_request_at_a_time_in_order_and_others_meanwhile() {
        let mut u: Uploads<u32, &str> = Uploads::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(matches!(u.admit(a, 1, "a1"), Admit::Now(1, "a1")));
        assert!(matches!(u.admit(a, 2, "a2"), Admit::Queued));
        assert!(matches!(u.admit(a, 3, "a3"), Admit::Queued));
        assert!(
            matches!(u.admit(b, 4, "b1"), Admit::Now(4, "b1")),
            "another peer's turn"
        );
        assert_eq!(u.waiting(), 2);
        assert_eq!(u.done(1), Some((a, 2, "a2")));
        assert_eq!(u.done(99), None, "an id that held no turn");
        assert_eq!(u.done(2), Some((a, 3, "a3")));
        assert_eq!(u.done(3), None);
        assert!(
            matches!(u.admit(a, 5, "a4"), Admit::Now(5, _)),
            "a's turn is free again"
        );
        assert_eq!(u.waiting(), 0);
    }

    #[test]
    fn a_peer_with_too_many_waiting_is_refused_and_a_gone_peer_is_forgotten() {
        let mut u: Uploads<usize, usize> = Uploads::default();
        let a = PeerId::random();
        assert!(matches!(u.admit(a, 0, 0), Admit::Now(..)));
        for i in 1..=MAX_WAITING_PER_PEER {
            assert!(matches!(u.admit(a, i, i), Admit::Queued));
        }
        assert!(matches!(u.admit(a, 999, 999), Admit::Full(999)));
        u.forget(&a);
        assert_eq!(u.waiting(), 0);
        assert_eq!(u.done(0), None, "forgotten with its peer");
    }
}
