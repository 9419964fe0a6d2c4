//! The download's driver: asks the [`ChunkSource`] for what [`Download::hand_out`] says, writes
//! answers through the [`FragmentSink`] on the blocking pool, feeds outcomes back, commits complete
//! fragments and tells the source. Knows nothing of libp2p or the store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use vidswarm_proto::VideoId;

use super::download::{ChunkRequest, Download, Outcome, Verdict};
use super::seams::{ChunkAnswer, ChunkSource, FragmentSink, SinkError, Written};
use super::FetchError;
use crate::store::StoreError;

/// How often a running download asks the source's slow lookup (the DHT) for more holders of the
/// fragments that have fewer than [`ENOUGH_HOLDERS`].
pub const LOOKUP_EVERY: Duration = Duration::from_secs(3);
/// Holders (whole or partial, not given up on) past which a fragment is not looked up again:
/// the gossip names them already, and a lookup per fragment every few seconds costs every peer
/// of a large swarm requests that find nothing new (with 32 hosts, the seeder answered 1352
/// provider lookups in one run: docs/performance.md). A fragment whose holders leave or fail
/// drops below it and is looked up again.
pub const ENOUGH_HOLDERS: usize = 8;
/// How often, at most, a download tells the swarm which chunks it has verified (and serves), in a
/// swarm of up to [`PROGRESS_PEERS`] peers: often enough that peers trade chunks within a fraction
/// of a second of their arrival, seldom enough that progress stays small beside the chunks.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Past this many connected peers the progress cadence slows in step ([`progress_every`]).
pub const PROGRESS_PEERS: usize = 8;
/// The slowest progress cadence: a busy peer declines a chunk it sent a moment ago for
/// `spread::DECLINE_WINDOW` (2 s), counting on its receiver to tell the swarm well within it.
pub const PROGRESS_SLOWEST: Duration = Duration::from_secs(1);

/// The progress cadence with `peers` connected. Each fetcher tells each connected peer, so at a
/// fixed cadence what each node handles grows with the swarm: with 32 hosts the two cores, not
/// the links, held the swarm back (docs/performance.md, "32 hosts, fifth round"). Slowing in step
/// with the peer count keeps it about constant per node, up to 32 peers ([`PROGRESS_SLOWEST`]).
/// Since progress goes on the per-peer streams (no signatures, no copies), a fixed 250 ms was
/// measured again at 32 hosts and was no faster (sixth round).
pub fn progress_every(peers: usize) -> Duration {
    let steps = u32::try_from(peers.div_ceil(PROGRESS_PEERS).max(1)).unwrap_or(u32::MAX);
    PROGRESS_EVERY.saturating_mul(steps).min(PROGRESS_SLOWEST)
}

/// The log target of a download's once-a-second snapshot (`VIDSWARM_LOG=warn,vidswarm_timeline=debug`).
pub const TIMELINE: &str = "vidswarm_timeline";

/// What a running download reports as it goes (for events, logs, progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Chunk {
        fragment: u32,
        chunk: u32,
        from: PeerId,
        bytes: u32,
    },
    Fragment {
        fragment: u32,
        bytes: u64,
        from: Vec<PeerId>,
        millis: u64,
    },
    Misbehaved {
        peer: PeerId,
        reason: String,
    },
}

/// Runs `download` to the end; returns the bytes received per peer. Fails when nothing could be
/// handed out for `stall_timeout`, or at once on a local disk error. `playhead`, when given, is
/// where a viewer plays the video: it steers the hand-out order as it moves.
pub async fn run<S: ChunkSource, K: FragmentSink>(
    mut download: Download,
    source: Arc<S>,
    sink: Arc<K>,
    video: VideoId,
    stall_timeout: Duration,
    mut playhead: Option<Playhead>,
    report: &(dyn Fn(Progress) + Send + Sync),
) -> Result<BTreeMap<PeerId, u64>, FetchError> {
    // Chunks an earlier fetch verified are not asked for again; a fragment it had all of (it
    // was killed before the commit) is committed now.
    for (index, hash) in download.unfinished() {
        if download.resume(index, &sink.resumed(index)) {
            commit(&download, &*source, &sink, index, hash, report).await?;
        }
    }
    let mut pending = FuturesUnordered::new();
    // Slow lookups (the DHT) run beside the transfer and add holders when they answer: a lookup
    // that waits on dead peers never holds up chunks from the holders already known.
    let mut lookups = FuturesUnordered::new();
    let mut to_look_up: VecDeque<(u32, vidswarm_proto::Hash)> = download.unfinished().into();
    let mut last_lookup = Instant::now();
    let mut last_progress = Instant::now();
    // Peers fetching this video too learn of this node now and connect before there is
    // anything to trade.
    source.progress(download.progress(true));
    let mut last_told = Instant::now();
    let mut wait = Duration::from_millis(100);
    let started = Instant::now();
    let mut last_snapshot = started;
    while !download.is_complete() {
        if let Some(p) = &playhead {
            download.set_playhead(*p.borrow());
        }
        // New holders: the gossip table every round (a map lookup), the slow lookup now and then.
        for (index, _) in download.unfinished() {
            download.add_holders(index, source.announced(index));
            download.add_partial_holders(index, source.announced_partial(index));
        }
        if lookups.is_empty() && to_look_up.is_empty() && last_lookup.elapsed() >= LOOKUP_EVERY {
            to_look_up = download.unfinished().into();
            last_lookup = Instant::now();
        }
        start_lookups(&mut lookups, &mut to_look_up, &download, &*source);
        for request in download.hand_out(Instant::now()) {
            pending.push(attempt(source.clone(), sink.clone(), request));
        }
        // Once a second, after a hand-out: what is left unasked, and why (off unless enabled).
        if tracing::enabled!(target: TIMELINE, tracing::Level::DEBUG)
            && last_snapshot.elapsed() >= Duration::from_secs(1)
        {
            let now = Instant::now();
            last_snapshot = now;
            let snapshot = download.snapshot(now);
            tracing::debug!(target: TIMELINE, %video, ms = (now - started).as_millis() as u64, %snapshot, "waiting");
        }
        if pending.is_empty() {
            // Nothing could be handed out: no usable holder for what is left.
            if last_progress.elapsed() >= stall_timeout {
                return Err(FetchError::Stalled {
                    video,
                    missing: download.unfinished().into_iter().map(|(i, _)| i).collect(),
                    secs: stall_timeout.as_secs(),
                });
            }
            tokio::select! {
                Some((index, found)) = lookups.next() => download.add_holders(index, found?),
                _ = tokio::time::sleep(wait) => wait = (wait * 2).min(Duration::from_secs(2)),
                _ = moved(&mut playhead) => {}
            }
            continue;
        }
        let (request, outcome) = tokio::select! {
            Some(done) = pending.next() => done,
            Some((index, found)) = lookups.next() => {
                download.add_holders(index, found?);
                continue;
            }
            _ = moved(&mut playhead) => continue,
        };
        let now = Instant::now();
        match download.on_outcome(&request, outcome?, now) {
            Verdict::Nothing => {}
            Verdict::Gained { bytes, complete } => {
                last_progress = now;
                wait = Duration::from_millis(100);
                report(Progress::Chunk {
                    fragment: request.fragment,
                    chunk: request.chunk,
                    from: request.peer,
                    bytes,
                });
                // Progress checks the fastest cadence first: the peer count (a lock) is read
                // at most once per `PROGRESS_EVERY`, not once per chunk.
                if complete {
                    let (index, hash) = (request.fragment, request.hash);
                    commit(&download, &*source, &sink, index, hash, report).await?;
                } else if now.duration_since(last_told) >= PROGRESS_EVERY
                    && now.duration_since(last_told) >= progress_every(source.audience())
                {
                    last_told = now;
                    source.progress(download.progress(false));
                }
            }
            Verdict::Misbehaved { reason } => report(Progress::Misbehaved {
                peer: request.peer,
                reason,
            }),
            Verdict::GaveUp { reason } => {
                tracing::info!(peer = %request.peer, %reason, "peer keeps failing; not asking it again in this fetch");
            }
        }
    }
    tracing::info!(%video, tally = %download.tally(), "chunk requests of the fetch");
    Ok(download.received())
}

/// Where a viewer plays the video now (a fragment index), as the fetch registry is told it.
pub type Playhead = tokio::sync::watch::Receiver<Option<u32>>;

/// Resolves when the playhead moves; never without one (or once its sender is gone).
async fn moved(playhead: &mut Option<Playhead>) {
    if let Some(p) = playhead {
        if p.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// A slow lookup's answer: the fragment index and the holders it found.
type Lookup = BoxFuture<'static, (u32, Result<Vec<PeerId>, FetchError>)>;

/// Lookups running at once: a video of many fragments must not start a DHT query per fragment
/// at once (each takes a stream on the connections it asks over).
pub const MAX_LOOKUPS: usize = 8;

/// Starts the slow lookups of the fragments in `queue` that are still unfinished and short of
/// [`ENOUGH_HOLDERS`], up to `MAX_LOOKUPS` running.
fn start_lookups<S: ChunkSource>(
    lookups: &mut FuturesUnordered<Lookup>,
    queue: &mut VecDeque<(u32, vidswarm_proto::Hash)>,
    download: &Download,
    source: &S,
) {
    while lookups.len() < MAX_LOOKUPS {
        let Some((index, hash)) = queue.pop_front() else {
            return;
        };
        if download.is_fragment_complete(index) || download.known_holders(index) >= ENOUGH_HOLDERS {
            continue;
        }
        let lookup = source.look_up(index, hash);
        lookups.push(async move { (index, lookup.await) }.boxed());
    }
}

/// Commits a complete fragment, reports it, and tells the source it is held here.
async fn commit<S: ChunkSource, K: FragmentSink>(
    download: &Download,
    source: &S,
    sink: &Arc<K>,
    index: u32,
    hash: vidswarm_proto::Hash,
    report: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), FetchError> {
    let s = sink.clone();
    on_pool(&**sink, move || s.commit(index)).await??;
    let (from, took) = download.fragment_summary(index, Instant::now());
    let bytes = download.fragment_size(index);
    tracing::info!(
        fragment = index,
        bytes,
        ?from,
        millis = took.as_millis() as u64,
        "fragment stored"
    );
    report(Progress::Fragment {
        fragment: index,
        bytes,
        from,
        millis: took.as_millis() as u64,
    });
    source.gained(index, hash).await
}

/// Asks for one chunk and writes the answer; only a local failure is an error.
async fn attempt<S: ChunkSource, K: FragmentSink>(
    source: Arc<S>,
    sink: Arc<K>,
    request: ChunkRequest,
) -> (ChunkRequest, Result<Outcome, FetchError>) {
    let answer = source
        .chunk(
            request.peer,
            request.hash,
            request.offset,
            request.len,
            request.may_decline,
        )
        .await;
    let outcome = match answer {
        ChunkAnswer::Data(data) if data.len() != request.len as usize => Ok(Outcome::BadBytes(
            format!("sent {} bytes for a {}-byte chunk", data.len(), request.len),
        )),
        ChunkAnswer::Data(data) => {
            let (fragment, chunk) = (request.fragment, request.chunk);
            // Hash and write off the async threads: both touch a whole chunk.
            let s = sink.clone();
            match on_pool(&*sink, move || s.write(fragment, chunk, &data)).await {
                Ok(Ok(Written::Stored)) => Ok(Outcome::Stored),
                Ok(Ok(Written::AlreadyComplete)) => Ok(Outcome::Redundant),
                Ok(Err(e @ SinkError::BadHash { .. })) => Ok(Outcome::BadBytes(e.to_string())),
                Ok(Err(SinkError::Store(e))) => Err(FetchError::Store(e)),
                Err(e) => Err(e),
            }
        }
        ChunkAnswer::NotHeld => Ok(Outcome::NotHeld),
        ChunkAnswer::Busy => Ok(Outcome::Busy),
        ChunkAnswer::Declined(also) => Ok(Outcome::Declined { also }),
        ChunkAnswer::Failed(reason) => Ok(Outcome::Failed(reason)),
        ChunkAnswer::Wrong(reason) => Ok(Outcome::BadBytes(reason)),
    };
    (request, outcome)
}

/// Runs blocking sink work on the pool; a worker that panicked is a local failure.
async fn on_pool<K: FragmentSink, T: Send + 'static>(
    sink: &K,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FetchError> {
    sink.spawn(f)
        .await
        .map_err(|e| FetchError::Store(StoreError::Worker(e.to_string())))
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
