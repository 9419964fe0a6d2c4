//! A bare gossipsub peer for hostile-gossip tests: it joins the announcement topic and
//! publishes whatever it is told to.

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};
use tokio::sync::broadcast::error::RecvError;
use vidswarm_node::events::NodeEvent;
use vidswarm_node::node::Node;
use vidswarm_proto::wire::{self, Announcement, NamedUpload, ANNOUNCE_TOPIC};
use vidswarm_proto::VideoId;

/// Subscribes `swarm` to the announcement topic and connects it to `node`.
pub async fn connect(swarm: &mut Swarm<gossipsub::Behaviour>, node: &Node) {
    swarm
        .behaviour_mut()
        .subscribe(&IdentTopic::new(ANNOUNCE_TOPIC))
        .unwrap();
    swarm.dial(node.listen_addrs()[0].clone()).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
            return;
        }
    }
}

/// A bare gossipsub peer with `key`, on the announcement topic's wire format.
pub fn gossip_swarm(key: Keypair) -> Swarm<gossipsub::Behaviour> {
    super::raw::tcp_swarm(key, Duration::from_secs(60), |key| {
        let cfg = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(200))
            .flood_publish(true)
            .build()
            .unwrap();
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), cfg).unwrap()
    })
}

/// An announcement of `video` by `peer` (no fragment: it adds an availability entry only),
/// naming it `named` if given.
pub fn announcement(peer: PeerId, video: VideoId, named: Option<NamedUpload>) -> Vec<u8> {
    wire::encode(&Announcement {
        video,
        peer: peer.to_string(),
        manifest: false,
        fragments: Vec::new(),
        named,
        leaving: false,
        partial: Vec::new(),
        withdrawn: None,
    })
}

/// Drives `swarm` until `done` has seen what it waits for in the node's events, publishing
/// `message` again every 300 ms until gossipsub takes it (the node must have subscribed first).
pub async fn publish_until(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    message: &[u8],
    limit: Duration,
    mut done: impl FnMut(&NodeEvent) -> bool,
) -> bool {
    let topic = IdentTopic::new(ANNOUNCE_TOPIC);
    let deadline = tokio::time::Instant::now() + limit;
    let mut published = false;
    let mut retry = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = retry.tick(), if !published => {
                published = swarm.behaviour_mut().publish(topic.clone(), message.to_vec()).is_ok();
            }
            event = events.recv() => match event {
                Ok(e) if done(&e) => return true,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            },
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}
