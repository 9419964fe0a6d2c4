//! The seams as a node has them: chunks and holders from the swarm ([`SwarmSource`]), verified
//! chunks into the store ([`StoreSink`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::PeerId;
use vidswarm_proto::wire::{
    AnnouncedFragment, Announcement, ErrorCode, NamedUpload, PartialFragment, Request, Response,
};
use vidswarm_proto::{Hash, Manifest, VideoId};

use super::seams::{ChunkAnswer, ChunkSource, FragmentSink, SinkError, Written};
use super::FetchError;
use crate::events::{Lookup, NodeEvent};
use crate::net::{fragment_key, Client};
use crate::store::{FragmentWriter, Store, StoreError};

/// Chunks, holders and announcements of one video, through the node's swarm. Holders are given
/// to the download only while connected: one found in the DHT but not connected is dialed in the
/// background and handed over by [`ChunkSource::announced`] once it is.
pub struct SwarmSource {
    client: Client,
    store: Store,
    video: VideoId,
    provide: bool,
    /// Holders found in the DHT, per fragment index, connected or not.
    found: Arc<Mutex<HashMap<u32, Vec<PeerId>>>>,
    /// Whether the fetch's first progress went out (by gossip; the rest go to connected peers).
    told_swarm: AtomicBool,
}

impl SwarmSource {
    pub fn new(client: Client, store: Store, video: VideoId, provide: bool) -> Self {
        Self {
            client,
            store,
            video,
            provide,
            found: Arc::default(),
            told_swarm: AtomicBool::new(false),
        }
    }
}

/// The connected ones of `peers` (never this node); the others are dialed in the background.
pub(crate) fn reachable_now(
    client: &Client,
    peers: impl IntoIterator<Item = PeerId>,
) -> Vec<PeerId> {
    let me = client.peer_id();
    let mut out = Vec::new();
    for peer in peers {
        if peer == me || out.contains(&peer) {
            continue;
        }
        if client.peers().is_connected(&peer) {
            out.push(peer);
        } else if !client.peers().is_backed_off(&peer) {
            client.connect_soon(peer);
        }
    }
    out
}

impl ChunkSource for SwarmSource {
    fn chunk(
        &self,
        peer: PeerId,
        hash: Hash,
        offset: u64,
        len: u32,
        may_decline: bool,
    ) -> BoxFuture<'static, ChunkAnswer> {
        let client = self.client.clone();
        async move {
            let request = Request::Chunk {
                fragment: hash,
                offset,
                len,
                may_decline,
            };
            match client.request(peer, request).await {
                Ok(Response::Chunk { data }) => ChunkAnswer::Data(data.into_vec()),
                Ok(Response::Error {
                    code: ErrorCode::NotFound,
                    ..
                }) => ChunkAnswer::NotHeld,
                Ok(Response::Error {
                    code: ErrorCode::Busy,
                    ..
                }) => ChunkAnswer::Busy,
                Ok(Response::Error {
                    code: ErrorCode::Declined,
                    also_declined,
                    ..
                }) => ChunkAnswer::Declined(also_declined),
                Ok(Response::Error { code, message, .. }) => {
                    ChunkAnswer::Failed(format!("{code:?}: {message}"))
                }
                Ok(_) => ChunkAnswer::Wrong("answered a chunk request with another message".into()),
                Err(e) => ChunkAnswer::Failed(e.to_string()),
            }
        }
        .boxed()
    }

    fn announced(&self, index: u32) -> Vec<PeerId> {
        let mut peers = self.client.availability().holders(&self.video, index);
        let found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        peers.extend(found.get(&index).into_iter().flatten());
        drop(found);
        reachable_now(&self.client, peers)
    }

    fn look_up(
        &self,
        index: u32,
        hash: Hash,
    ) -> BoxFuture<'static, Result<Vec<PeerId>, FetchError>> {
        let (client, video) = (self.client.clone(), self.video);
        let found = self.found_for(index);
        async move {
            let providers = client.providers(fragment_key(&hash)).await?;
            if !providers.is_empty() {
                client.emit(NodeEvent::ProvidersFound {
                    what: Lookup::Fragment { video, index },
                    providers: providers.clone(),
                });
            }
            found(&providers);
            Ok(reachable_now(&client, providers))
        }
        .boxed()
    }

    fn announced_partial(&self, index: u32) -> Vec<(PeerId, Vec<u8>)> {
        let partial = self
            .client
            .availability()
            .partial_holders(&self.video, index);
        let live = reachable_now(&self.client, partial.iter().map(|(p, _)| *p));
        partial
            .into_iter()
            .filter(|(p, _)| live.contains(p))
            .collect()
    }

    /// The first progress goes to the whole swarm by gossip: peers fetching the same video that
    /// are not connected yet learn of this node and connect. The rest only matters to connected
    /// peers (only they can ask for chunks) and goes straight to each (`net/have.rs`).
    fn progress(&self, partial: Vec<PartialFragment>) {
        let client = self.client.clone();
        let announcement = self.progress_announcement(partial);
        let first = !self.told_swarm.swap(true, Ordering::Relaxed);
        tokio::spawn(async move {
            let told = if first {
                client.announce(announcement).await
            } else {
                client.progress(announcement).await
            };
            if let Err(e) = told {
                tracing::debug!(error = %e, "cannot announce the fetch's progress");
            }
        });
    }

    fn audience(&self) -> usize {
        self.client.peers().connected_count()
    }

    /// Provides the fragment and announces it alone (announcements add to what a peer is heard
    /// to hold): O(1) per gained fragment. The periodic announcer still re-announces everything.
    fn gained(&self, index: u32, hash: Hash) -> BoxFuture<'static, Result<(), FetchError>> {
        let (client, store, video) = (self.client.clone(), self.store.clone(), self.video);
        let provide = self.provide;
        async move {
            if provide {
                client.provide(vec![fragment_key(&hash)]).await?;
            }
            let fragments = vec![AnnouncedFragment { index, hash }];
            client
                .announce(announcement(&client, &store, video, fragments))
                .await?;
            Ok(())
        }
        .boxed()
    }
}

impl SwarmSource {
    fn progress_announcement(&self, partial: Vec<PartialFragment>) -> Announcement {
        Announcement {
            partial,
            ..announcement(&self.client, &self.store, self.video, vec![])
        }
    }

    /// Remembers DHT holders of fragment `index`, for `announced` to hand over once connected.
    fn found_for(&self, index: u32) -> impl FnOnce(&[PeerId]) + Send + 'static {
        let found = Arc::clone(&self.found);
        move |peers: &[PeerId]| {
            let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
            let list = found.entry(index).or_default();
            for p in peers {
                if !list.contains(p) {
                    list.push(*p);
                }
            }
        }
    }
}

/// This node's announcement that it holds `fragments` of `video`; a loose upload carries its
/// default-collection name, so every node learns it.
pub(crate) fn announcement(
    client: &Client,
    store: &Store,
    video: VideoId,
    fragments: Vec<AnnouncedFragment>,
) -> Announcement {
    let named = store.name_record_of(&video).map(|(name, r)| NamedUpload {
        name,
        uploaded_at_ms: r.entry.uploaded_at_ms,
        publisher: r
            .signed
            .as_ref()
            .map(|s| serde_bytes::ByteBuf::from(s.publisher.clone())),
        signature: r.signed.map(|s| serde_bytes::ByteBuf::from(s.signature)),
    });
    Announcement {
        video,
        peer: client.peer_id().to_string(),
        manifest: true,
        fragments,
        named,
        leaving: false,
        partial: vec![],
        withdrawn: None,
    }
}

/// One fragment's writer: chunks write under the read lock, so writes of different chunks run
/// at once (positioned writes); the commit takes it under the write lock and leaves `None`, so a
/// late duplicate chunk (end game) finds nothing to write into.
type Slot = Arc<RwLock<Option<FragmentWriter>>>;

/// Verified chunks of one video's fragments into the store. A fragment's file is opened when its
/// first chunk arrives; what was not committed when the sink drops rests for the next fetch.
/// While a fragment is written, its verified chunks can be read (`store/partial.rs`: a viewer
/// streams it).
pub struct StoreSink {
    store: Store,
    manifest: Arc<Manifest>,
    slots: Mutex<HashMap<u32, Slot>>,
}

impl StoreSink {
    pub fn new(store: Store, manifest: Arc<Manifest>) -> Self {
        Self {
            store,
            manifest,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, fragment: u32) -> Result<Slot, StoreError> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(&fragment) {
            return Ok(slot.clone());
        }
        let info = &self.manifest.fragments[fragment as usize];
        let writer = self
            .store
            .begin_fragment(info.blake3, info.size, self.manifest.chunk_size)?;
        let slot = Arc::new(RwLock::new(Some(writer)));
        slots.insert(fragment, slot.clone());
        Ok(slot)
    }
}

impl FragmentSink for StoreSink {
    fn write(&self, fragment: u32, chunk: u32, data: &[u8]) -> Result<Written, SinkError> {
        let info = &self.manifest.fragments[fragment as usize];
        if info.chunks.get(chunk as usize) != Some(&Hash::of(data)) {
            return Err(SinkError::BadHash { fragment, chunk });
        }
        let offset = u64::from(chunk) * u64::from(self.manifest.chunk_size);
        let slot = self.slot(fragment)?;
        let writer = slot.read().unwrap_or_else(PoisonError::into_inner);
        match writer.as_ref() {
            Some(w) => {
                w.write_at(offset, data)?;
                w.chunk_verified(chunk)?;
                Ok(Written::Stored)
            }
            None => Ok(Written::AlreadyComplete),
        }
    }

    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.store.spawn_blocking(f)
    }

    fn commit(&self, fragment: u32) -> Result<(), StoreError> {
        let slot = self.slot(fragment)?;
        let writer = slot.write().unwrap_or_else(PoisonError::into_inner).take();
        match writer {
            Some(w) => w.commit(),
            // Committed already: nothing to do twice.
            None => Ok(()),
        }
    }

    fn resumed(&self, fragment: u32) -> Vec<bool> {
        let info = &self.manifest.fragments[fragment as usize];
        self.store
            .resumable(&info.blake3, info.size, self.manifest.chunk_size)
            .unwrap_or_default()
    }
}

impl Drop for StoreSink {
    /// The fragments not committed save their resume records and rest (`FragmentWriter`'s
    /// drop), on the blocking pool: saving syncs files.
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(PoisonError::into_inner));
        // Outside a runtime (nothing to spawn on), right here.
        if !slots.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            drop(self.store.spawn_blocking(move || drop(slots)));
        }
    }
}
