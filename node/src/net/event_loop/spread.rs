//! New chunks first: a node whose upload is busy declines a chunk it sent to another peer a
//! moment ago (when the asker allows it), so its upload goes to chunks the swarm does not have
//! yet and the peers trade the rest among themselves. A lone seeder then sends each chunk about
//! once before it sends any twice (BitTorrent's super-seeding, decided per request rather than by
//! hiding pieces). An upload that serves nobody else never declines: sending a duplicate beats
//! sending nothing, and the peer that got the chunk may have gone.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use vidswarm_proto::Hash;

/// How long after sending a chunk to one peer a busy node declines it to others: about how long
/// the receiver takes to verify it and tell the swarm (`run::progress_every`, at most 1 s), with
/// room for a slow link.
pub const DECLINE_WINDOW: Duration = Duration::from_secs(2);
/// A node counts as busy while it has sent a chunk to another peer this recently: its upload
/// is shared, so a duplicate would take the place of a new chunk.
pub const BUSY_WINDOW: Duration = Duration::from_millis(250);
/// Entries kept at most; past it the oldest half goes (a bound against peers asking for
/// endless distinct chunks, which are served, not declined).
const MAX_ENTRIES: usize = 1 << 16;

/// The chunks sent in the last [`DECLINE_WINDOW`], to whom and when.
#[derive(Debug, Default)]
pub struct RecentlySent {
    /// By fragment, then offset: a decline names the fragment's other recent chunks.
    sent: BTreeMap<(Hash, u64), (PeerId, Instant)>,
    /// When each peer was last sent a chunk.
    peers: HashMap<PeerId, Instant>,
}

impl RecentlySent {
    /// Whether to decline `peer`'s request for the chunk at `offset` of `fragment`: only if it
    /// allows it, another peer was sent a chunk within [`BUSY_WINDOW`] (the upload is shared),
    /// and another peer got this chunk within [`DECLINE_WINDOW`]. A request that is not
    /// declined is recorded as sent.
    pub fn decline(
        &mut self,
        peer: PeerId,
        fragment: Hash,
        offset: u64,
        may_decline: bool,
        now: Instant,
    ) -> bool {
        let busy = self
            .peers
            .iter()
            .any(|(p, at)| *p != peer && now.duration_since(*at) < BUSY_WINDOW);
        let key = (fragment, offset);
        let recent = self
            .sent
            .get(&key)
            .is_some_and(|(to, at)| *to != peer && now.duration_since(*at) < DECLINE_WINDOW);
        if may_decline && busy && recent {
            return true;
        }
        if self.sent.len() >= MAX_ENTRIES {
            self.sent
                .retain(|_, (_, at)| now.duration_since(*at) < DECLINE_WINDOW);
            if self.sent.len() >= MAX_ENTRIES {
                self.sent.clear();
            }
        }
        if self.peers.len() >= MAX_ENTRIES {
            self.peers
                .retain(|_, at| now.duration_since(*at) < BUSY_WINDOW);
        }
        self.sent.insert(key, (peer, now));
        self.peers.insert(peer, now);
        false
    }

    /// The offsets of `fragment`'s chunks, beside `offset`, that [`RecentlySent::decline`] would
    /// decline to `peer` now (the node being busy): sent to other peers within
    /// [`DECLINE_WINDOW`]. At most `most`, from the lowest offset.
    pub fn also_declined(
        &self,
        peer: PeerId,
        fragment: Hash,
        offset: u64,
        now: Instant,
        most: usize,
    ) -> Vec<u64> {
        self.sent
            .range((fragment, 0)..=(fragment, u64::MAX))
            .filter(|((_, at_offset), (to, at))| {
                *at_offset != offset && *to != peer && now.duration_since(*at) < DECLINE_WINDOW
            })
            .map(|((_, at_offset), _)| *at_offset)
            .take(most)
            .collect()
    }

    /// `peer` left (disconnected, or said goodbye): what it was sent cannot be passed on by it,
    /// so those chunks are no reason to decline, and serving it no longer keeps the upload busy.
    pub fn forget(&mut self, peer: &PeerId) {
        self.sent.retain(|_, (to, _)| to != peer);
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_node_declines_a_chunk_it_just_sent_elsewhere_and_nothing_else() {
        let mut r = RecentlySent::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let f = Hash::of(b"f");
        let t = Instant::now();
        assert!(!r.decline(a, f, 0, true, t), "first send");
        assert!(
            r.decline(b, f, 0, true, t),
            "just sent to a, and a is being served"
        );
        assert!(!r.decline(a, f, 0, true, t), "a again (a retry)");
        assert!(!r.decline(b, f, 16_384, true, t), "another chunk");
        // Sent to b now: a would be declined, unless it does not allow it.
        assert!(r.decline(a, f, 16_384, true, t));
        assert!(!r.decline(a, f, 16_384, false, t), "a does not allow it");
        let later = t + DECLINE_WINDOW;
        assert!(!r.decline(b, f, 0, true, later), "past the window");
    }

    #[test]
    fn a_decline_names_the_fragments_other_chunks_that_would_be_declined() {
        let mut r = RecentlySent::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (f, g) = (Hash::of(b"f"), Hash::of(b"g"));
        let t = Instant::now();
        for offset in [0, 16_384, 32_768] {
            assert!(!r.decline(a, f, offset, true, t));
        }
        assert!(!r.decline(c, f, 49_152, true, t));
        assert!(!r.decline(a, g, 0, true, t), "another fragment");
        assert!(!r.decline(b, f, 65_536, true, t), "b's own chunk");
        assert!(r.decline(b, f, 0, true, t));
        assert_eq!(r.also_declined(b, f, 0, t, 10), [16_384, 32_768, 49_152]);
        assert_eq!(r.also_declined(b, f, 0, t, 1), [16_384], "at most `most`");
        assert_eq!(r.also_declined(a, f, 0, t, 10), [49_152, 65_536]);
        let later = t + DECLINE_WINDOW;
        assert!(
            r.also_declined(b, f, 0, later, 10).is_empty(),
            "past the window"
        );
    }

    #[test]
    fn a_lone_asker_is_never_declined() {
        let mut r = RecentlySent::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let f = Hash::of(b"f");
        let t = Instant::now();
        assert!(!r.decline(a, f, 0, true, t));
        // a got the chunk and left; b asks when nobody else has been served for a while.
        let quiet = t + BUSY_WINDOW;
        assert!(!r.decline(b, f, 0, true, quiet), "only b is served now");
    }

    #[test]
    fn what_a_peer_that_left_was_sent_is_sent_again() {
        let mut r = RecentlySent::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let f = Hash::of(b"f");
        let t = Instant::now();
        assert!(!r.decline(a, f, 0, true, t));
        assert!(!r.decline(c, f, 16_384, true, t));
        r.forget(&a);
        assert!(
            !r.decline(b, f, 0, true, t),
            "a is gone: only b can have it now"
        );
        r.forget(&c);
        r.forget(&b);
        assert!(
            !r.decline(a, f, 16_384, true, t),
            "c is gone, and nobody else is being served"
        );
    }
}
