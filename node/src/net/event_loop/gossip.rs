//! The announcement topic: publishing this node's announcements and validating what peers
//! publish (a valid one updates the availability table and the inbox; an invalid one is rejected).

use libp2p::{gossipsub, PeerId};
use tracing::{debug, warn};
use vidswarm_proto::wire::{self, Announcement};

use super::EventLoop;
use crate::events::{emit, NodeEvent};
use crate::metrics::{Direction, ANNOUNCE};

impl EventLoop {
    pub(super) fn publish(&mut self, announcement: &Announcement) {
        let topic = self.topic.clone();
        let bytes = wire::encode(announcement);
        let len = bytes.len();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) => {
                self.metrics.bytes(ANNOUNCE, Direction::Sent, len);
                debug!(video = %announcement.video.short(), "announced")
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!("no peer subscribed yet; the next re-announcement will reach them")
            }
            Err(e) => warn!(error = %e, "cannot publish an announcement"),
        }
    }

    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        self.metrics
            .bytes(ANNOUNCE, Direction::Received, message.data.len());
        let verdict = match Announcement::decode(&message.data) {
            // The announced peer must be the one that signed the message.
            Ok(a) if message.source.map(|s| s.to_string()) == Some(a.peer.clone()) => Ok(a),
            Ok(_) => Err("announcement names another peer than its signer".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        let acceptance = match verdict {
            Ok(a) => {
                if let Ok(peer) = a.peer.parse::<PeerId>() {
                    let indices: Vec<u32> = a.fragments.iter().map(|f| f.index).collect();
                    self.availability
                        .record(a.video, peer, indices.iter().copied());
                    self.inbox.announced(a.video, a.named.clone());
                    emit(
                        &self.events,
                        NodeEvent::AnnouncementReceived {
                            from: peer,
                            video: a.video,
                            fragments: indices,
                            named: a.named,
                        },
                    );
                }
                gossipsub::MessageAcceptance::Accept
            }
            Err(reason) => {
                warn!(peer = %source, %reason, "rejected an announcement");
                emit(
                    &self.events,
                    NodeEvent::PeerMisbehaved {
                        peer: source,
                        reason,
                    },
                );
                gossipsub::MessageAcceptance::Reject
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
    }
}
