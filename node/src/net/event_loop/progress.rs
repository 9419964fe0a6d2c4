//! The progress streams as the loop sees them (`net/have.rs` runs them): this node's fetch
//! progress to every connected peer, and what peers send on theirs into the availability table.

use std::sync::Arc;

use libp2p::PeerId;
use tracing::{debug, warn};
use vidswarm_proto::wire::{self, Announcement};

use super::EventLoop;
use crate::events::{emit, NodeEvent};
use crate::metrics::{Direction, HAVE};
use crate::net::have::HaveEvent;

impl EventLoop {
    /// Queues `announcement` (progress only) on every connected peer's progress stream. While a
    /// connected peer does not speak it (an older node), it is published by gossip too.
    pub(super) fn send_progress(&mut self, announcement: &Announcement) {
        let frame: Arc<[u8]> = wire::encode(announcement).into();
        let swarm = &self.swarm;
        let queued = self.have.out.send(&frame, |peer| swarm.is_connected(peer));
        self.metrics
            .bytes(HAVE, Direction::Sent, frame.len() * queued);
        if !self.have.by_gossip.is_empty() {
            self.publish(announcement);
        }
    }

    pub(super) fn on_have(&mut self, event: HaveEvent) {
        match event {
            HaveEvent::Message { peer, bytes } => {
                self.metrics.bytes(HAVE, Direction::Received, bytes.len());
                match progress_from(peer, &bytes) {
                    Ok(a) => {
                        self.record_announcement(peer, a);
                    }
                    Err(reason) => self.misbehaved(peer, reason),
                }
            }
            HaveEvent::Unsupported { peer } => {
                debug!(%peer, "the peer has no progress stream; telling it progress by gossip");
                if self.swarm.is_connected(&peer) {
                    self.have.by_gossip.insert(peer);
                }
            }
            HaveEvent::Invalid { peer, reason } => self.misbehaved(peer, reason),
        }
    }

    fn misbehaved(&self, peer: PeerId, reason: String) {
        warn!(%peer, %reason, "rejected a progress message");
        emit(&self.events, NodeEvent::PeerMisbehaved { peer, reason });
    }
}

/// A valid progress message from `peer`: a well-formed announcement that names `peer` itself
/// and says nothing but progress (whole fragments, goodbyes and withdrawals go by gossip, to
/// the whole swarm).
fn progress_from(peer: PeerId, bytes: &[u8]) -> Result<Announcement, String> {
    let a = Announcement::decode(bytes).map_err(|e| e.to_string())?;
    if a.peer.parse::<PeerId>().ok() != Some(peer) {
        return Err("a progress message names another peer than its sender".into());
    }
    if !a.fragments.is_empty() || a.leaving || a.withdrawn.is_some() || a.named.is_some() {
        return Err("a progress message carries more than progress".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidswarm_proto::wire::{AnnouncedFragment, PartialFragment};
    use vidswarm_proto::{Hash, VideoId};

    fn progress(peer: PeerId) -> Announcement {
        Announcement {
            video: VideoId(Hash::of(b"video")),
            peer: peer.to_string(),
            manifest: true,
            fragments: vec![],
            named: None,
            leaving: false,
            partial: vec![PartialFragment {
                index: 0,
                hash: Hash::of(b"fragment"),
                have: PartialFragment::bitmap(&[true, false, true]),
            }],
            withdrawn: None,
        }
    }

    #[test]
    fn only_progress_from_its_own_sender_is_taken() {
        let peer = PeerId::random();
        let ok = progress(peer);
        assert_eq!(progress_from(peer, &wire::encode(&ok)), Ok(ok.clone()));
        let other = PeerId::random();
        assert!(progress_from(other, &wire::encode(&ok)).is_err());
        let whole = Announcement {
            fragments: vec![AnnouncedFragment {
                index: 1,
                hash: Hash::of(b"f1"),
            }],
            ..ok.clone()
        };
        assert!(progress_from(peer, &wire::encode(&whole)).is_err());
        let goodbye = Announcement {
            leaving: true,
            ..ok
        };
        assert!(progress_from(peer, &wire::encode(&goodbye)).is_err());
        assert!(progress_from(peer, b"\xff\x00 not cbor").is_err());
    }
}
