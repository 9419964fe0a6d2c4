//! The download's state and its steps, with no I/O: which chunk is asked of whom ([`Download::hand_out`]),
//! and what each answer changes ([`Download::on_outcome`]). The driver (`run.rs`) does the asking
//! and the writing; unit tests drive this directly.
//!
//! Policy: the rarest unfinished fragment first (ties broken at random per download, so peers
//! starting together ask the seeder for different fragments and can then trade them), each chunk to
//! the least busy usable holder, with a window of requests in flight per peer: what it delivered
//! in the last [`RATE_WINDOW`], plus one, at most `per_peer` (TCP's slow start, per peer: a fast
//! holder gets many, one shared by many askers few). End game: once every
//! chunk is handed out and at most [`ENDGAME_IN_FLIGHT`] requests are in flight, each outstanding
//! chunk is also asked of a second holder and the first answer wins, so a slow or stalled peer costs
//! nothing instead of up to a request timeout. The fragment order is [`Download::order`], the one
//! place a priority policy plugs in: while someone plays the video, the [`PLAYBACK_WINDOW`]
//! fragments from the playhead on go first, in playback order (the next one is the most urgent),
//! and the rest rarest first behind them. Urgent chunks go to the holder expected to answer
//! soonest (its recent answer time, times the requests it has waiting), and the fragment at the
//! playhead has an end game of its own: once all its chunks are out, each is also asked of a
//! second holder, however much else is in flight (libtorrent's time-critical pieces).
//!
//! Peers that are fetching a fragment too serve the chunks they have verified (their bitmaps come
//! on the progress streams). The holders of whole fragments (often a lone seeder) are asked
//! first, for the chunks with the fewest known copies over all unfinished fragments at once, in
//! an order random among equals and each download's own, so the seeder's upload goes to new
//! chunks that the fetchers then trade (BitTorrent's rarest piece first, per chunk); the fetching
//! peers are asked for the rest of what they have. Each download starts a fragment at a random chunk, so peers that start
//! together on one fragment ask each other for different chunks; a fragment being played goes in
//! order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use fragment::Fragment;
use libp2p::PeerId;
use vidswarm_proto::wire::{self, PartialFragment};
use vidswarm_proto::{Hash, Manifest};

/// Unfinished fragments a download has begun at most (the playback window's aside): each holds
/// a temp file and a reader open, so a video of thousands of fragments spread over hundreds of
/// peers costs at most this many pairs of descriptors, not one per fragment.
pub const MAX_OPEN_FRAGMENTS: usize = 64;

/// Failed requests (timeouts, refusals) after which a peer is not asked again in this download.
pub const MAX_PEER_FAILURES: u32 = 3;
/// How far back a peer's answers count towards its window of requests ([`Peer::window`]): about
/// as long as a request should wait at a holder before its turn, so a holder shared by many
/// askers gets few requests from each (a fixed 4 from each of 31 askers queued 12 s at a 20 Mbit/s
/// upload, past the 10 s request timeout: docs/performance.md), and a fast one many.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How long a peer that answered `Busy` is left alone.
pub const BUSY_BACKOFF: Duration = Duration::from_millis(50);
/// End game threshold: requests in flight once everything is handed out. Each second request
/// costs a chunk sent twice: with 16, each fetch on the shaped links of `scripts/bench-wan.sh`
/// received about 3 MiB twice, and the home scenario took 0.6 s longer (docs/performance.md).
pub const ENDGAME_IN_FLIGHT: usize = 4;
/// Fragments from the playhead on that go before all others while the video plays.
pub const PLAYBACK_WINDOW: u32 = 3;
/// How long a peer that declined a chunk (it sent it elsewhere a moment ago) is not asked for
/// it again.
pub const DECLINE_BACKOFF: Duration = Duration::from_secs(1);
/// How long a chunk named in a decline of another (`also_declined`) is not asked of that peer:
/// about two progress messages, the time the peer that has it takes to say so. Shorter than
/// [`DECLINE_BACKOFF`], so a fetch left with only named chunks is not idle for long.
pub const NAMED_BACKOFF: Duration = Duration::from_millis(500);
/// How far into a fragment's to-do list a hand-out looks for a chunk a given peer has: bounds
/// the work per hand-out on fragments of thousands of chunks.
const SCAN: usize = 256;

/// One chunk asked of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRequest {
    pub peer: PeerId,
    pub fragment: u32,
    pub chunk: u32,
    /// The fragment's hash: what the peer is asked for.
    pub hash: Hash,
    pub offset: u64,
    pub len: u32,
    /// When it was handed out (how fast the peer answers is learned from it).
    pub asked_at: Instant,
    /// Whether the peer may decline it (see `Request::Chunk`): not for chunks a viewer waits
    /// for, nor for the end game's.
    pub may_decline: bool,
}

/// What became of one chunk request, as far as the schedule cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and written.
    Stored,
    /// The fragment was complete before this (duplicate) answer came.
    Redundant,
    /// Wrong bytes: the sender is excluded.
    BadBytes(String),
    NotHeld,
    Busy,
    /// Sent to another peer a moment ago: ask the peers that have it now. `also`: the offsets
    /// of the fragment's other chunks the peer would decline now too.
    Declined {
        also: Vec<u64>,
    },
    Failed(String),
}

/// What an outcome meant, for the driver to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing new (a failure to retry, a duplicate).
    Nothing,
    /// A chunk counted; `complete` when it was its fragment's last.
    Gained { bytes: u32, complete: bool },
    /// The peer sent wrong bytes and is excluded from this download.
    Misbehaved { reason: String },
    /// The peer failed too often and is not asked again.
    GaveUp { reason: String },
}

#[derive(Default)]
struct Peer {
    in_flight: usize,
    failures: u32,
    excluded: bool,
    /// Answered `Busy`: not asked again before this.
    cool_until: Option<Instant>,
    received: u64,
    /// How long its recent verified answers took (a moving average).
    latency: Option<Duration>,
    /// When its answers with data came, over the last [`RATE_WINDOW`] (its rate to us).
    delivered: VecDeque<Instant>,
}

impl Peer {
    /// Requests it may have in flight: what it delivered in the last [`RATE_WINDOW`], plus
    /// `first` (1: so a peer that answers grows its window, and an unmeasured one gets a first
    /// request), at most `per_peer`.
    fn window(&self, (per_peer, first): (usize, usize), now: Instant) -> usize {
        // In arrival order: the old ones are a prefix.
        let old = self
            .delivered
            .partition_point(|t| now.saturating_duration_since(*t) >= RATE_WINDOW);
        let recent = self.delivered.len() - old;
        (recent + first).min(per_peer)
    }

    fn usable(&self, windows: (usize, usize), now: Instant) -> bool {
        !self.excluded
            && self.in_flight < self.window(windows, now)
            && self.cool_until.is_none_or(|t| t <= now)
    }

    fn on_delivery(&mut self, now: Instant) {
        while self
            .delivered
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.delivered.pop_front();
        }
        self.delivered.push_back(now);
    }
}

pub struct Download {
    chunk_size: u32,
    per_peer: usize,
    /// A peer's window before it answered anything: 1 (tests of other rules open it to
    /// `per_peer`).
    first_window: usize,
    fragments: BTreeMap<u32, Fragment>,
    peers: HashMap<PeerId, Peer>,
    /// Who is being asked for each outstanding chunk (two peers in the end game).
    asked: HashMap<(u32, u32), Vec<PeerId>>,
    in_flight: usize,
    salt: std::hash::RandomState,
    /// The fragment a viewer plays (or seeks to) now, if any.
    playhead: Option<u32>,
    tally: Tally,
}

impl Download {
    /// A download of the `missing` fragments of `manifest` (indices it has).
    pub fn new(manifest: &Manifest, missing: &[u32], per_peer: usize, now: Instant) -> Self {
        let salt = std::hash::RandomState::new();
        let fragments = missing
            .iter()
            .filter_map(|&i| manifest.fragments.get(i as usize).map(|f| (i, f)))
            .map(|(i, f)| {
                let chunks = f.chunks.len() as u32;
                // A random first chunk: peers that start this fragment together ask for
                // different chunks, and then have something to trade.
                let start = (salt.hash_one(i) % u64::from(chunks.max(1))) as u32;
                let fragment = Fragment {
                    hash: f.blake3,
                    size: f.size,
                    chunks,
                    todo: (start..chunks).chain(0..start).collect(),
                    got: vec![false; chunks as usize],
                    done: 0,
                    holders: vec![],
                    partial: HashMap::new(),
                    denied: BTreeSet::new(),
                    declined: HashMap::new(),
                    declined_once: BTreeSet::new(),
                    waited_once: BTreeSet::new(),
                    refused: BTreeSet::new(),
                    sources: BTreeSet::new(),
                    started: now,
                    opened: false,
                };
                (i, fragment)
            })
            .collect();
        Self {
            chunk_size: manifest.chunk_size,
            per_peer: per_peer.max(1),
            first_window: 1,
            fragments,
            peers: HashMap::new(),
            asked: HashMap::new(),
            in_flight: 0,
            salt,
            playhead: None,
            tally: Tally::default(),
        }
    }

    /// Counts the chunks of fragment `index` that an earlier fetch verified (`have[k]`) as
    /// done: they are not handed out. Whether the fragment is now complete (to be committed).
    pub fn resume(&mut self, index: u32, have: &[bool]) -> bool {
        let Some(f) = self.fragments.get_mut(&index) else {
            return false;
        };
        for (k, _) in have.iter().enumerate().filter(|(_, h)| **h) {
            if let Some(got) = f.got.get_mut(k).filter(|g| !**g) {
                *got = true;
                f.done += 1;
            }
        }
        let got = &f.got;
        f.todo.retain(|k| !got[*k as usize]);
        f.complete()
    }

    pub fn is_complete(&self) -> bool {
        self.fragments.values().all(Fragment::complete)
    }

    /// Whether fragment `index` is complete (or not one this download fetches).
    pub fn is_fragment_complete(&self, index: u32) -> bool {
        self.fragments.get(&index).is_none_or(Fragment::complete)
    }

    /// The unfinished fragments, with their hashes (what holders are looked up for).
    pub fn unfinished(&self) -> Vec<(u32, Hash)> {
        self.fragments
            .iter()
            .filter(|(_, f)| !f.complete())
            .map(|(i, f)| (*i, f.hash))
            .collect()
    }

    /// Peers known to hold fragment `index` or some of its chunks, not given up on in this
    /// download: whole holders, and fetching peers with at least one chunk of it.
    pub fn known_holders(&self, index: u32) -> usize {
        let Some(f) = self.fragments.get(&index) else {
            return 0;
        };
        let partial = f
            .partial
            .iter()
            .filter(|(_, h)| h.count > 0)
            .map(|(p, _)| p);
        f.holders
            .iter()
            .chain(partial)
            .filter(|p| self.peers.get(p).is_none_or(|s| !s.excluded))
            .count()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds holders of fragment `index` not known yet (nor known not to hold it).
    pub fn add_holders(&mut self, index: u32, peers: impl IntoIterator<Item = PeerId>) {
        if let Some(f) = self.fragments.get_mut(&index) {
            for peer in peers {
                if !f.holders.contains(&peer) && !f.refused.contains(&peer) {
                    f.holders.push(peer);
                    f.partial.remove(&peer);
                }
            }
        }
    }

    /// Adds what peers fetching fragment `index` have verified: `(peer, bitmap)`, the bitmap in
    /// `PartialFragment::have`'s layout. Bits only add up, except chunks a peer was asked for
    /// and did not have.
    pub fn add_partial_holders(&mut self, index: u32, peers: Vec<(PeerId, Vec<u8>)>) {
        let Some(f) = self.fragments.get_mut(&index) else {
            return;
        };
        for (peer, bits) in peers {
            if f.holders.contains(&peer) {
                continue;
            }
            let chunks = f.chunks as usize;
            let holder = f.partial.entry(peer).or_default();
            holder.have.resize(chunks, false);
            for k in 0..chunks.min(bits.len() * 8) as u32 {
                if PartialFragment::bit(&bits, k)
                    && !holder.has(k)
                    && !f.denied.contains(&(peer, k))
                {
                    holder.have[k as usize] = true;
                    holder.count += 1;
                }
            }
        }
    }

    /// The fragments begun and not finished, with the chunks verified so far (what this node
    /// serves of them, and announces); with `all`, every unfinished fragment, begun or not (at
    /// the start: peers that fetch the same video connect before there is anything to trade).
    pub fn progress(&self, all: bool) -> Vec<PartialFragment> {
        self.fragments
            .iter()
            .filter(|(_, f)| (all || f.done > 0) && !f.complete())
            .map(|(i, f)| PartialFragment {
                index: *i,
                hash: f.hash,
                have: PartialFragment::bitmap(&f.got),
            })
            .collect()
    }

    /// Bytes verified per peer so far.
    pub fn received(&self) -> BTreeMap<PeerId, u64> {
        self.peers
            .iter()
            .filter(|(_, p)| p.received > 0)
            .map(|(id, p)| (*id, p.received))
            .collect()
    }

    pub fn fragment_size(&self, index: u32) -> u64 {
        self.fragments.get(&index).map_or(0, |f| f.size)
    }

    /// The peers a complete fragment came from, and how long it took.
    pub fn fragment_summary(&self, index: u32, now: Instant) -> (Vec<PeerId>, Duration) {
        self.fragments
            .get(&index)
            .map_or((vec![], Duration::ZERO), |f| {
                (f.sources.iter().copied().collect(), now - f.started)
            })
    }

    /// Where playback is: the fragments from `index` on go first (see the module's docs).
    pub fn set_playhead(&mut self, index: Option<u32>) {
        self.playhead = index;
    }

    /// What became of the requests so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Why the download asks for no more than it does, now (see [`Snapshot`]).
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let room = |p: &PeerId| {
            self.peers
                .get(p)
                .is_none_or(|s| s.usable(self.windows(), now))
        };
        let mut snap = Snapshot {
            in_flight: self.in_flight,
            peers_full: self
                .peers
                .values()
                .filter(|s| !s.excluded && s.in_flight >= s.window(self.windows(), now))
                .count(),
            ..Snapshot::default()
        };
        for ((index, _), askees) in &self.asked {
            let f = &self.fragments[index];
            snap.at_whole += askees.iter().filter(|p| f.holders.contains(p)).count();
        }
        for f in self.fragments.values() {
            for &chunk in &f.todo {
                snap.todo += 1;
                let holders: Vec<&PeerId> = f
                    .holders
                    .iter()
                    .chain(
                        f.partial
                            .iter()
                            .filter(|(_, h)| h.has(chunk))
                            .map(|(p, _)| p),
                    )
                    .collect();
                if holders.is_empty() {
                    snap.no_holder += 1;
                } else if !holders.iter().any(|p| room(p)) {
                    snap.holders_full += 1;
                } else if holders
                    .iter()
                    .filter(|p| room(p))
                    .all(|p| f.declined_by(p, chunk, now))
                {
                    snap.declined += 1;
                }
            }
        }
        snap
    }

    /// What bounds each peer's window: at most `per_peer`, and where it starts.
    fn windows(&self) -> (usize, usize) {
        (self.per_peer, self.first_window)
    }

    /// Takes the answer to `req`.
    pub fn on_outcome(&mut self, req: &ChunkRequest, outcome: Outcome, now: Instant) -> Verdict {
        let (index, chunk, peer) = (req.fragment, req.chunk, req.peer);
        self.in_flight -= 1;
        let p = self.peers.entry(peer).or_default();
        p.in_flight -= 1;
        // Whether another request for this chunk is still out (end game): then a failure here
        // needs no retry, and whichever answer comes first is the one that counts.
        let still_asked = match self.asked.get_mut(&(index, chunk)) {
            Some(askees) => {
                askees.retain(|a| *a != peer);
                let any = !askees.is_empty();
                if !any {
                    self.asked.remove(&(index, chunk));
                }
                any
            }
            None => false,
        };
        let Some(f) = self.fragments.get_mut(&index) else {
            return Verdict::Nothing;
        };
        let already = f.got[chunk as usize];
        let took = now.saturating_duration_since(req.asked_at);
        self.tally.count(&outcome, already, took);
        tally::log_answer(req, &outcome, already, took);
        let retry = !already && !still_asked;
        let requeue = |f: &mut Fragment, front: bool| {
            if retry {
                if front {
                    f.todo.push_front(chunk);
                } else {
                    f.todo.push_back(chunk);
                }
            }
        };
        if matches!(outcome, Outcome::Stored | Outcome::Redundant) {
            p.on_delivery(now);
        }
        match outcome {
            Outcome::Redundant => Verdict::Nothing,
            Outcome::Stored if already => Verdict::Nothing,
            Outcome::Stored => {
                f.got[chunk as usize] = true;
                f.done += 1;
                f.sources.insert(peer);
                p.received += u64::from(req.len);
                p.latency = Some(p.latency.map_or(took, |l| (l * 7 + took * 3) / 10));
                Verdict::Gained {
                    bytes: req.len,
                    complete: f.complete(),
                }
            }
            Outcome::BadBytes(reason) => {
                p.excluded = true;
                requeue(f, true);
                Verdict::Misbehaved { reason }
            }
            // A fetching peer without the chunk (it stopped, or lost it): not that chunk again.
            Outcome::NotHeld if f.partial.contains_key(&peer) => {
                if let Some(p) = f.partial.get_mut(&peer) {
                    if let Some(bit) = p.have.get_mut(chunk as usize).filter(|b| **b) {
                        *bit = false;
                        p.count -= 1;
                    }
                }
                f.denied.insert((peer, chunk));
                requeue(f, true);
                Verdict::Nothing
            }
            Outcome::NotHeld => {
                f.holders.retain(|h| *h != peer);
                f.refused.insert(peer);
                requeue(f, true);
                Verdict::Nothing
            }
            // Its upload went to this chunk a moment ago: get it from whoever has it now.
            Outcome::Declined { also } => {
                f.declined.retain(|_, until| *until > now);
                if f.waited_once.insert((peer, chunk)) {
                    f.declined.insert((peer, chunk), now + DECLINE_BACKOFF);
                }
                f.declined_once.insert((peer, chunk));
                // Not asked of this peer for the same while either, unless it kept one back
                // already. Offsets that are no chunk start of this fragment are ignored; the wire
                // bounds how many come.
                let cs = u64::from(self.chunk_size.max(1));
                let named = also
                    .iter()
                    .filter(|o| *o % cs == 0)
                    .filter_map(|o| u32::try_from(o / cs).ok())
                    .filter(|k| *k < f.chunks && !f.got[*k as usize])
                    .take(wire::MAX_ALSO_DECLINED);
                for k in named {
                    if f.waited_once.insert((peer, k)) {
                        f.declined.insert((peer, k), now + NAMED_BACKOFF);
                    }
                }
                requeue(f, false);
                Verdict::Nothing
            }
            // The peer is serving all it can: not a fault; ask someone else, or it a bit later.
            Outcome::Busy => {
                p.cool_until = Some(now + BUSY_BACKOFF);
                requeue(f, false);
                Verdict::Nothing
            }
            Outcome::Failed(reason) => {
                p.failures += 1;
                tracing::debug!(%peer, %reason, failures = p.failures, "chunk request failed");
                requeue(f, true);
                if p.failures >= MAX_PEER_FAILURES && !p.excluded {
                    p.excluded = true;
                    self.tally.gave_up += 1;
                    Verdict::GaveUp { reason }
                } else {
                    Verdict::Nothing
                }
            }
        }
    }
}

#[path = "download_tally.rs"]
mod tally;
pub use tally::{Snapshot, Tally, REQUESTS};

#[path = "download_fragment.rs"]
mod fragment;
#[path = "download_hand_out.rs"]
mod hand_out;
#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
