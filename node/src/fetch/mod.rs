//! Fetching a video (or some of its fragments) from the swarm.
//!
//! 1. The manifest: from the store, else from peers (announcers, DHT providers, then anyone
//!    connected), accepted only if it hashes to the video id asked for.
//! 2. Holders of each missing fragment: the availability table (gossip) and DHT providers.
//! 3. Chunks are handed out rarest fragment first, each to the least-loaded holder with room
//!    (a window of requests in flight per peer, grown with what it delivers, at most `per_peer`),
//!    so one fragment's chunks come from several peers at once: [`download::Download`], pure state, driven by `run.rs` over two seams
//!    (`seams.rs`): a chunk source (the swarm: `swarm_seams.rs`) and a fragment sink (the store).
//! 4. Each chunk is checked against its BLAKE3 hash in the manifest and written at its offset (on
//!    the blocking pool). A bad chunk excludes its sender from this fetch and goes back in the
//!    queue; a failed request is retried elsewhere.
//! 5. A complete fragment is committed to the store (durable), provided in the DHT and announced.

pub mod download;
pub(crate) mod manifest;
pub mod run;
pub mod seams;
mod swarm_seams;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::{info, warn, Instrument};
use vidswarm_proto::{Manifest, VideoId};

use crate::events::NodeEvent;
use crate::net::{Client, NetError};
use crate::store::{Store, StoreError};

pub use download::PLAYBACK_WINDOW;
pub use manifest::{MANIFEST_FANOUT, MANIFEST_STAGGER};
pub(crate) use swarm_seams::announcement;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Only these fragment indices; all when `None`.
    pub fragments: Option<Vec<u32>>,
    /// Give up after this long without progress (no manifest, no holder, no chunk).
    pub stall_timeout: Duration,
    /// Requests in flight per peer at most (each peer's window grows to it with its rate).
    pub per_peer: usize,
    /// Put what is gained in the DHT as provider records. Off for a node that leaves as soon as
    /// it is done (`vidswarm fetch`): records outlive their provider by hours, and every later
    /// fetcher would try it. Announcements (gossip, which peers forget when it disconnects) are
    /// sent either way.
    pub provide: bool,
    /// Where a viewer plays the video, if someone does: the fetch puts the fragments from there
    /// first (`download.rs`). Set by the service from the fetch registry.
    pub playhead: Option<run::Playhead>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            fragments: None,
            stall_timeout: Duration::from_secs(30),
            per_peer: 16,
            provide: true,
            playhead: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FetchReport {
    pub video: VideoId,
    pub fetched: Vec<u32>,
    pub already_held: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Bytes received from each peer.
    pub per_peer: BTreeMap<PeerId, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no peer gave the manifest of video {video} within {secs} s (asked {asked} peer(s)); is the id right, and is a node holding it reachable?")]
    ManifestUnavailable {
        video: VideoId,
        secs: u64,
        asked: usize,
    },
    #[error("video {video} has no fragment {index} (it has {count})")]
    NoSuchFragment {
        video: VideoId,
        index: u32,
        count: usize,
    },
    #[error("no peer could give fragment(s) {missing:?} of video {video} within {secs} s")]
    Stalled {
        video: VideoId,
        missing: Vec<u32>,
        secs: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    /// The store has no room for the fragments missing (`Reporter::room` said so).
    #[error(transparent)]
    NoRoom(#[from] crate::service::NoRoom),
}

/// Where a fetch reports what it does: every event goes to `observe` (the fetch registry's
/// ticket: direct, never dropped) and then to the node's event stream (for logs, SSE, bars).
pub struct Reporter<'a> {
    pub client: &'a Client,
    pub observe: &'a (dyn Fn(&NodeEvent) + Send + Sync),
    /// Asked, once the manifest is known and before any chunk is asked for, to make room for
    /// the bytes missing (the service's disk budget, `service/space.rs`).
    pub room: &'a (dyn Fn(u64) -> futures::future::BoxFuture<'a, Result<(), crate::service::NoRoom>>
             + Send
             + Sync),
}

impl Reporter<'_> {
    fn emit(&self, event: NodeEvent) {
        (self.observe)(&event);
        self.client.emit(event);
    }
}

/// Fetches `video` (or `opts.fragments` of it) into `store`. Only the service calls it, under a
/// fetch registry ticket (`service/fetches.rs`).
pub async fn fetch(
    reporter: &Reporter<'_>,
    store: &Store,
    video: VideoId,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let span = tracing::info_span!("fetch", video = %video.short());
    fetch_impl(reporter, store, video, opts)
        .instrument(span)
        .await
}

async fn fetch_impl(
    reporter: &Reporter<'_>,
    store: &Store,
    video: VideoId,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let started = Instant::now();
    let client = reporter.client;
    let manifest = manifest::get(client, store, video, opts).await?;
    let wanted: Vec<u32> = match &opts.fragments {
        Some(list) => {
            for &index in list {
                if manifest.fragment(index).is_none() {
                    return Err(FetchError::NoSuchFragment {
                        video,
                        index,
                        count: manifest.fragments.len(),
                    });
                }
            }
            list.iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
        None => (0..manifest.fragments.len() as u32).collect(),
    };
    let (m, w) = (manifest.clone(), wanted.clone());
    let missing: Vec<u32> = store
        .call(move |s| {
            Ok(w.into_iter()
                .filter(|&i| !s.has_fragment(&m.fragments[i as usize].blake3))
                .collect())
        })
        .await?;
    let already_held = wanted.len() - missing.len();
    if missing.is_empty() {
        return Ok(FetchReport {
            video,
            fetched: vec![],
            already_held,
            bytes: 0,
            elapsed: started.elapsed(),
            per_peer: BTreeMap::new(),
        });
    }
    let needed: u64 = missing
        .iter()
        .map(|&i| manifest.fragments[i as usize].size)
        .sum();
    (reporter.room)(needed).await?;
    let resumed = resumed_bytes(store, &manifest, &missing);
    info!(missing = ?missing, resumed = resumed.iter().sum::<u64>(), "fetching");
    reporter.emit(NodeEvent::FetchStarted {
        video,
        missing: missing.clone(),
        resumed,
    });
    let outcome = download_missing(reporter, store, manifest, &missing, opts).await;
    match outcome {
        Ok(per_peer) => {
            let bytes = per_peer.values().sum();
            let elapsed = started.elapsed();
            reporter.emit(NodeEvent::FetchCompleted {
                video,
                fragments: missing.len(),
                bytes,
                millis: elapsed.as_millis() as u64,
            });
            Ok(FetchReport {
                video,
                fetched: missing,
                already_held,
                bytes,
                elapsed,
                per_peer,
            })
        }
        Err(e) => {
            reporter.emit(NodeEvent::FetchFailed {
                video,
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

/// Downloads the `missing` fragments of `manifest` through the swarm into the store.
async fn download_missing(
    reporter: &Reporter<'_>,
    store: &Store,
    manifest: Arc<Manifest>,
    missing: &[u32],
    opts: &FetchOptions,
) -> Result<BTreeMap<PeerId, u64>, FetchError> {
    let video = manifest.video_id;
    let client = reporter.client;
    let download = download::Download::new(&manifest, missing, opts.per_peer, Instant::now());
    let source = Arc::new(swarm_seams::SwarmSource::new(
        client.clone(),
        store.clone(),
        video,
        opts.provide,
    ));
    let sink = Arc::new(swarm_seams::StoreSink::new(store.clone(), manifest));
    let report = |progress: run::Progress| match progress {
        run::Progress::Chunk {
            fragment,
            chunk,
            from,
            bytes,
        } => reporter.emit(NodeEvent::ChunkReceived {
            video,
            fragment,
            chunk,
            from,
            bytes,
        }),
        run::Progress::Fragment {
            fragment,
            bytes,
            from,
            millis,
        } => {
            let mut from = from;
            from.sort();
            reporter.emit(NodeEvent::FragmentStored {
                video,
                fragment,
                bytes,
                from,
                millis,
            });
        }
        run::Progress::Misbehaved { peer, reason } => misbehaved(client, peer, &reason),
    };
    run::run(
        download,
        source,
        sink,
        video,
        opts.stall_timeout,
        opts.playhead.clone(),
        &report,
    )
    .await
}

/// Per fragment of `missing`, the bytes of its chunks an earlier fetch left verified.
fn resumed_bytes(store: &Store, manifest: &Manifest, missing: &[u32]) -> Vec<u64> {
    let cs = manifest.chunk_size;
    missing
        .iter()
        .map(|&i| {
            let f = &manifest.fragments[i as usize];
            let have = store.resumable(&f.blake3, f.size, cs).unwrap_or_default();
            (0u64..)
                .zip(have)
                .filter(|(_, h)| *h)
                .filter_map(|(k, _)| vidswarm_proto::chunk_range(f.size, cs, k))
                .map(|(_, len)| u64::from(len))
                .sum()
        })
        .collect()
}

pub(crate) fn misbehaved(client: &Client, peer: PeerId, reason: &str) {
    warn!(%peer, reason, "peer misbehaved; excluded from this fetch");
    client.emit(NodeEvent::PeerMisbehaved {
        peer,
        reason: reason.to_owned(),
    });
}
