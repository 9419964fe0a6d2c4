//! Fetching a video (or some of its fragments) from the swarm.
//!
//! 1. The manifest: from the store, else from peers (announcers, DHT providers, then anyone
//!    connected), accepted only if it hashes to the video id asked for.
//! 2. Holders of each missing fragment: the availability table (gossip) and DHT providers.
//! 3. Chunks are handed out rarest fragment first, each to the least-loaded holder with room
//!    (at most `per_peer` requests in flight per peer), so one fragment's chunks come from several
//!    peers at once: [`download::Download`], pure state, driven by `run.rs` over two seams
//!    (`seams.rs`): a chunk source (the swarm: `swarm_seams.rs`) and a fragment sink (the store).
//! 4. Each chunk is checked against its BLAKE3 hash in the manifest and written at its offset (on
//!    the blocking pool). A bad chunk excludes its sender from this fetch and goes back in the
//!    queue; a failed request is retried elsewhere.
//! 5. A complete fragment is committed to the store (durable), provided in the DHT and announced.

pub mod download;
pub mod run;
pub mod seams;
mod swarm_seams;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tracing::{info, warn, Instrument};
use vidswarm_proto::wire::{AnnouncedFragment, Announcement, NamedUpload, Request, Response};
use vidswarm_proto::{Manifest, VideoId};

use crate::events::NodeEvent;
use crate::net::{fragment_key, manifest_key, Client, NetError};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Only these fragment indices; all when `None`.
    pub fragments: Option<Vec<u32>>,
    /// Give up after this long without progress (no manifest, no holder, no chunk).
    pub stall_timeout: Duration,
    /// Requests in flight per peer.
    pub per_peer: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            fragments: None,
            stall_timeout: Duration::from_secs(30),
            per_peer: 4,
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
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Runs `f` on the blocking pool (the store does file I/O).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FetchError::Task(e.to_string()))
}

/// Fetches `video` (or `opts.fragments` of it) into `store`.
pub async fn fetch(
    client: &Client,
    store: &Store,
    video: VideoId,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let span = tracing::info_span!("fetch", video = %video.short());
    fetch_impl(client, store, video, opts)
        .instrument(span)
        .await
}

async fn fetch_impl(
    client: &Client,
    store: &Store,
    video: VideoId,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let started = Instant::now();
    let manifest = get_manifest(client, store, video, opts.stall_timeout).await?;
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
    let held_check = store.clone();
    let m = manifest.clone();
    let w = wanted.clone();
    let missing: Vec<u32> = blocking(move || {
        w.into_iter()
            .filter(|&i| !held_check.has_fragment(&m.fragments[i as usize].blake3))
            .collect()
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
    info!(missing = ?missing, "fetching");
    client.emit(NodeEvent::FetchStarted {
        video,
        missing: missing.clone(),
    });
    let outcome = download_missing(client, store, Arc::new(manifest), &missing, opts).await;
    match outcome {
        Ok(per_peer) => {
            let bytes = per_peer.values().sum();
            let elapsed = started.elapsed();
            client.emit(NodeEvent::FetchCompleted {
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
            client.emit(NodeEvent::FetchFailed {
                video,
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

/// Downloads the `missing` fragments of `manifest` through the swarm into the store.
async fn download_missing(
    client: &Client,
    store: &Store,
    manifest: Arc<Manifest>,
    missing: &[u32],
    opts: &FetchOptions,
) -> Result<BTreeMap<PeerId, u64>, FetchError> {
    let video = manifest.video_id;
    let download = download::Download::new(&manifest, missing, opts.per_peer, Instant::now());
    let source = Arc::new(swarm_seams::SwarmSource {
        client: client.clone(),
        store: store.clone(),
        video,
    });
    let sink = Arc::new(swarm_seams::StoreSink::new(store.clone(), manifest));
    let report = |progress: run::Progress| match progress {
        run::Progress::Chunk {
            fragment,
            chunk,
            from,
            bytes,
        } => client.emit(NodeEvent::ChunkReceived {
            video,
            fragment,
            chunk,
            from: from.to_string(),
            bytes,
        }),
        run::Progress::Fragment {
            fragment,
            bytes,
            from,
            millis,
        } => {
            let mut from: Vec<String> = from.iter().map(|p| p.to_string()).collect();
            from.sort();
            client.emit(NodeEvent::FragmentStored {
                video,
                fragment,
                bytes,
                from,
                millis,
            });
        }
        run::Progress::Misbehaved { peer, reason } => misbehaved(client, peer, &reason),
    };
    run::run(download, source, sink, video, opts.stall_timeout, &report).await
}

/// The manifest of `video`: from the store, or from the first peer whose answer hashes to it.
pub async fn get_manifest(
    client: &Client,
    store: &Store,
    video: VideoId,
    stall_timeout: Duration,
) -> Result<Manifest, FetchError> {
    let s = store.clone();
    if let Some(m) = blocking(move || s.manifest(&video)).await?? {
        return Ok(m);
    }
    let deadline = Instant::now() + stall_timeout;
    let mut asked: BTreeSet<PeerId> = BTreeSet::new();
    let mut wait = Duration::from_millis(100);
    loop {
        let mut candidates = client.availability().peers_with(&video);
        let providers = client.providers(manifest_key(&video)).await?;
        if !providers.is_empty() {
            client.emit(NodeEvent::ProvidersFound {
                what: format!("the manifest of video {}", video.short()),
                providers: providers.iter().map(|p| p.to_string()).collect(),
            });
        }
        candidates.extend(providers);
        candidates.extend(client.connected_peers().await?);
        let mut seen = BTreeSet::new();
        candidates.retain(|p| seen.insert(*p));
        asked.extend(candidates.iter().copied());
        if let Some((peer, m)) = race_for_manifest(client, video, candidates).await {
            let (s, m2) = (store.clone(), m.clone());
            blocking(move || s.put_manifest(&m2)).await??;
            client.provide(vec![manifest_key(&video)]).await?;
            info!(%peer, "got the manifest");
            return Ok(m);
        }
        if Instant::now() >= deadline {
            return Err(FetchError::ManifestUnavailable {
                video,
                secs: stall_timeout.as_secs(),
                asked: asked.len(),
            });
        }
        // Nobody had it yet: announcements or DHT records may still be on their way.
        tokio::time::sleep(wait.min(deadline - Instant::now())).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Asks `candidates` for the manifest of `video`, one more every [`MANIFEST_STAGGER`] while no
/// valid answer has come, and returns the first valid one: a peer that stalls costs a fraction of
/// a second, not a request timeout, and a healthy swarm is asked only once or twice.
async fn race_for_manifest(
    client: &Client,
    video: VideoId,
    candidates: Vec<PeerId>,
) -> Option<(PeerId, Manifest)> {
    const MANIFEST_STAGGER: Duration = Duration::from_millis(300);
    let ask = |peer: PeerId| async move {
        let answer = client.request(peer, Request::Manifest { video }).await;
        (peer, answer)
    };
    let mut queue = candidates.into_iter();
    let mut pending = FuturesUnordered::new();
    let mut next_ask = tokio::time::Instant::now();
    loop {
        if pending.is_empty() || tokio::time::Instant::now() >= next_ask {
            match queue.next() {
                Some(peer) => {
                    pending.push(ask(peer));
                    next_ask = tokio::time::Instant::now() + MANIFEST_STAGGER;
                }
                None if pending.is_empty() => return None,
                None => {}
            }
        }
        let more = queue.len() > 0;
        tokio::select! {
            Some((peer, answer)) = pending.next() => {
                // Errors and other answers: that peer does not have it; the others may.
                if let Ok(Response::Manifest { json }) = answer {
                    match Manifest::from_json(&json) {
                        Ok(m) if m.video_id == video => return Some((peer, m)),
                        Ok(_) | Err(_) => {
                            misbehaved(client, peer, "sent a manifest that does not match its id")
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next_ask), if more => {}
            else => return None,
        }
    }
}

pub(crate) fn misbehaved(client: &Client, peer: PeerId, reason: &str) {
    warn!(%peer, reason, "peer misbehaved; excluded from this fetch");
    client.emit(NodeEvent::PeerMisbehaved {
        peer: peer.to_string(),
        reason: reason.to_owned(),
    });
}

/// Announces every fragment of `manifest` the store holds (and provides them in the DHT).
pub async fn announce_held(
    client: &Client,
    store: &Store,
    manifest: &Manifest,
    provide: bool,
) -> Result<(), FetchError> {
    let (s, m) = (store.clone(), manifest.clone());
    let (held, named) = blocking(move || {
        let held: Vec<AnnouncedFragment> = m
            .fragments
            .iter()
            .filter(|f| s.has_fragment(&f.blake3))
            .map(|f| AnnouncedFragment {
                index: f.index,
                hash: f.blake3,
            })
            .collect();
        // A loose upload carries its default-collection name, so every node learns it.
        let named = s.name_of(&m.video_id).map(|(name, e)| NamedUpload {
            name,
            uploaded_at_ms: e.uploaded_at_ms,
        });
        (held, named)
    })
    .await?;
    if provide {
        let mut keys = vec![manifest_key(&manifest.video_id)];
        keys.extend(held.iter().map(|f| fragment_key(&f.hash)));
        client.provide(keys).await?;
    }
    client
        .announce(Announcement {
            video: manifest.video_id,
            peer: client.peer_id().to_string(),
            manifest: true,
            fragments: held,
            named,
        })
        .await?;
    Ok(())
}
