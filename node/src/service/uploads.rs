//! What comes in from outside: a split's manifest and its fragments, loose uploads under a name
//! in the default collection (`store/collection.rs`), and what the original system's routes ask
//! of that collection. The bytes arrive already hashed and checked (a [`Verified`] upload in the
//! data dir's `tmp/`); here they become durable, named and announced.

use std::path::PathBuf;
use std::sync::Arc;

use vidswarm_proto::{
    fragment_name, FragmentInfo, Hash, Manifest, SourceInfo, SplitMode, VideoId, DEFAULT_CHUNK_SIZE,
};

use super::{held, now_ms, Service, ServiceError};
use crate::fetch::FetchOptions;
use crate::store::{Claim, NameSignature, NamedEntry, StoreError, Verified};

/// A manifest taken: whether it is new here, and what to upload next.
#[derive(Debug, Clone)]
pub struct ManifestPut {
    pub new: bool,
    pub missing: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    Stored,
    /// This very content was there already under that name.
    Unchanged,
    Replaced,
}

#[derive(Debug, Clone)]
pub struct NamedUploaded {
    pub video: VideoId,
    pub size: u64,
    pub hash: Hash,
    pub status: UploadStatus,
}

/// A loose upload of the default collection that this node holds.
#[derive(Debug, Clone)]
pub struct CollectionItem {
    pub name: String,
    pub entry: NamedEntry,
    pub fragment: FragmentInfo,
}

/// What was announced by [`Service::announce_everything`], by name.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    pub sent: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub peers: usize,
}

impl Service {
    /// Stores a manifest (validated by the caller's parse), pinned: it is published here.
    /// Announces it when some of its fragments are held already.
    pub async fn put_manifest(&self, manifest: Manifest) -> Result<ManifestPut, ServiceError> {
        let manifest = Arc::new(manifest);
        let m = manifest.clone();
        let put = self
            .store
            .call(move |s| {
                s.pin(&m.video_id)?;
                let new = s.put_manifest(&m)?;
                let missing = m
                    .fragments
                    .iter()
                    .filter(|f| !s.has_fragment(&f.blake3))
                    .map(|f| f.index)
                    .collect::<Vec<_>>();
                Ok(ManifestPut { new, missing })
            })
            .await?;
        if put.missing.len() < manifest.fragments.len() {
            self.announce(&manifest, true).await?;
        }
        Ok(put)
    }

    /// The manifest and fragment an upload to `video`'s fragment `index` must match.
    pub fn upload_target(
        &self,
        video: VideoId,
        index: u32,
    ) -> Result<(Arc<Manifest>, FragmentInfo), ServiceError> {
        let m = held(&self.store, video)?;
        let f = m
            .fragment(index)
            .cloned()
            .ok_or(ServiceError::NoFragment { video, index })?;
        Ok((m, f))
    }

    /// Makes a verified fragment of `manifest` durable, then provides and announces it. The
    /// video is pinned: it is published here.
    pub async fn add_fragment(
        &self,
        manifest: &Manifest,
        verified: Verified,
    ) -> Result<(), ServiceError> {
        let video = manifest.video_id;
        self.store
            .call(move |s| {
                s.pin(&video)?;
                verified.persist()
            })
            .await?;
        self.announce(manifest, true).await
    }

    /// A loose upload: the verified bytes become a one-fragment video named `name` in the default
    /// collection. A name that means other content is refused unless `replace`, and then nothing
    /// is stored.
    pub async fn add_named(
        &self,
        name: String,
        verified: Verified,
        replace: bool,
    ) -> Result<NamedUploaded, ServiceError> {
        let h = verified.fragment().clone();
        let manifest = upload_manifest(&name, h.size, h.hash, h.chunks);
        let video = manifest.video_id;
        let m = manifest.clone();
        let n = name.clone();
        let key = self.publisher.clone();
        let (claim, before) = self
            .store
            .call(
                move |s| -> Result<(Claim, Option<NamedEntry>), StoreError> {
                    // The name is checked before anything is stored: a conflict leaves the store as
                    // it was.
                    let before = s.named(&n);
                    if let Some(old) = before.filter(|o| o.video != video && !replace) {
                        return Ok((Claim::Conflict(old), before));
                    }
                    // Pinned and listed before the bytes land, so garbage collection never sees
                    // them unlisted.
                    s.pin(&video)?;
                    s.put_manifest(&m)?;
                    verified.persist()?;
                    let public = key.public().encode_protobuf();
                    // ed25519 signing cannot fail; an empty signature would only be refused by peers.
                    let sign = |claim: &[u8]| key.sign(claim).unwrap_or_default();
                    let claim = s.claim_name(&n, video, now_ms(), replace, &public, &sign)?;
                    Ok((claim, before))
                },
            )
            .await?;
        let status = match claim {
            Claim::Conflict(old) => {
                return Err(ServiceError::NameTaken {
                    name,
                    old: old.video,
                })
            }
            Claim::Owned(record) => {
                return Err(ServiceError::NameOwned {
                    name,
                    owner: publisher_id(record.owner().unwrap_or_default()),
                })
            }
            Claim::Unchanged(_) => UploadStatus::Unchanged,
            Claim::Recorded(_) if replace => UploadStatus::Replaced,
            Claim::Recorded(_) => UploadStatus::Stored,
        };
        // The replaced upload goes, unless another name still means it.
        if let Some(old) = before.filter(|o| o.video != video && status == UploadStatus::Replaced) {
            if self.store.name_of(&old.video).is_none() {
                if let Err(e) = self.delete_video(old.video).await {
                    tracing::warn!(video = %old.video.short(), error = %e, "cannot remove the replaced upload");
                }
            }
        }
        self.announce(&manifest, true).await?;
        Ok(NamedUploaded {
            video,
            size: h.size,
            hash: h.hash,
            status,
        })
    }

    /// The file of the loose upload called `name`, fetched over the swarm first if only a peer
    /// holds it (the original system's P2P test). Waits for a fetch of it that is running.
    pub async fn named_fragment(&self, name: &str) -> Result<PathBuf, ServiceError> {
        let entry = self.store.named(name).ok_or_else(|| {
            ServiceError::NotHeld(format!(
                "no fragment named {name} in the default collection"
            ))
        })?;
        // Asked by a GET that any web page can send: fetched only from a peer known to hold it,
        // and not pinned (as playback). Without one, 404 at once, not after a fetch of the video
        // that is running (say, one asked for over the API) gives up.
        let not_here = || {
            ServiceError::NotHeld(format!(
                "{name} is not held here, and no connected peer announced holding it"
            ))
        };
        if self.held_upload(&entry)?.is_none() {
            if !self.client.availability().held_anywhere(&entry.video) {
                return Err(not_here());
            }
            self.fetches.wait(&entry.video).await;
        }
        let fragment = match self.held_upload(&entry)? {
            Some(f) => f,
            None => {
                if !self.client.availability().held_anywhere(&entry.video) {
                    return Err(not_here());
                }
                let opts = FetchOptions {
                    stall_timeout: std::time::Duration::from_secs(15),
                    ..self.fetch.clone()
                };
                self.fetch_and_wait(entry.video, &opts, false).await?;
                self.held_upload(&entry)?
                    .ok_or_else(|| ServiceError::NotFetched(name.to_owned()))?
            }
        };
        self.store
            .fragment_path(&fragment.blake3)
            .ok_or_else(|| ServiceError::NotHeld(format!("{name} is no longer held")))
    }

    /// The fragment a collection entry means, if this node holds it. An entry a peer pointed at
    /// a video that is not a loose upload is refused rather than fetched.
    fn held_upload(&self, entry: &NamedEntry) -> Result<Option<FragmentInfo>, ServiceError> {
        let Some(m) = self.store.manifest(&entry.video) else {
            return Ok(None);
        };
        if m.mode != SplitMode::Upload {
            return Err(ServiceError::NotAnUpload);
        }
        let f = m.fragments.first().cloned();
        Ok(f.filter(|f| self.store.has_fragment(&f.blake3)))
    }

    /// The default collection's loose uploads this node holds, sorted by name.
    pub async fn collection(&self) -> Result<Vec<CollectionItem>, ServiceError> {
        let service = self.clone();
        // Tracked by the store like its other blocking work (a stopping node waits for it).
        let items = self
            .store
            .spawn_blocking(move || {
                let mut out = Vec::new();
                for (name, entry) in service.store.collection() {
                    // Not held, or a name that does not mean a loose upload: not listed.
                    if let Ok(Some(fragment)) = service.held_upload(&entry) {
                        out.push(CollectionItem {
                            name,
                            entry,
                            fragment,
                        });
                    }
                }
                out
            })
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(items)
    }

    /// Provides and announces every video held (`/send_all_fragments`); names what was sent:
    /// loose uploads by name, fragments of whole videos as `<video id>/fragment_<i>.mp4`.
    pub async fn announce_everything(&self) -> Result<SendReport, ServiceError> {
        let peers = self.client.connected_peers().await?.len();
        let mut report = SendReport {
            peers,
            ..SendReport::default()
        };
        for m in self.store.manifests() {
            let held: Vec<String> = m
                .fragments
                .iter()
                .filter(|f| self.store.has_fragment(&f.blake3))
                .map(|f| match m.mode {
                    SplitMode::Upload => m.source.name.clone(),
                    _ => format!("{}/{}", m.video_id, f.name),
                })
                .collect();
            let result = if peers == 0 {
                Err("no peer is connected".to_owned())
            } else {
                self.announce(&m, true).await.map_err(|e| e.to_string())
            };
            for name in held {
                match &result {
                    Ok(()) => report.sent.push(name),
                    Err(error) => report.failed.push((name, error.clone())),
                }
            }
        }
        Ok(report)
    }
}

/// The one-fragment manifest a loose upload becomes. Its id depends on the name and the bytes
/// only, so the same upload on two nodes is the same video.
fn upload_manifest(name: &str, size: u64, hash: Hash, chunks: Vec<Hash>) -> Manifest {
    let fragment = FragmentInfo {
        index: 0,
        name: fragment_name(0),
        size,
        duration: 0.0,
        start: 0.0,
        frame_count: 0,
        blake3: hash,
        chunks,
    };
    let source = SourceInfo {
        name: name.to_owned(),
        size,
        duration: 0.0,
        frame_count: 0,
    };
    Manifest::new(
        source,
        SplitMode::Upload,
        DEFAULT_CHUNK_SIZE,
        vec![fragment],
    )
}

/// The peer id of a publisher key (protobuf encoding), or a note that it is not one.
pub(crate) fn publisher_id(key: &[u8]) -> String {
    libp2p::identity::PublicKey::try_decode_protobuf(key)
        .map(|k| k.to_peer_id().to_string())
        .unwrap_or_else(|_| "(an unreadable key)".into())
}

/// The signature of a name entry a peer announced, checked: `Ok(None)` for an unsigned entry
/// (from a node that predates signatures), `Err` for one whose signature does not verify.
pub(crate) fn checked_signature(
    named: &vidswarm_proto::wire::NamedUpload,
    video: &VideoId,
) -> Result<Option<NameSignature>, &'static str> {
    let (Some(publisher), Some(signature)) = (&named.publisher, &named.signature) else {
        return Ok(None);
    };
    let key = libp2p::identity::PublicKey::try_decode_protobuf(publisher)
        .map_err(|_| "not a publisher key")?;
    let claim = vidswarm_proto::name_claim(&named.name, video, named.uploaded_at_ms);
    if !key.verify(&claim, signature) {
        return Err("the signature does not match the entry");
    }
    Ok(Some(NameSignature {
        publisher: publisher.to_vec(),
        signature: signature.to_vec(),
    }))
}
