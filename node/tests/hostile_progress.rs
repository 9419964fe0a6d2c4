//! A peer's progress stream (`/vidswarm/have/1`) with raw frames: honest progress is recorded,
//! progress in another peer's name, more than progress, and oversized frames are refused (a
//! `PeerMisbehaved` event, nothing recorded) and never crash the node.

mod common;

use std::time::Duration;

use common::swarm::{merged_events, start};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, StreamProtocol, Swarm};
use vidswarm_node::events::NodeEvent;
use vidswarm_proto::wire::{self, Announcement, HAVE_PROTOCOL};
use vidswarm_proto::{Hash, VideoId};

fn raw_swarm() -> Swarm<libp2p_stream::Behaviour> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    common::raw::tcp_swarm(key, Duration::from_secs(30), |_| {
        libp2p_stream::Behaviour::new()
    })
}

fn progress(peer: PeerId, video: VideoId) -> Announcement {
    common::progress_announcement(peer, video, 0, Hash::of(b"fragment 0"), &[true, true])
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Opens a progress stream to `peer` (connected by `swarm`) and writes `bytes` on it.
async fn send_on_stream(swarm: &mut Swarm<libp2p_stream::Behaviour>, peer: PeerId, bytes: Vec<u8>) {
    let mut control = swarm.behaviour().new_control();
    let send = async move {
        let mut stream = control
            .open_stream(peer, StreamProtocol::new(HAVE_PROTOCOL))
            .await
            .expect("the node accepts progress streams");
        stream.write_all(&bytes).await.unwrap();
        stream.flush().await.unwrap();
        stream
    };
    tokio::pin!(send);
    let _stream = loop {
        tokio::select! {
            stream = &mut send => break stream,
            _ = swarm.select_next_some() => {}
        }
    };
    // Keep the swarm (and so the connection) going while the node reads.
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(_event) = tokio::time::timeout_at(until, swarm.select_next_some()).await {}
}

/// The reason of the next `PeerMisbehaved` about `peer`, within 10 s.
async fn misbehaved(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, NodeEvent)>,
    swarm: &mut Swarm<libp2p_stream::Behaviour>,
    peer: PeerId,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            event = tokio::time::timeout_at(deadline, events.recv()) => match event {
                Ok(Some((_, NodeEvent::PeerMisbehaved { peer: p, reason }))) if p == peer => {
                    return reason
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("no PeerMisbehaved about {peer} within 10 s"),
            },
            _ = swarm.select_next_some() => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_frames_are_checked_and_bad_ones_refused() {
    let node = start(&[], false).await;
    let node_id = node.node.client().peer_id();
    let mut events = merged_events(&[&node]);
    let mut raw = raw_swarm();
    let me = *raw.local_peer_id();
    raw.dial(node.node.listen_addrs()[0].clone()).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { .. } = raw.select_next_some().await {
            break;
        }
    }
    let availability = node.node.client().availability().clone();

    // In another peer's name: refused, nothing recorded.
    let video = VideoId(Hash::of(b"video in another's name"));
    let forged = wire::encode(&progress(PeerId::random(), video));
    send_on_stream(&mut raw, node_id, frame(&forged)).await;
    let reason = misbehaved(&mut events, &mut raw, me).await;
    assert!(reason.contains("another peer"), "{reason}");
    assert!(availability.partial_holders(&video, 0).is_empty());

    // More than progress (a whole fragment, which goes by gossip): refused.
    let video = VideoId(Hash::of(b"video with a whole fragment"));
    let whole = Announcement {
        fragments: vec![wire::AnnouncedFragment {
            index: 1,
            hash: Hash::of(b"fragment 1"),
        }],
        ..progress(me, video)
    };
    send_on_stream(&mut raw, node_id, frame(&wire::encode(&whole))).await;
    let reason = misbehaved(&mut events, &mut raw, me).await;
    assert!(reason.contains("more than progress"), "{reason}");
    assert!(availability.holders(&video, 1).is_empty());

    // A frame declared over the limit: refused before its bytes are read.
    let over = (wire::MAX_ANNOUNCEMENT_BYTES as u32 + 1)
        .to_be_bytes()
        .to_vec();
    send_on_stream(&mut raw, node_id, over).await;
    let reason = misbehaved(&mut events, &mut raw, me).await;
    assert!(reason.contains("limit"), "{reason}");

    // Honest progress, on a new stream after all that: recorded.
    let video = VideoId(Hash::of(b"honest video"));
    let honest = wire::encode(&progress(me, video));
    send_on_stream(&mut raw, node_id, frame(&honest)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while availability.partial_holders(&video, 0).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "honest progress recorded within 10 s"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), raw.select_next_some()).await;
    }
    assert_eq!(availability.partial_holders(&video, 0)[0].0, me);
}
