//! The service layer: what a node does, as the transports (HTTP, CLI, the node's own tasks) ask
//! for it. Each operation is one domain transaction over the store and the swarm: publish a split,
//! take an upload, announce what is held, start and follow a fetch. Transports parse, call, and
//! map the error's [`Kind`] to their own codes; none of them touches `fetch/` or runs a
//! transaction of its own.
//!
//! - `fetches.rs`: the fetch registry, the one gate for one fetch per video.
//! - `auto_fetch.rs`: how many announced videos are fetched at once, and back-off after failures.
//! - `uploads.rs`: manifests and fragments from outside, and the default collection.
//! - `playback.rs`: what a viewer needs first, fetched first and handed over as it arrives.
//! - `error.rs`: [`ServiceError`] and its [`Kind`].

pub mod auto_fetch;
mod error;
pub mod fetches;
mod playback;
mod resume;
pub mod space;
mod uploads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};
use vidswarm_proto::wire::AnnouncedFragment;
use vidswarm_proto::{Manifest, VideoId};

pub use auto_fetch::{AutoFetch, AutoFetchConfig};
pub use error::{store_kind, Kind, NoRoom, ServiceError};
pub use fetches::{now_ms, FetchProgress, FetchRegistry, FetchState};
pub use playback::Playable;
pub use space::SpaceConfig;
pub(crate) use uploads::checked_signature;
pub use uploads::{CollectionItem, ManifestPut, NamedUploaded, SendReport, UploadStatus};

pub use crate::fetch::{FetchOptions, FetchReport};

use crate::fetch::{self, Reporter};
use crate::net::{fragment_key, manifest_key, Client};
use crate::store::{ImportReport, Store, StoreError};

/// Cheap to clone: every clone is the same service.
#[derive(Clone)]
pub struct Service {
    client: Client,
    store: Store,
    fetches: FetchRegistry,
    fetch: FetchOptions,
    auto: AutoFetch,
    /// The disk budget (`space.rs`).
    space: SpaceConfig,
    /// The key that signs the names of this node's uploads (`uploads.rs`): the node's identity
    /// unless the operator gave another (`--publisher-key`).
    publisher: libp2p::identity::Keypair,
    /// Fetches running in the background (started over HTTP or by auto-fetch).
    tasks: TaskTracker,
    /// Cancelled when the node stops: background fetches end at their next step.
    stop: CancellationToken,
}

impl Service {
    pub fn new(client: Client, store: Store, fetch: FetchOptions) -> Self {
        Self {
            client,
            store,
            fetches: FetchRegistry::default(),
            fetch,
            auto: AutoFetch::new(AutoFetchConfig::default()),
            space: SpaceConfig::default(),
            publisher: libp2p::identity::Keypair::generate_ed25519(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// The same service with auto-fetch paced by `config`.
    pub fn with_auto_fetch(mut self, config: AutoFetchConfig) -> Self {
        self.auto = AutoFetch::new(config);
        self
    }

    /// The same service within the disk budget `space`.
    pub fn with_space(mut self, space: SpaceConfig) -> Self {
        self.space = space;
        self.store.set_reserve(space.min_free);
        self.store.set_resume_every(space.resume_every);
        self
    }

    /// The same service signing names with `publisher`.
    pub fn with_publisher(mut self, publisher: libp2p::identity::Keypair) -> Self {
        self.publisher = publisher;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn fetches(&self) -> &FetchRegistry {
        &self.fetches
    }

    pub fn peer_id(&self) -> PeerId {
        self.client.peer_id()
    }

    /// The options fetches run with unless a caller says otherwise.
    pub fn fetch_options(&self) -> &FetchOptions {
        &self.fetch
    }

    /// The manifest of `video`, if this node holds it.
    pub fn manifest(&self, video: VideoId) -> Result<Arc<Manifest>, ServiceError> {
        held(&self.store, video)
    }

    /// Where fragment `index` of `video` is, if this node holds it.
    pub fn fragment_file(&self, video: VideoId, index: u32) -> Result<PathBuf, ServiceError> {
        let m = held(&self.store, video)?;
        let f = m
            .fragment(index)
            .ok_or(ServiceError::NoFragment { video, index })?;
        self.store
            .fragment_path(&f.blake3)
            .ok_or_else(|| ServiceError::NotHeld(format!("fragment {index} is not held here")))
    }

    /// Provides (when `provide`) and announces every fragment of `manifest` this node holds.
    pub async fn announce(&self, manifest: &Manifest, provide: bool) -> Result<(), ServiceError> {
        let video = manifest.video_id;
        let held = self.held_fragments(manifest).await?;
        if provide {
            let mut keys = vec![manifest_key(&video)];
            keys.extend(held.iter().map(|f| fragment_key(&f.hash)));
            self.client.provide(keys).await?;
        }
        let announcement = fetch::announcement(&self.client, &self.store, video, held);
        self.client.announce(announcement).await?;
        Ok(())
    }

    /// Tells the swarm this node is leaving: one goodbye per video it holds, so peers forget its
    /// availability and provider records now, not when their TTL runs out (the DHT has no way
    /// to withdraw a record). Peers that miss it still back off after one failed dial.
    pub async fn say_goodbye(&self) -> Result<(), ServiceError> {
        for m in self.store.manifests() {
            let held = self.held_fragments(&m).await?;
            let mut goodbye = fetch::announcement(&self.client, &self.store, m.video_id, held);
            goodbye.leaving = true;
            goodbye.named = None;
            self.client.announce(goodbye).await?;
        }
        Ok(())
    }

    async fn held_fragments(
        &self,
        manifest: &Manifest,
    ) -> Result<Vec<AnnouncedFragment>, ServiceError> {
        let hashes: Vec<_> = manifest
            .fragments
            .iter()
            .map(|f| (f.index, f.blake3))
            .collect();
        Ok(self
            .store
            .call(move |s| {
                Ok(hashes
                    .into_iter()
                    .filter(|(_, h)| s.has_fragment(h))
                    .map(|(index, hash)| AnnouncedFragment { index, hash })
                    .collect())
            })
            .await?)
    }

    /// Provides and announces what this node holds of `video`, if it knows the video.
    pub async fn publish(&self, video: &VideoId) -> Result<(), ServiceError> {
        if let Some(m) = self.store.manifest(video) {
            self.announce(&m, true).await?;
        }
        Ok(())
    }

    /// Imports a whole split dir, then provides and announces it.
    pub async fn import_split(&self, dir: &Path) -> Result<ImportReport, ServiceError> {
        let dir = dir.to_owned();
        let report = self.store.call(move |s| s.import_split_dir(&dir)).await?;
        self.publish(&report.video_id).await?;
        Ok(report)
    }

    /// Stores `manifest` and the fragments `indices` from `dir` (a split dir), without telling
    /// anyone: how the demo and tests seed a node with part of a video before [`Service::publish`].
    pub async fn seed(
        &self,
        manifest: &Manifest,
        dir: &Path,
        indices: &[u32],
    ) -> Result<(), ServiceError> {
        let (m, dir, indices) = (manifest.clone(), dir.to_owned(), indices.to_vec());
        self.store
            .call(move |s| -> Result<(), StoreError> {
                s.pin(&m.video_id)?;
                s.put_manifest(&m)?;
                for i in indices {
                    let f = &m.fragments[i as usize];
                    s.import_fragment_file(&dir.join(&f.name), &f.blake3)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Fetches `video` (or `opts.fragments` of it) and waits for the end; refused while another
    /// fetch of the video runs. The video is pinned: asked for here, it is never evicted.
    pub async fn fetch(
        &self,
        video: VideoId,
        opts: &FetchOptions,
    ) -> Result<FetchReport, ServiceError> {
        self.fetch_and_wait(video, opts, true).await
    }

    /// [`Service::fetch`], pinning what it brings only when `pin` (a read, such as the legacy
    /// `GET /get_fragment`, pins nothing: any web page can send one).
    pub(crate) async fn fetch_and_wait(
        &self,
        video: VideoId,
        opts: &FetchOptions,
        pin: bool,
    ) -> Result<FetchReport, ServiceError> {
        let ticket = self
            .fetches
            .begin(video)
            .ok_or(ServiceError::FetchRunning(video))?;
        self.run_fetch(ticket, opts, pin).await
    }

    /// Starts fetching `video` (or `fragments` of it) in the background, pinned; refused while
    /// another fetch of the video runs. Follow it in [`Service::fetches`].
    pub fn start_fetch(
        &self,
        video: VideoId,
        fragments: Option<Vec<u32>>,
    ) -> Result<(), ServiceError> {
        let ticket = self
            .fetches
            .begin(video)
            .ok_or(ServiceError::FetchRunning(video))?;
        let opts = FetchOptions {
            fragments,
            ..self.fetch.clone()
        };
        self.spawn_fetch(ticket, opts, "fetch requested", Fetched::Pinned);
        Ok(())
    }

    /// What auto-fetch does with an announced video: fetch what this node lacks of it, when
    /// some peer holds any of it, no fetch of it runs already, it is not backing off from a
    /// failure and an auto-fetch slot is free (else a later announcement asks again).
    pub async fn fetch_announced(&self, video: VideoId) {
        if self.fetches.running(&video) || !self.client.availability().held_anywhere(&video) {
            return;
        }
        if self.auto.backing_off(&video, tokio::time::Instant::now())
            || self.holds_all(&video).await
        {
            return;
        }
        let Some(slot) = self.auto.try_start(video, tokio::time::Instant::now()) else {
            return;
        };
        if let Some(ticket) = self.fetches.begin(video) {
            self.spawn_fetch(
                ticket,
                self.fetch.clone(),
                "auto-fetch",
                Fetched::Auto(slot),
            );
        }
    }

    async fn holds_all(&self, video: &VideoId) -> bool {
        let Some(m) = self.store.manifest(video) else {
            return false;
        };
        self.store
            .call(move |s| Ok(m.fragments.iter().all(|f| s.has_fragment(&f.blake3))))
            .await
            .unwrap_or(false)
    }

    pub(super) fn spawn_fetch(
        &self,
        ticket: fetches::Ticket,
        opts: FetchOptions,
        why: &'static str,
        fetched: Fetched,
    ) {
        let (service, stop) = (self.clone(), self.stop.clone());
        let video = ticket.video();
        let span = tracing::info_span!("background", why);
        self.tasks.spawn(
            async move {
                tokio::select! {
                    result = service.run_fetch(ticket, &opts, matches!(fetched, Fetched::Pinned)) => {
                        match &result {
                            Ok(r) => info!(video = %video.short(), fetched = ?r.fetched, "done"),
                            Err(e) => warn!(video = %video.short(), error = %e, "failed"),
                        }
                        if let Fetched::Auto(slot) = fetched {
                            slot.finished(result.is_ok());
                        }
                    }
                    // Dropping the fetch drops its ticket (marked stopped) and its uncommitted
                    // temp files; commits already on the blocking pool finish there.
                    _ = stop.cancelled() => info!(video = %video.short(), "stopped"),
                }
            }
            .instrument(span),
        );
    }

    async fn run_fetch(
        &self,
        ticket: fetches::Ticket,
        opts: &FetchOptions,
        pin: bool,
    ) -> Result<FetchReport, ServiceError> {
        let video = ticket.video();
        if pin {
            self.store.call(move |s| s.pin(&video)).await?;
        }
        let observe = |e: &crate::events::NodeEvent| ticket.record(e);
        let room = |needed: u64| -> futures::future::BoxFuture<'_, Result<(), NoRoom>> {
            Box::pin(self.make_room(video, needed))
        };
        let reporter = Reporter {
            client: &self.client,
            observe: &observe,
            room: &room,
        };
        // Every fetch can be steered by a viewer (`fragment_for_playback`).
        let opts = FetchOptions {
            playhead: Some(ticket.playhead()),
            ..opts.clone()
        };
        let result = fetch::fetch(&reporter, &self.store, video, &opts).await;
        ticket.finish(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        // What a failed fetch left (a manifest, no fragment) and what the budget no longer has
        // room for go now, not at the next round.
        if let Err(e) = self.tidy().await {
            warn!(error = %e, "cannot tidy the store");
        }
        Ok(result?)
    }

    /// Stops background fetches and waits (at most `within`) until they are gone.
    pub async fn stop(&self, within: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok()
    }

    /// Whether [`Service::stop`] was called: the node's own tasks end when it is.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }
}

/// How a background fetch came about, which decides whether what it brings is kept for good.
pub(super) enum Fetched {
    /// Asked for here: pinned.
    Pinned,
    /// Started by a viewer: evictable (reads are open to any web page, so they pin nothing).
    Playback,
    /// Started by auto-fetch, in this slot: evictable.
    Auto(auto_fetch::AutoSlot),
}

/// The manifest of `video`, or [`ServiceError::NoManifest`].
pub(crate) fn held(store: &Store, video: VideoId) -> Result<Arc<Manifest>, ServiceError> {
    store
        .manifest(&video)
        .ok_or(ServiceError::NoManifest(video))
}
