//! Node events as lines a person reads: the demo's log and `vidswarm node`'s. A formatting layer
//! over the event stream; the events themselves stay structured.

use std::collections::HashMap;

use libp2p::PeerId;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::media::human_bytes;
use crate::events::NodeEvent;

/// Names peers: by a given name when known ("node3"), else by a short peer id.
#[derive(Debug, Clone, Default)]
pub struct PeerNames(pub HashMap<PeerId, String>);

impl PeerNames {
    pub fn name(&self, peer: &PeerId) -> String {
        self.0.get(peer).cloned().unwrap_or_else(|| {
            let id = peer.to_string();
            let tail = id.len().saturating_sub(6);
            format!("peer …{}", &id[tail..])
        })
    }

    fn list(&self, peers: &[PeerId]) -> String {
        peers
            .iter()
            .map(|p| self.name(p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One line for `event`, or `None` for events too chatty to log one by one.
pub fn describe(event: &NodeEvent, names: &PeerNames) -> Option<String> {
    Some(match event {
        NodeEvent::Listening { addr } => format!("listening on {addr}"),
        NodeEvent::PeerConnected { peer } => format!("connected to {}", names.name(peer)),
        NodeEvent::PeerDisconnected { peer } => format!("lost {}", names.name(peer)),
        NodeEvent::AnnouncementReceived {
            from,
            video,
            fragments,
            named,
        } => format!(
            "announcement from {}: video {}{} fragments {fragments:?}",
            names.name(from),
            video.short(),
            named
                .as_ref()
                .map(|n| format!(" ({})", n.name))
                .unwrap_or_default()
        ),
        NodeEvent::ProvidersFound { what, providers } => {
            format!("DHT: {what} is provided by [{}]", names.list(providers))
        }
        NodeEvent::FetchStarted {
            video,
            missing,
            resumed,
        } => {
            let resumed: u64 = resumed.iter().sum();
            let going_on = if resumed > 0 {
                format!(", going on from {} verified before", human_bytes(resumed))
            } else {
                String::new()
            };
            format!(
                "fetching video {}: missing fragments {missing:?}{going_on}",
                video.short()
            )
        }
        NodeEvent::FragmentStored {
            fragment,
            bytes,
            from,
            millis,
            ..
        } => format!(
            "stored fragment {fragment} ({}) from [{}] in {millis} ms ({})",
            human_bytes(*bytes),
            names.list(from),
            rate(*bytes, *millis)
        ),
        NodeEvent::FetchCompleted {
            video,
            fragments,
            bytes,
            millis,
        } => format!(
            "fetch of video {} done: {fragments} fragment(s), {} in {:.2} s ({})",
            video.short(),
            human_bytes(*bytes),
            *millis as f64 / 1000.0,
            rate(*bytes, *millis)
        ),
        NodeEvent::FetchFailed { video, error } => {
            format!("fetch of video {} failed: {error}", video.short())
        }
        NodeEvent::PeerMisbehaved { peer, reason } => {
            format!("{} misbehaved ({reason}); excluded", names.name(peer))
        }
        NodeEvent::PeerLeaving { peer, video } => {
            format!("{} is leaving video {}", names.name(peer), video.short())
        }
        NodeEvent::PeerSubscribed { .. } | NodeEvent::ChunkReceived { .. } => return None,
    })
}

pub fn rate(bytes: u64, millis: u64) -> String {
    let per_sec = bytes as f64 / (millis.max(1) as f64 / 1000.0);
    format!("{}/s", human_bytes(per_sec as u64))
}

/// Logs every describable event of one node, prefixed with `label`, until the node stops.
pub async fn log_events(mut rx: Receiver<NodeEvent>, label: String, names: PeerNames) {
    loop {
        match rx.recv().await {
            Ok(event) => {
                if let Some(line) = describe(&event, &names) {
                    tracing::info!(target: "vidswarm", "{label}{line}");
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::info!(target: "vidswarm", "{label}({n} events skipped)")
            }
            Err(RecvError::Closed) => return,
        }
    }
}
