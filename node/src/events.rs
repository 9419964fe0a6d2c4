//! What a node sees, as one stream of events: the demo's log, the CLI's progress, SSE and
//! metrics all read it. A `tokio::sync::broadcast` channel: slow readers lose old events, never
//! slow the node down. Observation only: nothing that decides what the node does reads it (control
//! inputs go through `control.rs` and direct calls, which never drop).
//!
//! Events are typed (peers as `PeerId`); the serde derive is their JSON shape at the edge (SSE),
//! peers as their base58 strings.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use vidswarm_proto::VideoId;

/// How many events a slow reader may fall behind before it misses some.
pub const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    Listening {
        #[serde(with = "text")]
        addr: libp2p::Multiaddr,
    },
    PeerConnected {
        #[serde(with = "text")]
        peer: PeerId,
    },
    PeerDisconnected {
        #[serde(with = "text")]
        peer: PeerId,
    },
    PeerSubscribed {
        #[serde(with = "text")]
        peer: PeerId,
    },
    AnnouncementReceived {
        #[serde(with = "text")]
        from: PeerId,
        video: VideoId,
        fragments: Vec<u32>,
        /// Set for a loose upload: its name in the default collection.
        #[serde(skip_serializing_if = "Option::is_none")]
        named: Option<vidswarm_proto::wire::NamedUpload>,
    },
    ProvidersFound {
        what: Lookup,
        #[serde(with = "peers")]
        providers: Vec<PeerId>,
    },
    FetchStarted {
        video: VideoId,
        missing: Vec<u32>,
        /// Per missing fragment (in the order of `missing`), the bytes an earlier fetch left
        /// verified: they are not fetched again (`store/resume.rs`).
        resumed: Vec<u64>,
    },
    ChunkReceived {
        video: VideoId,
        fragment: u32,
        chunk: u32,
        #[serde(with = "text")]
        from: PeerId,
        bytes: u32,
    },
    FragmentStored {
        video: VideoId,
        fragment: u32,
        bytes: u64,
        #[serde(with = "peers")]
        from: Vec<PeerId>,
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
        #[serde(with = "text")]
        peer: PeerId,
        reason: String,
    },
    /// A peer said goodbye to a video (it is leaving, or it deleted or evicted the video): its
    /// records of it are forgotten.
    PeerLeaving {
        #[serde(with = "text")]
        peer: PeerId,
        video: VideoId,
    },
}

/// What a DHT provider lookup was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Lookup {
    Manifest { video: VideoId },
    Fragment { video: VideoId, index: u32 },
}

impl std::fmt::Display for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::Manifest { video } => write!(f, "the manifest of video {}", video.short()),
            Lookup::Fragment { video, index } => {
                write!(f, "fragment {index} of video {}", video.short())
            }
        }
    }
}

/// A value as its string form (`Display` / `FromStr`): peers as base58, addresses as multiaddrs.
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A list of peers as base58 strings.
mod peers {
    use libp2p::PeerId;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(peers: &[PeerId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(peers.iter().map(|p| p.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PeerId>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|p| p.parse().map_err(D::Error::custom))
            .collect()
    }
}

pub type EventSender = broadcast::Sender<NodeEvent>;

/// A channel whose slow readers lose events past `buffer` (normally [`EVENT_BUFFER`]).
pub fn channel(buffer: usize) -> EventSender {
    broadcast::channel(buffer.max(1)).0
}

/// Sends without caring whether anyone listens.
pub fn emit(tx: &EventSender, event: NodeEvent) {
    let _ = tx.send(event);
}
