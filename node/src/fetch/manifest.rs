//! Getting a video's manifest: from the store, else from peers (announcers, DHT providers, then
//! anyone connected), accepted only if it hashes to the video id asked for.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tracing::info;
use vidswarm_proto::wire::{Request, Response};
use vidswarm_proto::{Manifest, VideoId};

use super::{misbehaved, FetchError};
use crate::events::{Lookup, NodeEvent};
use crate::net::{manifest_key, Client};
use crate::store::Store;

/// The manifest of `video`: from the store, or from the first peer whose answer hashes to it.
pub async fn get(
    client: &Client,
    store: &Store,
    video: VideoId,
    stall_timeout: Duration,
) -> Result<Arc<Manifest>, FetchError> {
    if let Some(m) = store.manifest(&video) {
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
                what: Lookup::Manifest { video },
                providers: providers.clone(),
            });
        }
        candidates.extend(providers);
        candidates.extend(client.connected_peers().await?);
        let mut seen = BTreeSet::new();
        candidates.retain(|p| seen.insert(*p));
        asked.extend(candidates.iter().copied());
        if let Some((peer, m)) = race_for_manifest(client, video, candidates).await {
            let m = Arc::new(m);
            let m2 = m.clone();
            store.call(move |s| s.put_manifest(&m2)).await?;
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
