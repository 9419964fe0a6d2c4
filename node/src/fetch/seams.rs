//! The download's two seams: where chunks come from ([`ChunkSource`]: the swarm in a node, a fake in
//! tests) and where they go ([`FragmentSink`]: the store, or memory in tests).

use futures::future::BoxFuture;
use libp2p::PeerId;
use vidswarm_proto::wire::PartialFragment;
use vidswarm_proto::Hash;

use super::FetchError;
use crate::store::StoreError;

/// A peer's answer to a chunk request.
#[derive(Debug)]
pub enum ChunkAnswer {
    Data(Vec<u8>),
    NotHeld,
    Busy,
    /// Sent to another peer a moment ago: get it from the peers that have it now. With the
    /// offsets of the fragment's other chunks the peer would decline now too.
    Declined(Vec<u64>),
    /// Refused, timed out, disconnected.
    Failed(String),
    /// Answered with something that is not a chunk.
    Wrong(String),
}

/// Where a download's chunks and holders come from, and whom it tells what it gained.
pub trait ChunkSource: Send + Sync + 'static {
    /// Asks `peer` for `len` bytes at `offset` of fragment `hash`; with `may_decline`, a busy
    /// peer that sent that chunk to someone else a moment ago may answer [`ChunkAnswer::Declined`].
    fn chunk(
        &self,
        peer: PeerId,
        hash: Hash,
        offset: u64,
        len: u32,
        may_decline: bool,
    ) -> BoxFuture<'static, ChunkAnswer>;

    /// Holders of fragment `index` known without asking anyone (gossip): cheap, called often.
    fn announced(&self, index: u32) -> Vec<PeerId>;

    /// Holders of fragment `index` found by asking (the DHT), beside the announced ones.
    fn look_up(
        &self,
        index: u32,
        hash: Hash,
    ) -> BoxFuture<'static, Result<Vec<PeerId>, FetchError>>;

    /// Fragment `index` is now held here, verified and durable: provide and announce it.
    fn gained(&self, index: u32, hash: Hash) -> BoxFuture<'static, Result<(), FetchError>>;

    /// Peers fetching fragment `index` (known without asking: gossip), each with the bitmap of
    /// the chunks it has verified (`PartialFragment::have`). They serve those chunks already.
    fn announced_partial(&self, _index: u32) -> Vec<(PeerId, Vec<u8>)> {
        Vec::new()
    }

    /// Tells the swarm which chunks of the fragments in progress are verified here (and served):
    /// `(index, hash, bitmap)`. Called now and then while chunks arrive; must not block.
    fn progress(&self, _partial: Vec<PartialFragment>) {}

    /// How many peers hear [`progress`](Self::progress) (connected peers): its cadence slows as
    /// they grow (`run::progress_every`). Cheap, called per verified chunk.
    fn audience(&self) -> usize {
        0
    }
}

/// Why a chunk could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The bytes do not hash to the chunk's hash: the sender's fault.
    #[error("chunk {chunk} of fragment {fragment} does not match its hash")]
    BadHash { fragment: u32, chunk: u32 },
    /// Our own disk: not the peer's fault, and asking elsewhere would not help.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a verified chunk was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The fragment was committed before this (duplicate) chunk came.
    AlreadyComplete,
}

/// Where verified chunks go. Blocking (file I/O): the driver calls it on the blocking pool, and
/// writes of different chunks run at the same time.
pub trait FragmentSink: Send + Sync + 'static {
    /// Verifies `data` against chunk `chunk` of fragment `fragment` and writes it at its offset.
    fn write(&self, fragment: u32, chunk: u32, data: &[u8]) -> Result<Written, SinkError>;

    /// Makes fragment `fragment`, every chunk of which is written, durable and visible.
    fn commit(&self, fragment: u32) -> Result<(), StoreError>;

    /// The chunks of fragment `fragment` an earlier fetch left verified (`store/resume.rs`):
    /// not asked for again. Cheap, no I/O; empty when there are none.
    fn resumed(&self, _fragment: u32) -> Vec<bool> {
        Vec::new()
    }

    /// Runs `f` (this sink's blocking work) on the blocking pool. The store's sink tracks it, so
    /// a node that stops waits for writes whose fetch was cancelled.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        tokio::task::spawn_blocking(f)
    }
}
