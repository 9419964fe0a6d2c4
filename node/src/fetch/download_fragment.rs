//! One fragment's state in a download: its chunks to do and done, and who has them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use libp2p::PeerId;
use vidswarm_proto::Hash;

pub(super) struct Fragment {
    pub(super) hash: Hash,
    pub(super) size: u64,
    pub(super) chunks: u32,
    pub(super) todo: VecDeque<u32>,
    /// Which chunks are verified and written.
    pub(super) got: Vec<bool>,
    pub(super) done: u32,
    pub(super) holders: Vec<PeerId>,
    /// Peers fetching it too, with the chunks they have verified.
    pub(super) partial: HashMap<PeerId, PartialHolder>,
    /// Chunks a partial holder was asked for and did not have (its fetch stopped, or it lost
    /// them): not taken from its announcements again in this download.
    pub(super) denied: BTreeSet<(PeerId, u32)>,
    /// Chunks a peer declined, and until when it is not asked for them again.
    pub(super) declined: HashMap<(PeerId, u32), Instant>,
    /// Chunks a peer declined once: asked again, it may not decline them (a peer that keeps
    /// asking for every chunk would otherwise make its holder decline them to us for ever).
    pub(super) declined_once: BTreeSet<(PeerId, u32)>,
    /// Chunks a peer's declines have kept from it for a back-off already (declined, or named
    /// in a decline of another): not kept back again. A peer that sends every chunk to a
    /// greedy asker would otherwise name them all to us every second, and we would never ask
    /// it; each chunk costs at most one back-off per peer.
    pub(super) waited_once: BTreeSet<(PeerId, u32)>,
    /// Peers that said they do not hold it: not taken back as holders in this download, however
    /// often gossip or the DHT still name them (else a stale entry is asked again every round).
    pub(super) refused: BTreeSet<PeerId>,
    pub(super) sources: BTreeSet<PeerId>,
    pub(super) started: Instant,
    /// A chunk of it was asked for: the sink may hold its temp file open until it completes.
    pub(super) opened: bool,
}

impl Fragment {
    pub(super) fn complete(&self) -> bool {
        self.done == self.chunks
    }

    /// Copies of its chunks known out there: a whole holder counts every chunk.
    pub(super) fn copies(&self) -> u64 {
        let partial: u64 = self.partial.values().map(|p| u64::from(p.count)).sum();
        self.holders.len() as u64 * u64::from(self.chunks) + partial
    }

    pub(super) fn declined_by(&self, peer: &PeerId, chunk: u32, now: Instant) -> bool {
        self.declined.get(&(*peer, chunk)).is_some_and(|t| *t > now)
    }

    pub(super) fn partial_has(&self, peer: &PeerId, chunk: u32) -> bool {
        self.partial.get(peer).is_some_and(|p| p.has(chunk))
    }
}

/// A peer fetching a fragment: which chunks it has verified, and how many.
#[derive(Debug, Default)]
pub(super) struct PartialHolder {
    pub(super) have: Vec<bool>,
    pub(super) count: u32,
}

impl PartialHolder {
    pub(super) fn has(&self, chunk: u32) -> bool {
        self.have.get(chunk as usize) == Some(&true)
    }
}
