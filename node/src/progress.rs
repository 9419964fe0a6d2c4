//! The fetches a node runs, asked for over HTTP or started by auto-fetch, and how far each got:
//! what `GET /api/v1/fetches` shows. One entry per video (its latest fetch), kept up to date from
//! the node's event stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast::{error::RecvError, Receiver};
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

#[derive(Debug, Clone, Default)]
pub struct FetchTable {
    fetches: Arc<Mutex<BTreeMap<VideoId, FetchProgress>>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FetchTable {
    /// Marks a fetch of `video` as started; `false` if one is running already.
    pub fn begin(&self, video: VideoId) -> bool {
        let mut fetches = self.lock();
        if fetches
            .get(&video)
            .is_some_and(|f| f.state == FetchState::Running)
        {
            return false;
        }
        fetches.insert(video, fresh(video));
        true
    }

    /// Records how a fetch ended (events say so too; this covers failures before the first one).
    pub fn finish(&self, video: VideoId, result: Result<(), String>) {
        let mut fetches = self.lock();
        let entry = fetches.entry(video).or_insert_with(|| fresh(video));
        entry.finished_at_ms = Some(now_ms());
        match result {
            Ok(()) => entry.state = FetchState::Completed,
            Err(e) => {
                entry.state = FetchState::Failed;
                entry.error = Some(e);
            }
        }
    }

    pub fn get(&self, video: &VideoId) -> Option<FetchProgress> {
        self.lock().get(video).cloned()
    }

    pub fn all(&self) -> Vec<FetchProgress> {
        self.lock().values().cloned().collect()
    }

    /// Follows the event stream until the node stops.
    pub async fn follow(self, mut events: Receiver<NodeEvent>) {
        loop {
            match events.recv().await {
                Ok(event) => self.on_event(event),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn on_event(&self, event: NodeEvent) {
        let mut fetches = self.lock();
        match event {
            NodeEvent::FetchStarted { video, missing } => {
                let entry = fetches.entry(video).or_insert_with(|| fresh(video));
                if entry.state != FetchState::Running {
                    *entry = fresh(video);
                }
                entry.wanted = missing;
            }
            NodeEvent::ChunkReceived { video, bytes, .. } => {
                if let Some(f) = fetches.get_mut(&video) {
                    f.bytes += u64::from(bytes);
                }
            }
            NodeEvent::FragmentStored {
                video, fragment, ..
            } => {
                if let Some(f) = fetches.get_mut(&video) {
                    if let Err(at) = f.done.binary_search(&fragment) {
                        f.done.insert(at, fragment);
                    }
                }
            }
            NodeEvent::FetchCompleted { video, .. } => {
                if let Some(f) = fetches.get_mut(&video) {
                    f.state = FetchState::Completed;
                    f.finished_at_ms = Some(now_ms());
                }
            }
            NodeEvent::FetchFailed { video, error } => {
                if let Some(f) = fetches.get_mut(&video) {
                    f.state = FetchState::Failed;
                    f.error = Some(error);
                    f.finished_at_ms = Some(now_ms());
                }
            }
            _ => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<VideoId, FetchProgress>> {
        self.fetches.lock().unwrap_or_else(PoisonError::into_inner)
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
