//! The chunk scheduler: who is asked for which chunk, and what happens to each answer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tracing::{debug, info};
use vidswarm_proto::wire::{ErrorCode, Request, Response};
use vidswarm_proto::{chunk_range, FragmentInfo, Hash, Manifest};

use super::{announce_held, blocking, misbehaved, FetchError, FetchOptions};
use crate::events::NodeEvent;
use crate::net::{fragment_key, Client};
use crate::store::{FragmentWriter, Store};

/// Failed requests (timeouts, refusals) after which a peer is not asked again in this fetch.
const MAX_PEER_FAILURES: u32 = 3;
/// How often a running fetch asks the DHT for more holders.
const DHT_REFRESH: Duration = Duration::from_secs(3);

/// A fragment's writer, shared with the requests writing into it; taken (left `None`) when the
/// fragment is committed, so a late duplicate answer finds nothing to write into.
type SharedWriter = Arc<Mutex<Option<FragmentWriter>>>;

struct Fragment {
    info: FragmentInfo,
    writer: SharedWriter,
    todo: VecDeque<u32>,
    /// Which chunks are verified and written.
    got: Vec<bool>,
    done: usize,
    holders: Vec<PeerId>,
    sources: HashSet<PeerId>,
    started: Instant,
}

#[derive(Default)]
struct Peer {
    in_flight: usize,
    failures: u32,
    excluded: bool,
    /// Answered `Busy`: not asked again before this.
    cool_until: Option<Instant>,
}

impl Peer {
    fn usable(&self, per_peer: usize, now: Instant) -> bool {
        !self.excluded && self.in_flight < per_peer && self.cool_until.is_none_or(|t| t <= now)
    }
}

/// How long a peer that answered `Busy` is left alone.
const BUSY_BACKOFF: Duration = Duration::from_millis(50);
/// End game: once every chunk is handed out and at most this many requests are in flight, each
/// outstanding chunk is also asked of a second holder, and the first answer wins. A slow or
/// stalled peer then costs the fetch nothing instead of up to a request timeout (as BitTorrent
/// clients do for the last pieces).
const ENDGAME_IN_FLIGHT: usize = 16;

/// What became of one chunk request.
enum Outcome {
    Stored(u32),
    /// The fragment was complete before this (duplicate) answer came.
    Redundant,
    BadBytes(String),
    NotHeld,
    Busy,
    Failed(String),
    /// Our own disk failed: not the peer's fault, and retrying elsewhere would not help.
    Local(String),
}

/// Downloads `missing` fragments of `manifest`; returns bytes received per peer.
pub(super) async fn download(
    client: &Client,
    store: &Store,
    manifest: &Manifest,
    missing: &[u32],
    opts: &FetchOptions,
) -> Result<BTreeMap<PeerId, u64>, FetchError> {
    let video = manifest.video_id;
    let mut fragments: HashMap<u32, Fragment> = HashMap::new();
    for &index in missing {
        let info = manifest.fragments[index as usize].clone();
        let (s, hash, size) = (store.clone(), info.blake3, info.size);
        let writer = blocking(move || s.begin_fragment(hash, size)).await??;
        fragments.insert(
            index,
            Fragment {
                todo: (0..info.chunks.len() as u32).collect(),
                got: vec![false; info.chunks.len()],
                info,
                writer: Arc::new(Mutex::new(Some(writer))),
                done: 0,
                holders: vec![],
                sources: HashSet::new(),
                started: Instant::now(),
            },
        );
    }
    refresh_holders(client, &video, &mut fragments).await?;

    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    let mut received: BTreeMap<PeerId, u64> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut last_progress = Instant::now();
    let mut wait = Duration::from_millis(100);
    let mut last_lookup = Instant::now();
    // Who is being asked for each outstanding chunk (two peers in the end game).
    let mut asked: HashMap<(u32, u32), Vec<PeerId>> = HashMap::new();
    // Ties between equally rare fragments are broken at random per fetch, so peers starting
    // together ask the seeder for different fragments and can then trade them.
    let salt = std::hash::RandomState::new();

    while fragments.values().any(|f| f.done < f.info.chunks.len()) {
        // New holders: the gossip table every round (a map lookup), the DHT every few seconds.
        if last_lookup.elapsed() >= DHT_REFRESH {
            refresh_holders(client, &video, &mut fragments).await?;
            last_lookup = Instant::now();
        } else {
            merge_announced(client, &video, &mut fragments);
        }
        // Hand out work: rarest fragment first, each chunk to the least-busy usable holder.
        let now = Instant::now();
        let mut order: Vec<u32> = fragments.keys().copied().collect();
        order.sort_by_key(|i| (fragments[i].holders.len(), salt.hash_one(i)));
        for index in order {
            let f = fragments.get_mut(&index).expect("listed above");
            while let Some(&chunk) = f.todo.front() {
                let pick = least_busy(&f.holders, &[], &peers, opts.per_peer, now);
                let Some(peer) = pick else { break };
                f.todo.pop_front();
                peers.entry(peer).or_default().in_flight += 1;
                asked.entry((index, chunk)).or_default().push(peer);
                in_flight.push(request_chunk(
                    client.clone(),
                    peer,
                    index,
                    chunk,
                    f.info.clone(),
                    manifest.chunk_size,
                    f.writer.clone(),
                ));
            }
        }
        let all_handed_out = fragments.values().all(|f| f.todo.is_empty());
        if all_handed_out && !in_flight.is_empty() && in_flight.len() <= ENDGAME_IN_FLIGHT {
            for ((index, chunk), askees) in asked.iter_mut() {
                let f = &fragments[index];
                if askees.len() != 1 || f.got[*chunk as usize] {
                    continue;
                }
                let second = least_busy(&f.holders, askees, &peers, opts.per_peer, now);
                let Some(peer) = second else { continue };
                debug!(fragment = index, chunk, %peer, "end game: asking a second holder");
                peers.entry(peer).or_default().in_flight += 1;
                askees.push(peer);
                in_flight.push(request_chunk(
                    client.clone(),
                    peer,
                    *index,
                    *chunk,
                    f.info.clone(),
                    manifest.chunk_size,
                    f.writer.clone(),
                ));
            }
        }

        if in_flight.is_empty() {
            // Nothing could be handed out: no usable holder for what is left.
            if last_progress.elapsed() >= opts.stall_timeout {
                let mut left: Vec<u32> = fragments
                    .iter()
                    .filter(|(_, f)| f.done < f.info.chunks.len())
                    .map(|(i, _)| *i)
                    .collect();
                left.sort();
                return Err(FetchError::Stalled {
                    video,
                    missing: left,
                    secs: opts.stall_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            refresh_holders(client, &video, &mut fragments).await?;
            last_lookup = Instant::now();
            continue;
        }

        let Some((peer, index, chunk, outcome)) = in_flight.next().await else {
            continue;
        };
        let p = peers.entry(peer).or_default();
        p.in_flight -= 1;
        let f = fragments.get_mut(&index).expect("requested above");
        // Whether another request for this chunk is still out (end game): then a failure here
        // needs no retry, and whichever answer comes first is the one that counts.
        let still_asked = match asked.get_mut(&(index, chunk)) {
            Some(askees) => {
                askees.retain(|a| *a != peer);
                let any = !askees.is_empty();
                if !any {
                    asked.remove(&(index, chunk));
                }
                any
            }
            None => false,
        };
        let already = f.got[chunk as usize];
        let requeue = |f: &mut Fragment, front: bool| {
            if !already && !still_asked {
                if front {
                    f.todo.push_front(chunk);
                } else {
                    f.todo.push_back(chunk);
                }
            }
        };
        match outcome {
            Outcome::Redundant => {}
            Outcome::Stored(_) if already => {}
            Outcome::Stored(bytes) => {
                last_progress = Instant::now();
                wait = Duration::from_millis(100);
                f.got[chunk as usize] = true;
                f.done += 1;
                f.sources.insert(peer);
                *received.entry(peer).or_default() += u64::from(bytes);
                client.emit(NodeEvent::ChunkReceived {
                    video,
                    fragment: index,
                    chunk,
                    from: peer.to_string(),
                    bytes,
                });
                if f.done == f.info.chunks.len() {
                    complete(client, store, manifest, f).await?;
                }
            }
            Outcome::BadBytes(reason) => {
                p.excluded = true;
                misbehaved(client, peer, &reason);
                requeue(f, true);
            }
            Outcome::NotHeld => {
                f.holders.retain(|h| *h != peer);
                requeue(f, true);
            }
            // The peer is serving all it can: not a fault; ask someone else, or it a bit later.
            Outcome::Busy => {
                p.cool_until = Some(Instant::now() + BUSY_BACKOFF);
                requeue(f, false);
            }
            Outcome::Local(reason) => {
                return Err(FetchError::Task(format!("cannot write a chunk: {reason}")));
            }
            Outcome::Failed(reason) => {
                p.failures += 1;
                debug!(%peer, %reason, failures = p.failures, "chunk request failed");
                if p.failures >= MAX_PEER_FAILURES {
                    info!(%peer, "peer keeps failing; not asking it again in this fetch");
                    p.excluded = true;
                }
                requeue(f, true);
            }
        }
    }
    Ok(received)
}

/// The usable holder (not in `skip`) with the fewest requests in flight.
fn least_busy(
    holders: &[PeerId],
    skip: &[PeerId],
    peers: &HashMap<PeerId, Peer>,
    per_peer: usize,
    now: Instant,
) -> Option<PeerId> {
    holders
        .iter()
        .filter(|p| !skip.contains(p))
        .map(|p| (*p, peers.get(p)))
        .filter(|(_, s)| s.is_none_or(|s| s.usable(per_peer, now)))
        .min_by_key(|(_, s)| s.map_or(0, |s| s.in_flight))
        .map(|(p, _)| p)
}

/// Commits a fully received fragment, then provides and announces it.
async fn complete(
    client: &Client,
    store: &Store,
    manifest: &Manifest,
    f: &mut Fragment,
) -> Result<(), FetchError> {
    // Taken under the lock: a duplicate answer still in flight (end game) then writes nothing.
    let writer = f
        .writer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| FetchError::Task("fragment committed twice".into()))?;
    blocking(move || writer.commit()).await??;
    let mut from: Vec<String> = f.sources.iter().map(|p| p.to_string()).collect();
    from.sort();
    let millis = f.started.elapsed().as_millis() as u64;
    info!(
        fragment = f.info.index,
        bytes = f.info.size,
        ?from,
        millis,
        "fragment stored"
    );
    client.emit(NodeEvent::FragmentStored {
        video: manifest.video_id,
        fragment: f.info.index,
        bytes: f.info.size,
        from,
        millis,
    });
    client.provide(vec![fragment_key(&f.info.blake3)]).await?;
    announce_held(client, store, manifest, false).await
}

/// Adds holders heard of through gossip to every unfinished fragment.
fn merge_announced(
    client: &Client,
    video: &vidswarm_proto::VideoId,
    fragments: &mut HashMap<u32, Fragment>,
) {
    for (index, f) in fragments.iter_mut() {
        if f.done < f.info.chunks.len() {
            for peer in client.availability().holders(video, *index) {
                if !f.holders.contains(&peer) && peer != client.peer_id() {
                    f.holders.push(peer);
                }
            }
        }
    }
}

/// Adds holders from the availability table and the DHT to every unfinished fragment.
async fn refresh_holders(
    client: &Client,
    video: &vidswarm_proto::VideoId,
    fragments: &mut HashMap<u32, Fragment>,
) -> Result<(), FetchError> {
    let lookups = fragments
        .iter()
        .filter(|(_, f)| f.done < f.info.chunks.len())
        .map(|(i, f)| {
            let (client, index, hash) = (client.clone(), *i, f.info.blake3);
            async move { (index, client.providers(fragment_key(&hash)).await) }
        })
        .collect::<FuturesUnordered<_>>()
        .collect::<Vec<_>>()
        .await;
    for (index, providers) in lookups {
        let f = fragments.get_mut(&index).expect("listed above");
        let providers = providers?;
        if !providers.is_empty() {
            client.emit(NodeEvent::ProvidersFound {
                what: format!("fragment {index} of video {}", video.short()),
                providers: providers.iter().map(|p| p.to_string()).collect(),
            });
        }
        let mut found = client.availability().holders(video, index);
        found.extend(providers);
        for peer in found {
            if !f.holders.contains(&peer) && peer != client.peer_id() {
                f.holders.push(peer);
            }
        }
    }
    Ok(())
}

async fn request_chunk(
    client: Client,
    peer: PeerId,
    index: u32,
    chunk: u32,
    info: FragmentInfo,
    chunk_size: u32,
    writer: SharedWriter,
) -> (PeerId, u32, u32, Outcome) {
    let Some((offset, len)) = chunk_range(info.size, chunk_size, u64::from(chunk)) else {
        return (
            peer,
            index,
            chunk,
            Outcome::Failed("chunk out of range".into()),
        );
    };
    let expected: Hash = info.chunks[chunk as usize];
    let request = Request::Chunk {
        fragment: info.blake3,
        offset,
        len,
    };
    let outcome = match client.request(peer, request).await {
        Ok(Response::Chunk { data }) => {
            let data = data.into_vec();
            if data.len() != len as usize {
                Outcome::BadBytes(format!("sent {} bytes for a {len}-byte chunk", data.len()))
            } else {
                // Hash and write off the async threads: both touch 256 KiB.
                let written = tokio::task::spawn_blocking(move || {
                    if Hash::of(&data) != expected {
                        return Err(None);
                    }
                    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                    match w.as_mut() {
                        Some(w) => w.write_at(offset, &data).map(|()| true),
                        None => Ok(false),
                    }
                    .map_err(|e| Some(e.to_string()))
                })
                .await;
                match written {
                    Ok(Ok(true)) => Outcome::Stored(len),
                    Ok(Ok(false)) => Outcome::Redundant,
                    Ok(Err(None)) => Outcome::BadBytes(format!(
                        "chunk {chunk} of fragment {index} does not match its hash"
                    )),
                    Ok(Err(Some(e))) => Outcome::Local(e),
                    Err(e) => Outcome::Local(e.to_string()),
                }
            }
        }
        Ok(Response::Error {
            code: ErrorCode::NotFound,
            ..
        }) => Outcome::NotHeld,
        Ok(Response::Error {
            code: ErrorCode::Busy,
            ..
        }) => Outcome::Busy,
        Ok(Response::Error { code, message }) => Outcome::Failed(format!("{code:?}: {message}")),
        Ok(_) => Outcome::BadBytes("answered a chunk request with another message".into()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    (peer, index, chunk, outcome)
}
