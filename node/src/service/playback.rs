//! Playback: the fragment a viewer needs, fetched first (a running fetch steered to it, or a
//! fetch of the playback window started) and handed over whole or as its chunks are verified.

use std::path::PathBuf;
use std::sync::Arc;

use vidswarm_proto::{Manifest, VideoId};

use super::{fetches, FetchOptions, Service, ServiceError};
use crate::fetch;

/// A fragment for a viewer: stored whole, or arriving (its verified chunks readable so far).
pub enum Playable {
    Held(PathBuf),
    Arriving(Arc<crate::store::partial::Partial>),
}

impl Service {
    /// Whether this node holds `video`'s manifest or a connected peer announced the video: the
    /// videos playback may fetch (a made-up id starts nothing).
    pub fn knows(&self, video: &VideoId) -> bool {
        self.store.manifest(video).is_some() || self.client.availability().knows(video)
    }

    /// Fragment `index` of `video` for a viewer: at once if held. Otherwise a running fetch of
    /// the video is steered to it, or (auto-fetch or not) a fetch of what playback needs starts:
    /// that fragment and the [`PLAYBACK_WINDOW`](crate::fetch::PLAYBACK_WINDOW) after it. Answers
    /// once it is verified and stored, or says why not once the fetch has failed or nothing came
    /// for the stall timeout.
    pub async fn fragment_for_playback(
        &self,
        video: VideoId,
        index: u32,
    ) -> Result<PathBuf, ServiceError> {
        match self.wait_for_fragment(video, index, false).await? {
            Playable::Held(path) => Ok(path),
            Playable::Arriving(_) => Err(ServiceError::NotHeld(format!(
                "fragment {index} is still arriving"
            ))),
        }
    }

    /// Like [`Service::fragment_for_playback`], but answers as soon as the fragment starts
    /// arriving, with a handle that reads its chunks as they are verified.
    pub async fn fragment_as_it_arrives(
        &self,
        video: VideoId,
        index: u32,
    ) -> Result<Playable, ServiceError> {
        self.wait_for_fragment(video, index, true).await
    }

    async fn wait_for_fragment(
        &self,
        video: VideoId,
        index: u32,
        partial: bool,
    ) -> Result<Playable, ServiceError> {
        if !self.knows(&video) {
            // Neither held nor announced: a made-up id starts no fetch.
            return Err(ServiceError::NoManifest(video));
        }
        let deadline = tokio::time::Instant::now() + self.fetch.stall_timeout;
        let mut begun = self.store.partials().begun();
        let mut started = false;
        loop {
            if let Some(found) = self.playable_now(video, index, partial)? {
                return Ok(found);
            }
            if !self.fetches.steer(&video, index) {
                let failed = self.fetches.get(&video).and_then(|p| p.error);
                match (started, failed) {
                    // Ours ended without it (a video the swarm does not have, a dead holder).
                    (true, why) => {
                        return Err(ServiceError::NotFetched(format!(
                            "fragment {index}: {}",
                            why.unwrap_or_else(|| "the fetch ended without it".into())
                        )))
                    }
                    (false, _) => {
                        if let Some(ticket) = self.fetches.begin(video) {
                            started = true;
                            self.spawn_playback_fetch(ticket, index);
                        }
                    }
                }
            }
            let Some(mut changes) = self.fetches.changes(&video) else {
                continue;
            };
            changes.mark_unchanged();
            begun.mark_unchanged();
            // Looked at after subscribing, so nothing that happened meanwhile is missed.
            if self.playable_now(video, index, partial)?.is_some() || !self.fetches.running(&video)
            {
                continue;
            }
            let woken = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = begun.changed(), if partial => {}
                }
            });
            if woken.await.is_err() {
                return Err(ServiceError::NotFetched(format!(
                    "fragment {index} (nothing came within {} s)",
                    self.fetch.stall_timeout.as_secs()
                )));
            }
        }
    }

    /// The fragment if held, or (when `partial`) arriving now; an error if there is no such
    /// fragment in a manifest held here.
    fn playable_now(
        &self,
        video: VideoId,
        index: u32,
        partial: bool,
    ) -> Result<Option<Playable>, ServiceError> {
        match self.fragment_file(video, index) {
            Ok(path) => return Ok(Some(Playable::Held(path))),
            Err(e @ ServiceError::NoFragment { .. }) => return Err(e),
            Err(_) => {}
        }
        if !partial {
            return Ok(None);
        }
        let arriving = self
            .store
            .manifest(&video)
            .and_then(|m| m.fragment(index).map(|f| f.blake3))
            .and_then(|hash| self.store.partials().arriving(&hash));
        Ok(arriving.map(Playable::Arriving))
    }

    /// The manifest of `video`: held, or (for a video a peer announced) asked of the swarm and
    /// kept. A video neither held nor announced is [`ServiceError::NoManifest`] at once.
    pub async fn manifest_for_playback(
        &self,
        video: VideoId,
    ) -> Result<Arc<Manifest>, ServiceError> {
        if let Some(m) = self.store.manifest(&video) {
            return Ok(m);
        }
        if !self.knows(&video) {
            return Err(ServiceError::NoManifest(video));
        }
        Ok(fetch::manifest::get(&self.client, &self.store, video, &self.fetch).await?)
    }

    /// Starts a fetch of fragment `index` and the playback window after it (just `index` while
    /// the manifest, which says how many there are, is not held yet).
    fn spawn_playback_fetch(&self, ticket: fetches::Ticket, index: u32) {
        let video = ticket.video();
        self.fetches.steer(&video, index);
        let count = self
            .store
            .manifest(&video)
            .map_or(index + 1, |m| m.fragments.len() as u32);
        let end = index
            .saturating_add(crate::fetch::PLAYBACK_WINDOW)
            .min(count);
        let opts = FetchOptions {
            fragments: Some((index..end.max(index + 1)).collect()),
            ..self.fetch.clone()
        };
        self.spawn_fetch(ticket, opts, "playback", super::Fetched::Playback);
    }
}
