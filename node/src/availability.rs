//! Who holds what, as heard from gossip announcements: video -> fragment index -> peers. A hint,
//! not a promise; the fetcher also asks the DHT and copes with peers that turn out not to answer.
//! A peer's entries go when its last connection closes, so the table lists live holders.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use libp2p::PeerId;
use vidswarm_proto::VideoId;

/// Fragment index -> the peers heard to hold it.
type Holders = BTreeMap<u32, BTreeSet<PeerId>>;

#[derive(Debug, Clone, Default)]
pub struct Availability {
    inner: Arc<RwLock<HashMap<VideoId, Holders>>>,
}

impl Availability {
    pub fn record(&self, video: VideoId, peer: PeerId, fragments: impl IntoIterator<Item = u32>) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(video).or_default();
        for index in fragments {
            entry.entry(index).or_default().insert(peer);
        }
    }

    /// Forgets what `peer` announced (it disconnected). Its announcements come again when it
    /// reconnects: the announcer re-announces when a peer subscribes, and every 15 s.
    pub fn forget_peer(&self, peer: &PeerId) {
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
