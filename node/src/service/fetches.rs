//! The fetches a node runs, asked for over HTTP or the CLI or started by auto-fetch, and how far
//! each got: what `GET /api/v1/fetches` shows. One entry per video (its latest fetch).
//!
//! This registry is the one gate for "one fetch per video at a time": a fetch starts only with a
//! [`Ticket`] from [`FetchRegistry::begin`], and the ticket is what records its progress (direct
//! calls from the fetch, not the lossy event stream). A ticket dropped without an outcome (its task
//! cancelled or panicked) marks the fetch failed, so no entry stays "running" for ever.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;
use vidswarm_proto::VideoId;

use crate::events::NodeEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FetchState {
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FetchProgress {
    pub video_id: String,
    pub state: FetchState,
    /// Fragment indices the fetch set out to get (known once the manifest is in).
    pub wanted: Vec<u32>,
    /// Fragments fetched, verified and stored so far, sorted.
    pub done: Vec<u32>,
    /// Verified bytes received so far.
    pub bytes: u64,
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
}

struct Entry {
    progress: FetchProgress,
    /// Flips to `true` when the fetch ends; waiters hold receivers.
    ended: watch::Sender<bool>,
    /// Bumped when a fragment is stored and when the fetch ends: what a viewer waits on.
    changed: watch::Sender<u64>,
    /// Where a viewer plays the video: steers the running fetch (`fetch/download.rs`).
    playhead: watch::Sender<Option<u32>>,
}

#[derive(Clone, Default)]
pub struct FetchRegistry {
    fetches: Arc<Mutex<BTreeMap<VideoId, Entry>>>,
}

/// The right to run the one fetch of a video; records its progress and its end.
pub struct Ticket {
    registry: FetchRegistry,
    video: VideoId,
    finished: bool,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FetchRegistry {
    /// A ticket for a new fetch of `video`, or `None` while one is running.
    pub fn begin(&self, video: VideoId) -> Option<Ticket> {
        let mut fetches = self.lock();
        if fetches
            .get(&video)
            .is_some_and(|e| e.progress.state == FetchState::Running)
        {
            return None;
        }
        fetches.insert(
            video,
            Entry {
                progress: fresh(video),
                ended: watch::channel(false).0,
                changed: watch::channel(0).0,
                playhead: watch::channel(None).0,
            },
        );
        Some(Ticket {
            registry: self.clone(),
            video,
            finished: false,
        })
    }

    /// Waits until the running fetch of `video`, if any, has ended.
    pub async fn wait(&self, video: &VideoId) {
        let rx = self.lock().get(video).map(|e| e.ended.subscribe());
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|ended| *ended).await;
        }
    }

    /// Tells the running fetch of `video` that a viewer needs fragment `index` now. `false` when
    /// no fetch of it runs.
    pub fn steer(&self, video: &VideoId, index: u32) -> bool {
        match self.lock().get(video) {
            Some(e) if e.progress.state == FetchState::Running => {
                e.playhead
                    .send_if_modified(|p| p.replace(index) != Some(index));
                true
            }
            _ => false,
        }
    }

    /// A receiver that sees a change whenever the latest fetch of `video` stores a fragment or
    /// ends; `None` when there has been no fetch of it.
    pub fn changes(&self, video: &VideoId) -> Option<watch::Receiver<u64>> {
        self.lock().get(video).map(|e| e.changed.subscribe())
    }

    pub fn get(&self, video: &VideoId) -> Option<FetchProgress> {
        self.lock().get(video).map(|e| e.progress.clone())
    }

    pub fn all(&self) -> Vec<FetchProgress> {
        self.lock().values().map(|e| e.progress.clone()).collect()
    }

    /// Whether a fetch of `video` is running.
    pub fn running(&self, video: &VideoId) -> bool {
        self.get(video)
            .is_some_and(|p| p.state == FetchState::Running)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<VideoId, Entry>> {
        self.fetches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ticket {
    pub fn video(&self) -> VideoId {
        self.video
    }

    /// Where viewers of this fetch's video play it, as [`FetchRegistry::steer`] sets it.
    pub fn playhead(&self) -> watch::Receiver<Option<u32>> {
        let fetches = self.registry.lock();
        match fetches.get(&self.video) {
            Some(e) => e.playhead.subscribe(),
            None => watch::channel(None).1,
        }
    }

    /// Applies what the fetch just did to its entry.
    pub fn record(&self, event: &NodeEvent) {
        let mut fetches = self.registry.lock();
        let Some(entry) = fetches.get_mut(&self.video) else {
            return;
        };
        let f = &mut entry.progress;
        match event {
            NodeEvent::FetchStarted { missing, .. } => f.wanted = missing.clone(),
            NodeEvent::ChunkReceived { bytes, .. } => f.bytes += u64::from(*bytes),
            NodeEvent::FragmentStored { fragment, .. } => {
                if let Err(at) = f.done.binary_search(fragment) {
                    f.done.insert(at, *fragment);
                }
                entry.changed.send_modify(|n| *n += 1);
            }
            _ => {}
        }
    }

    /// Records how the fetch ended and wakes whoever waits on it.
    pub fn finish(mut self, result: Result<(), String>) {
        self.end(result);
    }

    fn end(&mut self, result: Result<(), String>) {
        self.finished = true;
        let mut fetches = self.registry.lock();
        let Some(entry) = fetches.get_mut(&self.video) else {
            return;
        };
        let f = &mut entry.progress;
        f.finished_at_ms = Some(now_ms());
        match result {
            Ok(()) => f.state = FetchState::Completed,
            Err(e) => {
                f.state = FetchState::Failed;
                f.error = Some(e);
            }
        }
        entry.ended.send_replace(true);
        entry.changed.send_modify(|n| *n += 1);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Err("the fetch was stopped before it ended".into()));
        }
    }
}

fn fresh(video: VideoId) -> FetchProgress {
    FetchProgress {
        video_id: video.to_string(),
        state: FetchState::Running,
        wanted: Vec::new(),
        done: Vec::new(),
        bytes: 0,
        error: None,
        started_at_ms: now_ms(),
        finished_at_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> VideoId {
        VideoId(vidswarm_proto::Hash::of(b"v"))
    }

    #[tokio::test]
    async fn one_fetch_per_video_and_a_dropped_ticket_ends_it() {
        let registry = FetchRegistry::default();
        let ticket = registry.begin(video()).expect("first");
        assert!(registry.begin(video()).is_none(), "second while running");
        let waiter = {
            let r = registry.clone();
            tokio::spawn(async move { r.wait(&video()).await })
        };
        drop(ticket);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        let p = registry.get(&video()).unwrap();
        assert_eq!(p.state, FetchState::Failed);
        assert!(p.error.unwrap().contains("stopped"));
        let again = registry.begin(video()).expect("after the end");
        again.record(&NodeEvent::FragmentStored {
            video: video(),
            fragment: 3,
            bytes: 1,
            from: vec![],
            millis: 1,
        });
        again.finish(Ok(()));
        let p = registry.get(&video()).unwrap();
        assert_eq!((p.state, p.done), (FetchState::Completed, vec![3]));
    }
}
