//! Who holds what, as heard from gossip announcements: video -> fragment index -> peers. A hint,
//! not a promise; the fetcher also asks the DHT and copes with peers that turn out not to answer.
//! A peer's entries go when its last connection closes, so the table lists live holders, and
//! when it has not announced the video for [`AVAILABILITY_TTL`] (announcements come every 15 s
//! by default). Each peer has at most [`MAX_VIDEOS_PER_PEER`] videos in the table: announcements
//! of more are ignored, so one peer cannot grow it without bound.
//! Beside whole fragments it keeps partial ones: a peer fetching a fragment announces which of
//! its chunks it has verified, as a bitmap, and serves those chunks already.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use vidswarm_proto::VideoId;

/// Fragment index -> the peers heard to hold it.
type Holders = BTreeMap<u32, BTreeSet<PeerId>>;
/// Fragment index -> the peers fetching it -> the bitmap of their verified chunks
/// (`PartialFragment::have`'s layout).
type PartialHolders = BTreeMap<u32, HashMap<PeerId, Vec<u8>>>;

/// How long a peer's entries for a video last without a new announcement of it: 20 rounds of
/// the default 15 s re-announcement (`--announce-every` is capped at half of it).
pub const AVAILABILITY_TTL: Duration = Duration::from_secs(5 * 60);
/// Videos one peer may have entries for; announcements of further videos are ignored.
pub const MAX_VIDEOS_PER_PEER: usize = 1024;
/// How often expired entries are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct Availability {
    inner: Arc<RwLock<HashMap<VideoId, Holders>>>,
    partial: Arc<RwLock<HashMap<VideoId, PartialHolders>>>,
    /// When each peer last announced each video, and when expired entries were last swept.
    heard: Arc<Mutex<Heard>>,
}

#[derive(Debug, Default)]
struct Heard {
    of: HashMap<PeerId, HashMap<VideoId, Instant>>,
    swept: Option<Instant>,
}

impl Availability {
    /// `peer` announced `video` at `now`: whether its announcement may enter the table (a peer
    /// with [`MAX_VIDEOS_PER_PEER`] videos in it already gets no new one).
    pub fn heard(&self, video: VideoId, peer: PeerId, now: Instant) -> bool {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let videos = heard.of.entry(peer).or_default();
        if let Some(at) = videos.get_mut(&video) {
            *at = now;
            return true;
        }
        if videos.len() >= MAX_VIDEOS_PER_PEER {
            return false;
        }
        videos.insert(video, now);
        true
    }

    /// Forgets the entries of every (video, peer) not announced within [`AVAILABILITY_TTL`]
    /// of `now`; looks at most every 10 s.
    pub fn expire(&self, now: Instant) {
        let stale: Vec<(VideoId, PeerId)> = {
            let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
            if heard.swept.is_some_and(|t| now < t + SWEEP_EVERY) {
                return;
            }
            heard.swept = Some(now);
            let mut stale = Vec::new();
            for (peer, videos) in heard.of.iter_mut() {
                videos.retain(|video, at| {
                    let fresh = now < *at + AVAILABILITY_TTL;
                    if !fresh {
                        stale.push((*video, *peer));
                    }
                    fresh
                });
            }
            heard.of.retain(|_, videos| !videos.is_empty());
            stale
        };
        for (video, peer) in stale {
            self.forget_entries_of(&video, &peer);
        }
    }

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
        self.heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of
            .remove(peer);
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
        if let Some(videos) = self
            .heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of
            .get_mut(peer)
        {
            videos.remove(video);
        }
        self.forget_entries_of(video, peer);
    }

    fn forget_entries_of(&self, video: &VideoId, peer: &PeerId) {
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
    fn entries_not_announced_again_expire_and_a_peer_has_at_most_its_share_of_videos() {
        let a = Availability::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let (v, w) = (VideoId(Hash::of(b"v")), VideoId(Hash::of(b"w")));
        for (video, peer) in [(v, p), (w, p), (v, q)] {
            assert!(a.heard(video, peer, t0));
            a.record(video, peer, [0]);
        }
        a.record_partial(w, q, 1, &[1]);
        assert!(a.heard(w, q, t0));
        // q announces v again later; p does not.
        let later = t0 + AVAILABILITY_TTL / 2;
        a.heard(v, q, later);
        a.expire(t0 + AVAILABILITY_TTL + Duration::from_secs(1));
        assert_eq!(a.holders(&v, 0), vec![q]);
        assert!(a.holders(&w, 0).is_empty());
        assert!(a.partial_holders(&w, 1).is_empty());
        assert!(!a.knows(&w));
        let t2 = later + AVAILABILITY_TTL + Duration::from_secs(1);
        a.expire(t2);
        assert!(a.holders(&v, 0).is_empty(), "q's v expires in its turn");
        // Looked at again only SWEEP_EVERY later.
        assert!(a.heard(v, q, t0));
        a.record(v, q, [0]);
        a.expire(t2 + SWEEP_EVERY / 2);
        assert_eq!(a.holders(&v, 0), vec![q]);
        a.expire(t2 + SWEEP_EVERY);
        assert!(a.holders(&v, 0).is_empty());

        let r = PeerId::random();
        for i in 0..MAX_VIDEOS_PER_PEER {
            assert!(a.heard(VideoId(Hash::of(&i.to_le_bytes())), r, t0));
        }
        assert!(!a.heard(VideoId(Hash::of(b"one more")), r, t0));
        assert!(
            a.heard(VideoId(Hash::of(&0usize.to_le_bytes())), r, t0),
            "a known one refreshes"
        );
        assert!(
            a.heard(VideoId(Hash::of(b"one more")), p, t0),
            "others are not affected"
        );
    }

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
