//! The announcement topic: publishing this node's announcements and validating what peers
//! publish (a valid one updates the availability table and the inbox; an invalid one is rejected).

use libp2p::kad::{self, store::RecordStore};
use libp2p::{gossipsub, PeerId};
use tokio::time::Instant;
use tracing::{debug, warn};
use vidswarm_proto::wire::{self, Announcement};

use super::EventLoop;
use crate::events::{emit, NodeEvent};
use crate::metrics::{Direction, ANNOUNCE};
use crate::net::{fragment_key, manifest_key};

impl EventLoop {
    pub(super) fn publish(&mut self, announcement: &Announcement) {
        let topic = self.topic.clone();
        let bytes = wire::encode(announcement);
        let len = bytes.len();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) => {
                self.metrics.bytes(ANNOUNCE, Direction::Sent, len);
                if announcement.leaving {
                    // Stopping now would drop the goodbye queued on the connections.
                    self.linger_until = Some(Instant::now() + self.goodbye_wait);
                }
                debug!(video = %announcement.video.short(), leaving = announcement.leaving, "announced")
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!("no peer subscribed yet; the next re-announcement will reach them")
            }
            Err(e) => warn!(error = %e, "cannot publish an announcement"),
        }
    }

    /// Asks each connected peer to confirm it got what this stopping node sent: gossipsub has no
    /// "sent" signal, and closing the connections now would drop the goodbyes still queued on
    /// them. The request travels behind them on the same connection, so its answer (or an older
    /// node's reset of a request it cannot read) means they arrived.
    pub(super) fn send_farewells(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let transfer = &mut self.swarm.behaviour_mut().transfer;
            self.farewells
                .insert(transfer.send_request(&peer, wire::Request::Leaving));
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
            Ok(a) if a.leaving => {
                if let Ok(peer) = a.peer.parse::<PeerId>() {
                    self.on_goodbye(peer, &a);
                }
                gossipsub::MessageAcceptance::Accept
            }
            Ok(a) if a.withdrawn.is_some() => {
                if let Ok(peer) = a.peer.parse::<PeerId>() {
                    self.on_withdrawn(peer, &a);
                }
                gossipsub::MessageAcceptance::Accept
            }
            Ok(a) => match a.peer.parse::<PeerId>() {
                Ok(peer) if !self.record_announcement(peer, a) => {
                    gossipsub::MessageAcceptance::Ignore
                }
                _ => gossipsub::MessageAcceptance::Accept,
            },
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

    /// Records what `peer` announced it holds (whole fragments, and chunks of those it fetches)
    /// in the availability table; `false` when it is ignored because the peer announced its most
    /// videos already. Whole fragments, or a manifest alone, are an event; progress is not: it
    /// comes several times a second while a fetch runs.
    pub(super) fn record_announcement(&mut self, peer: PeerId, a: Announcement) -> bool {
        if !self
            .availability
            .heard(a.video, peer, std::time::Instant::now())
        {
            debug!(%peer, video = %a.video.short(), "ignored: the peer announced its most videos already");
            return false;
        }
        let indices: Vec<u32> = a.fragments.iter().map(|f| f.index).collect();
        self.availability
            .record(a.video, peer, indices.iter().copied());
        for p in &a.partial {
            self.availability
                .record_partial(a.video, peer, p.index, &p.have);
        }
        self.inbox.announced(a.video, a.named.clone());
        if !indices.is_empty() || a.partial.is_empty() {
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
        true
    }

    /// A peer's provider record (Kademlia has checked that the peer sent it itself). One from a
    /// peer that said goodbye is refused until it connects again: an ADD_PROVIDER it sent just
    /// before leaving may arrive after its goodbye.
    pub(super) fn on_provider_record(&mut self, record: kad::ProviderRecord) {
        if self.peers.has_left(&record.provider) {
            debug!(peer = %record.provider, "refused a provider record: the peer said goodbye");
            return;
        }
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .add_provider(record)
        {
            debug!(error = %e, "cannot store a provider record");
        }
    }

    /// `peer` no longer holds `a.video` (it deleted or evicted it) but stays: its availability of
    /// the video and its provider records for the manifest and the withdrawn fragments go.
    fn on_withdrawn(&mut self, peer: PeerId, a: &Announcement) {
        debug!(%peer, video = %a.video.short(), "peer withdrew a video");
        self.availability.forget_peer_of(&a.video, &peer);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        store.remove_provider(&manifest_key(&a.video), &peer);
        for h in a.withdrawn.iter().flatten() {
            store.remove_provider(&fragment_key(h), &peer);
        }
        emit(
            &self.events,
            NodeEvent::PeerLeaving {
                peer,
                video: a.video,
            },
        );
    }

    /// `peer` is leaving `a.video`: nothing of it goes to that peer any more, and the provider
    /// records this node stores for it are dropped, so DHT lookups stop returning it.
    fn on_goodbye(&mut self, peer: PeerId, a: &Announcement) {
        debug!(%peer, video = %a.video.short(), "peer said goodbye");
        self.availability.forget_peer_of(&a.video, &peer);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        store.remove_provider(&manifest_key(&a.video), &peer);
        for f in &a.fragments {
            store.remove_provider(&fragment_key(&f.hash), &peer);
        }
        self.peers.left(peer);
        self.recently_sent.forget(&peer);
        emit(
            &self.events,
            NodeEvent::PeerLeaving {
                peer,
                video: a.video,
            },
        );
    }
}
