//! Who holds what, as heard from gossip announcements: video -> fragment index -> peers. A hint,
//! not a promise; the fetcher also asks the DHT and copes with peers that turn out not to answer.
//! A peer's entries go when its last connection closes, so the table lists live holders.
//! Beside whole fragments it keeps partial ones: a peer fetching a fragment announces which of
//! its chunks it has verified, as a bitmap, and serves those chunks already.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use libp2p::PeerId;
use vidswarm_proto::VideoId;

/// Fragment index -> the peers heard to hold it.
type Holders = BTreeMap<u32, BTreeSet<PeerId>>;
/// Fragment index -> the peers fetching it -> the bitmap of their verified chunks
/// (`PartialFragment::have`'s layout).
type PartialHolders = BTreeMap<u32, HashMap<PeerId, Vec<u8>>>;

#[derive(Debug, Clone, Default)]
pub struct Availability {
    inner: Arc<RwLock<HashMap<VideoId, Holders>>>,
    partial: Arc<RwLock<HashMap<VideoId, PartialHolders>>>,
}

impl Availability {
    pub fn record(&self, video: VideoId, peer: PeerId, fragments: impl IntoIterator<Item = u32>) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(video).or_default();
        let mut whole = Vec::new();
        for index in fragments {
            entry.entry(index).or_default().insert(peer);
            whole.push(index);
        }
        drop(map);
        let mut partial = self.partial.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = partial.get_mut(&video) {
            for index in whole {
                if let Some(peers) = v.get_mut(&index) {
                    peers.remove(&peer);
                }
            }
            v.retain(|_, peers| !peers.is_empty());
        }
    }

    /// `peer` has verified the chunks set in `have` of fragment `index` (and serves them). Bits
    /// only add up: a late announcement never takes back a chunk an earlier one gave.
    pub fn record_partial(&self, video: VideoId, peer: PeerId, index: u32, have: &[u8]) {
        if self.holders(&video, index).contains(&peer) {
            return;
        }
        let mut partial = self.partial.write().unwrap_or_else(|p| p.into_inner());
        let bits = partial
            .entry(video)
            .or_default()
            .entry(index)
            .or_default()
            .entry(peer)
            .or_default();
        if bits.len() < have.len() {
            bits.resize(have.len(), 0);
        }
        for (b, h) in bits.iter_mut().zip(have) {
            *b |= h;
        }
    }

    /// The peers fetching fragment `index` of `video`, with their verified chunks' bitmaps.
    pub fn partial_holders(&self, video: &VideoId, index: u32) -> Vec<(PeerId, Vec<u8>)> {
        let partial = self.partial.read().unwrap_or_else(|p| p.into_inner());
        partial
            .get(video)
            .and_then(|v| v.get(&index))
            .map(|peers| peers.iter().map(|(p, b)| (*p, b.clone())).collect())
            .unwrap_or_default()
    }

    fn forget_partial(&self, video: Option<&VideoId>, peer: &PeerId) {
        let mut partial = self.partial.write().unwrap_or_else(|p| p.into_inner());
        for (v, holders) in partial.iter_mut() {
            if video.is_some_and(|only| only != v) {
                continue;
            }
            for peers in holders.values_mut() {
                peers.remove(peer);
            }
            holders.retain(|_, peers| !peers.is_empty());
        }
        partial.retain(|_, holders| !holders.is_empty());
    }

    /// Forgets what `peer` announced (it disconnected). Its announcements come again when it
    /// reconnects: the announcer re-announces when a peer subscribes, and every 15 s.
    pub fn forget_peer(&self, peer: &PeerId) {
        self.forget_partial(None, peer);
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for holders in map.values_mut() {
            for peers in holders.values_mut() {
                peers.remove(peer);
            }
            holders.retain(|_, peers| !peers.is_empty());
        }
        map.retain(|_, holders| !holders.is_empty());
    }

    /// Forgets that `peer` holds anything of `video` (it said goodbye).
    pub fn forget_peer_of(&self, video: &VideoId, peer: &PeerId) {
        self.forget_partial(Some(video), peer);
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(holders) = map.get_mut(video) {
            for peers in holders.values_mut() {
                peers.remove(peer);
            }
            holders.retain(|_, peers| !peers.is_empty());
            if holders.is_empty() {
                map.remove(video);
            }
        }
    }

    pub fn holders(&self, video: &VideoId, index: u32) -> Vec<PeerId> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(video)
            .and_then(|v| v.get(&index))
            .map(|peers| peers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every peer that announced any fragment of `video`.
    pub fn peers_with(&self, video: &VideoId) -> Vec<PeerId> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut peers: BTreeSet<PeerId> = BTreeSet::new();
        if let Some(v) = map.get(video) {
            for holders in v.values() {
                peers.extend(holders);
            }
        }
        peers.into_iter().collect()
    }

    /// Whether any connected peer announced a fragment of `video`, whole or in part.
    pub fn held_anywhere(&self, video: &VideoId) -> bool {
        let whole = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if whole
            .get(video)
            .is_some_and(|v| v.values().any(|p| !p.is_empty()))
        {
            return true;
        }
        drop(whole);
        let partial = self.partial.read().unwrap_or_else(|p| p.into_inner());
        partial
            .get(video)
            .is_some_and(|v| v.values().any(|p| !p.is_empty()))
    }

    /// Whether any connected peer announced `video`.
    pub fn knows(&self, video: &VideoId) -> bool {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(video)
    }

    pub fn videos(&self) -> Vec<VideoId> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.keys().copied().collect()
    }

    /// Per fragment index of `video`, the peers heard to hold it.
    pub fn of_video(&self, video: &VideoId) -> BTreeMap<u32, Vec<PeerId>> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(video)
            .map(|v| {
                v.iter()
                    .map(|(i, peers)| (*i, peers.iter().copied().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidswarm_proto::Hash;

    #[test]
    fn partial_holders_add_up_and_go_when_the_fragment_is_held_or_the_peer_leaves() {
        let a = Availability::default();
        let video = VideoId(Hash::of(b"v"));
        let (p, q) = (PeerId::random(), PeerId::random());
        a.record_partial(video, p, 2, &[0b0000_0011]);
        a.record_partial(video, p, 2, &[0b0000_0100, 0b1]);
        a.record_partial(video, q, 2, &[0b1000_0000]);
        let mut holders = a.partial_holders(&video, 2);
        holders.sort();
        let mut expected = vec![(p, vec![0b0000_0111, 0b1]), (q, vec![0b1000_0000])];
        expected.sort();
        assert_eq!(holders, expected, "bits only add up");
        // p now holds fragment 2 whole: no longer a partial holder of it.
        a.record(video, p, [2]);
        assert_eq!(a.partial_holders(&video, 2), vec![(q, vec![0b1000_0000])]);
        // A whole holder's later progress message for it does not make it partial again.
        a.record_partial(video, p, 2, &[0b1]);
        assert_eq!(a.partial_holders(&video, 2).len(), 1);
        a.forget_peer(&q);
        assert!(a.partial_holders(&video, 2).is_empty());
        a.record_partial(video, q, 3, &[0b1]);
        a.forget_peer_of(&video, &q);
        assert!(a.partial_holders(&video, 3).is_empty());
    }
}
