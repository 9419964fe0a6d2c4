//! The hand-out: which chunk is asked of whom, in what order (see `download.rs` for the policy).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use vidswarm_proto::chunk_range;

use super::{
    ChunkRequest, Download, Peer, ENDGAME_IN_FLIGHT, MAX_OPEN_FRAGMENTS, PLAYBACK_WINDOW, SCAN,
};

impl Download {
    /// The fragments in hand-out order: the playback window in playback order, then rarest
    /// first. The one place a priority policy goes.
    pub(crate) fn order(&self) -> Vec<u32> {
        let urgent = |i: u32| {
            self.playhead
                .filter(|&p| (p..p.saturating_add(PLAYBACK_WINDOW)).contains(&i))
                .map(|p| i - p)
        };
        let mut order: Vec<u32> = self
            .fragments
            .iter()
            .filter(|(_, f)| !f.todo.is_empty())
            .map(|(i, _)| *i)
            .collect();
        order.sort_by_cached_key(|&i| match urgent(i) {
            Some(distance) => (0, u64::from(distance), 0),
            None => (1, self.fragments[&i].copies(), self.salt.hash_one(i)),
        });
        order
    }

    /// Hands out all the work that usable holders have room for, then the end game's second
    /// requests. Every request returned must come back through [`Download::on_outcome`].
    pub fn hand_out(&mut self, now: Instant) -> Vec<ChunkRequest> {
        let mut out = Vec::new();
        let mut open = self
            .fragments
            .values()
            .filter(|f| f.opened && !f.complete())
            .count();
        // The fragments a viewer waits for first, in playback order; the others then go, rarest
        // chunk first, to the holders of whole fragments, and what those leave to the fetching
        // peers that have it.
        let mut rest = Vec::new();
        for index in self.order() {
            let urgent = self.is_urgent(index);
            let was_open = self.fragments[&index].opened;
            if !was_open && !urgent && open >= MAX_OPEN_FRAGMENTS {
                continue;
            }
            if urgent {
                self.hand_out_partial(index, now, &mut out);
                self.hand_out_in_order(index, now, &mut out);
                open += usize::from(!was_open && self.fragments[&index].opened);
            } else {
                rest.push(index);
            }
        }
        open += self.hand_out_rarest(&rest, open, now, &mut out);
        for index in rest {
            let was_open = self.fragments[&index].opened;
            if !was_open && open >= MAX_OPEN_FRAGMENTS {
                continue;
            }
            self.hand_out_partial(index, now, &mut out);
            open += usize::from(!was_open && self.fragments[&index].opened);
        }
        // The playhead's own end game: the one fragment the viewer waits for now.
        if let Some(index) = self.playhead.filter(|i| {
            self.fragments
                .get(i)
                .is_some_and(|f| f.todo.is_empty() && !f.complete())
        }) {
            let mut outstanding: Vec<u32> = self
                .asked
                .iter()
                .filter(|((i, _), askees)| *i == index && askees.len() == 1)
                .map(|((_, chunk), _)| *chunk)
                .collect();
            outstanding.sort_unstable();
            for chunk in outstanding {
                let skip = self.asked[&(index, chunk)].clone();
                if let Some(peer) = self.soonest(index, Some(chunk), &skip, now) {
                    tracing::debug!(fragment = index, chunk, %peer, "urgent: asking a second holder");
                    out.push(self.ask(peer, index, chunk, false, now));
                }
            }
        }
        let all_handed_out = self.fragments.values().all(|f| f.todo.is_empty());
        if all_handed_out && self.in_flight > 0 && self.in_flight <= ENDGAME_IN_FLIGHT {
            let mut outstanding: Vec<(u32, u32)> = self
                .asked
                .iter()
                .filter(|(_, askees)| askees.len() == 1)
                .map(|(key, _)| *key)
                .collect();
            outstanding.sort_unstable();
            for (index, chunk) in outstanding {
                if self.fragments[&index].got[chunk as usize] {
                    continue;
                }
                let skip = self.asked[&(index, chunk)].clone();
                if let Some(peer) = self.least_busy(index, Some(chunk), &skip, now) {
                    tracing::debug!(fragment = index, chunk, %peer, "end game: asking a second holder");
                    out.push(self.ask(peer, index, chunk, false, now));
                }
            }
        }
        out
    }

    /// A fragment a viewer waits for: its chunks in playback order, each to the whole holder
    /// expected to answer soonest.
    fn hand_out_in_order(&mut self, index: u32, now: Instant, out: &mut Vec<ChunkRequest>) {
        while let Some(peer) = self.soonest(index, None, &[], now) {
            let f = self.fragments.get_mut(&index).expect("in the order");
            let Some(pos) = f
                .todo
                .iter()
                .take(SCAN)
                .enumerate()
                .min_by_key(|(_, c)| **c)
                .map(|(pos, _)| pos)
            else {
                break;
            };
            let chunk = f.todo.remove(pos).expect("todo is not empty");
            out.push(self.ask(peer, index, chunk, false, now));
        }
    }

    /// The whole holders' turn (often a lone seeder), before the fetching peers': the chunks
    /// with the fewest copies known (whole holders' and fetching peers'), over all of
    /// `fragments` at once, each to the least busy whole holder that has not declined it lately.
    /// Among equally rare chunks the order is random, and each download's own, so fetchers that
    /// start together ask the seeder for different chunks. Taken fragment by fragment, after the
    /// fetching peers had taken what they have, every fetcher asked the seeder for the chunks of
    /// one fragment (the one all saw as rarest) or for nothing: with 32 hosts its last new chunk
    /// went out 42 s in, most of its upload to chunks it had sent already (docs/performance.md).
    /// `open`: fragments begun so far; no more than [`MAX_OPEN_FRAGMENTS`] are. Returns how many
    /// it began.
    fn hand_out_rarest(
        &mut self,
        fragments: &[u32],
        open: usize,
        now: Instant,
        out: &mut Vec<ChunkRequest>,
    ) -> usize {
        let windows = self.windows();
        let has_room = |peers: &HashMap<PeerId, Peer>, p: &PeerId| {
            peers.get(p).is_none_or(|s| s.usable(windows, now))
        };
        let mut with_room: HashSet<PeerId> = HashSet::new();
        let mut may_begin = MAX_OPEN_FRAGMENTS.saturating_sub(open);
        let mut candidates = Vec::new();
        for &index in fragments {
            let f = &self.fragments[&index];
            let room: Vec<PeerId> = (f.holders.iter().copied())
                .filter(|p| has_room(&self.peers, p))
                .collect();
            if room.is_empty() {
                continue;
            }
            if !f.opened {
                if may_begin == 0 {
                    continue;
                }
                may_begin -= 1;
            }
            with_room.extend(room);
            // Copies known out there: every whole holder's, and the fetching peers' that have it.
            let mut copies = vec![f.holders.len() as u32; f.chunks as usize];
            for holder in f.partial.values() {
                for (n, has) in copies.iter_mut().zip(&holder.have) {
                    *n += u32::from(*has);
                }
            }
            candidates.extend(f.todo.iter().take(SCAN).map(|&chunk| {
                let rarity = copies.get(chunk as usize).copied().unwrap_or_default();
                (rarity, self.salt.hash_one((index, chunk)), index, chunk)
            }));
        }
        candidates.sort_unstable();
        let mut begun = 0;
        for (_, _, index, chunk) in candidates {
            if with_room.is_empty() {
                break;
            }
            let f = &self.fragments[&index];
            let Some(peer) = f
                .holders
                .iter()
                .filter(|p| with_room.contains(*p) && !f.declined_by(p, chunk, now))
                .min_by_key(|p| self.peers.get(*p).map_or(0, |s| s.in_flight))
                .copied()
            else {
                continue;
            };
            let f = self
                .fragments
                .get_mut(&index)
                .expect("a candidate's fragment");
            let Some(pos) = f.todo.iter().position(|&c| c == chunk) else {
                continue;
            };
            f.todo.remove(pos);
            begun += usize::from(!f.opened);
            out.push(self.ask(peer, index, chunk, true, now));
            if !has_room(&self.peers, &peer) {
                with_room.remove(&peer);
            }
        }
        begun
    }

    /// Hands the chunks of `index` that fetching peers have verified to those peers, least busy
    /// first, as many as each has room for.
    fn hand_out_partial(&mut self, index: u32, now: Instant, out: &mut Vec<ChunkRequest>) {
        let f = &self.fragments[&index];
        if f.partial.is_empty() || f.todo.is_empty() {
            return;
        }
        let mut peers: Vec<(usize, PeerId)> = f
            .partial
            .keys()
            .map(|p| (self.peers.get(p).map_or(0, |s| s.in_flight), *p))
            .collect();
        peers.sort_unstable();
        for (_, peer) in peers {
            while self
                .peers
                .get(&peer)
                .is_none_or(|s| s.usable(self.windows(), now))
            {
                let f = self.fragments.get_mut(&index).expect("in the order");
                let Some(pos) = f
                    .todo
                    .iter()
                    .take(SCAN)
                    .position(|&c| f.partial_has(&peer, c) && !f.declined_by(&peer, c, now))
                else {
                    break;
                };
                let chunk = f.todo.remove(pos).expect("found in todo");
                out.push(self.ask(peer, index, chunk, true, now));
            }
        }
    }

    fn ask(
        &mut self,
        peer: PeerId,
        index: u32,
        chunk: u32,
        may_decline: bool,
        now: Instant,
    ) -> ChunkRequest {
        let f = &self.fragments[&index];
        let (offset, len) = chunk_range(f.size, self.chunk_size, u64::from(chunk))
            .expect("chunk indices come from the manifest's own chunk list");
        let may_decline = may_decline && !f.declined_once.contains(&(peer, chunk));
        let request = ChunkRequest {
            peer,
            fragment: index,
            chunk,
            hash: f.hash,
            offset,
            len,
            asked_at: now,
            may_decline,
        };
        self.fragments
            .get_mut(&index)
            .expect("asked chunks are of this download's fragments")
            .opened = true;
        self.peers.entry(peer).or_default().in_flight += 1;
        self.asked.entry((index, chunk)).or_default().push(peer);
        self.in_flight += 1;
        request
    }

    /// The holders of `index` not in `skip` that can take a request now, with what is known of
    /// each (nothing yet for a peer never asked): the whole fragment's holders, and with a
    /// `chunk`, the fetching peers that have it too.
    fn usable_holders<'a>(
        &'a self,
        index: u32,
        chunk: Option<u32>,
        skip: &'a [PeerId],
        now: Instant,
    ) -> impl Iterator<Item = (PeerId, Option<&'a Peer>)> + 'a {
        let f = &self.fragments[&index];
        let partial = f
            .partial
            .keys()
            .filter(move |p| chunk.is_some_and(|c| f.partial_has(p, c)));
        f.holders
            .iter()
            .chain(partial)
            .filter(move |p| !skip.contains(p))
            .map(|p| (*p, self.peers.get(p)))
            .filter(move |(_, s)| s.is_none_or(|s| s.usable(self.windows(), now)))
    }

    /// The usable holder of `index` (not in `skip`) with the fewest requests in flight.
    fn least_busy(
        &self,
        index: u32,
        chunk: Option<u32>,
        skip: &[PeerId],
        now: Instant,
    ) -> Option<PeerId> {
        self.usable_holders(index, chunk, skip, now)
            .min_by_key(|(_, s)| s.map_or(0, |s| s.in_flight))
            .map(|(p, _)| p)
    }

    /// Whether fragment `index` is in the playback window.
    fn is_urgent(&self, index: u32) -> bool {
        self.playhead
            .is_some_and(|p| (p..p.saturating_add(PLAYBACK_WINDOW)).contains(&index))
    }

    /// The usable holder of `index` (not in `skip`) expected to answer soonest: its recent
    /// answer time times the requests it would have waiting. A holder not measured yet counts
    /// as fast, so it gets tried.
    fn soonest(
        &self,
        index: u32,
        chunk: Option<u32>,
        skip: &[PeerId],
        now: Instant,
    ) -> Option<PeerId> {
        self.usable_holders(index, chunk, skip, now)
            .min_by_key(|(_, s)| {
                s.map_or((Duration::ZERO, 0), |s| {
                    let waiting = s.in_flight as u32 + 1;
                    (s.latency.unwrap_or(Duration::ZERO) * waiting, s.in_flight)
                })
            })
            .map(|(p, _)| p)
    }
}
