//! Getting a video's manifest: from the store, else from peers (announcers, DHT providers, then
//! anyone connected), accepted only if it hashes to the video id asked for.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tokio::sync::broadcast;
use tracing::info;
use vidswarm_proto::wire::{Request, Response};
use vidswarm_proto::{Manifest, VideoId};

use super::swarm_seams::reachable_now;
use super::{misbehaved, FetchError, FetchOptions};
use crate::events::{Lookup, NodeEvent};
use crate::net::{manifest_key, Client};
use crate::store::Store;

/// How many peers are asked for a manifest at once, at first.
pub const MANIFEST_FANOUT: usize = 3;
/// Then one more peer is asked every this long while no valid answer has come.
pub const MANIFEST_STAGGER: Duration = Duration::from_millis(300);

/// The manifest of `video`: from the store, or from the first peer whose answer hashes to it.
/// Connected peers are asked at once (those that announced the video first); the DHT lookup runs
/// beside them, and the providers it finds are dialed and asked once connected.
pub async fn get(
    client: &Client,
    store: &Store,
    video: VideoId,
    opts: &FetchOptions,
) -> Result<Arc<Manifest>, FetchError> {
    if let Some(m) = store.manifest(&video) {
        return Ok(m);
    }
    let deadline = Instant::now() + opts.stall_timeout;
    // Subscribed before the first look, so a peer that connects meanwhile is not missed.
    let mut events = client.subscribe();
    let mut asked: BTreeSet<PeerId> = BTreeSet::new();
    let mut providers: Vec<PeerId> = Vec::new();
    let mut lookup = Some(providers_of(client, video));
    let mut wait = Duration::from_millis(100);
    loop {
        // Announcers first (they hold it), then anyone connected, then the DHT's providers.
        let candidates = || {
            let mut peers = client.availability().peers_with(&video);
            peers.extend(client.peers().connected_now());
            peers.extend(providers.iter().copied());
            reachable_now(client, peers)
        };
        asked.extend(candidates());
        if let Some((peer, m)) = race_for_manifest(client, video, candidates).await {
            let m = Arc::new(m);
            let m2 = m.clone();
            store.call(move |s| s.put_manifest(&m2)).await?;
            if opts.provide {
                client.provide(vec![manifest_key(&video)]).await?;
            }
            info!(%peer, "got the manifest");
            return Ok(m);
        }
        if Instant::now() >= deadline {
            return Err(FetchError::ManifestUnavailable {
                video,
                secs: opts.stall_timeout.as_secs(),
                asked: asked.len(),
            });
        }
        // Nobody had it yet: announcements, DHT answers or dials may still be on their way.
        // A new peer or an announcement of the video ends the nap at once (at start-up the
        // bootstrap peers connect a few milliseconds after the first look).
        let nap = tokio::time::sleep(wait.min(deadline - Instant::now()));
        let news = new_candidate(&mut events, video, &asked);
        match lookup.as_mut() {
            Some(running) => tokio::select! {
                found = running => {
                    providers.extend(found?);
                    lookup = None;
                }
                _ = nap => {}
                _ = news => {}
            },
            None => tokio::select! {
                _ = nap => lookup = Some(providers_of(client, video)),
                _ = news => {}
            },
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Resolves when a peer not asked yet connects, or one announces `video`: someone new to ask.
/// Also when events were lost (the channel lagged): one look too many costs nothing.
async fn new_candidate(
    events: &mut broadcast::Receiver<NodeEvent>,
    video: VideoId,
    asked: &BTreeSet<PeerId>,
) {
    loop {
        match events.recv().await {
            Ok(NodeEvent::PeerConnected { peer }) if !asked.contains(&peer) => return,
            Ok(NodeEvent::AnnouncementReceived { video: v, .. }) if v == video => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// The DHT's providers of `video`'s manifest, as a future that owns what it needs.
fn providers_of(
    client: &Client,
    video: VideoId,
) -> BoxFuture<'static, Result<Vec<PeerId>, FetchError>> {
    let client = client.clone();
    async move {
        let providers = client.providers(manifest_key(&video)).await?;
        if !providers.is_empty() {
            client.emit(NodeEvent::ProvidersFound {
                what: Lookup::Manifest { video },
                providers: providers.clone(),
            });
        }
        Ok(providers)
    }
    .boxed()
}

/// Asks the peers `candidates()` names for the manifest of `video`: the first
/// [`MANIFEST_FANOUT`] at once, then one more every [`MANIFEST_STAGGER`] while no valid answer
/// has come, and returns the first valid one. `candidates()` is asked again as the race runs, so
/// a peer that connects meanwhile joins it: a silent peer asked first costs a fraction of a
/// second, never its request timeout. `None` once everyone asked has answered, without a manifest.
async fn race_for_manifest(
    client: &Client,
    video: VideoId,
    candidates: impl Fn() -> Vec<PeerId>,
) -> Option<(PeerId, Manifest)> {
    let ask = |peer: PeerId| async move {
        let answer = client.request(peer, Request::Manifest { video }).await;
        (peer, answer)
    };
    let mut asked: BTreeSet<PeerId> = BTreeSet::new();
    let mut queue: VecDeque<PeerId> = VecDeque::new();
    let mut pending = FuturesUnordered::new();
    let mut next_ask = tokio::time::Instant::now();
    loop {
        queue.extend(candidates().into_iter().filter(|p| asked.insert(*p)));
        let now = tokio::time::Instant::now();
        if now >= next_ask || pending.is_empty() {
            let burst = if asked.len() <= MANIFEST_FANOUT {
                MANIFEST_FANOUT
            } else {
                1
            };
            for peer in queue.drain(..burst.min(queue.len())) {
                pending.push(ask(peer));
            }
            next_ask = now + MANIFEST_STAGGER;
        }
        if pending.is_empty() {
            return None;
        }
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
            // Ask the next one, or see who has connected since.
            _ = tokio::time::sleep_until(next_ask) => {}
        }
    }
}
