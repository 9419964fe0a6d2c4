//! What a node sees, as one stream of events: the demo's log, the CLI's progress, SSE and
//! metrics all read it. A `tokio::sync::broadcast` channel: slow readers lose old events, never
//! slow the node down.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use vidswarm_proto::VideoId;

/// How many events a slow reader may fall behind before it misses some.
pub const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    Listening {
        addr: String,
    },
    PeerConnected {
        peer: String,
    },
    PeerDisconnected {
        peer: String,
    },
    PeerSubscribed {
        peer: String,
    },
    AnnouncementReceived {
        from: String,
        video: VideoId,
        fragments: Vec<u32>,
        /// Set for a loose upload: its name in the default collection.
        #[serde(skip_serializing_if = "Option::is_none")]
        named: Option<vidswarm_proto::wire::NamedUpload>,
    },
    ProvidersFound {
        what: String,
        providers: Vec<String>,
    },
    FetchStarted {
        video: VideoId,
        missing: Vec<u32>,
    },
    ChunkReceived {
        video: VideoId,
        fragment: u32,
        chunk: u32,
        from: String,
        bytes: u32,
    },
    FragmentStored {
        video: VideoId,
        fragment: u32,
        bytes: u64,
        from: Vec<String>,
        millis: u64,
    },
    FetchCompleted {
        video: VideoId,
        fragments: usize,
        bytes: u64,
        millis: u64,
    },
    FetchFailed {
        video: VideoId,
        error: String,
    },
    PeerMisbehaved {
        peer: String,
        reason: String,
    },
}

pub type EventSender = broadcast::Sender<NodeEvent>;

pub fn channel() -> EventSender {
    broadcast::channel(EVENT_BUFFER).0
}

/// Sends without caring whether anyone listens.
pub fn emit(tx: &EventSender, event: NodeEvent) {
    let _ = tx.send(event);
}
