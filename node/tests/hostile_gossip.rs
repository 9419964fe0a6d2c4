//! A hostile gossipsub peer: once it has sent a few announcements the node rejects, gossipsub's
//! peer score (`net/gossip_score.rs`) makes the node ignore everything it sends, valid or not,
//! while an honest peer still fetches from the node.

mod common;

use std::time::Duration;

use common::gossip::{announcement, connect, gossip_swarm, publish_until};
use common::swarm::{holds_all, start};
use vidswarm_node::events::NodeEvent;
use vidswarm_node::fetch::FetchOptions;
use vidswarm_proto::{Hash, VideoId};

/// A node holding a small video (from `seed`), and its event stream.
async fn holding_a_video(
    seed: u64,
) -> (
    common::swarm::TestNode,
    vidswarm_proto::Manifest,
    tokio::sync::broadcast::Receiver<NodeEvent>,
) {
    let node = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let manifest = common::write_split_dir(split.path(), &common::fragments(seed, 3));
    node.node.import_split(split.path()).await.unwrap();
    let events = node.node.client().subscribe();
    (node, manifest, events)
}

/// A new node bootstrapped from `node` fetches all of `manifest` from it.
async fn an_honest_peer_fetches(
    node: &common::swarm::TestNode,
    manifest: &vidswarm_proto::Manifest,
) {
    let honest = start(&[node], false).await;
    honest
        .node
        .fetch(manifest.video_id, &FetchOptions::default())
        .await
        .unwrap();
    assert!(holds_all(&honest, manifest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_announcements_are_rejected_is_no_longer_heard() {
    let (node, manifest, mut events) = holding_a_video(11).await;
    let mut hostile = gossip_swarm(libp2p::identity::Keypair::generate_ed25519());
    let me = *hostile.local_peer_id();
    connect(&mut hostile, &node.node).await;

    // Heard while its score is clean.
    let first = VideoId(Hash::of(b"first"));
    let heard = publish_until(
        &mut hostile,
        &mut events,
        &announcement(me, first, None),
        Duration::from_secs(20),
        |e| matches!(e, NodeEvent::AnnouncementReceived { from, video, .. } if *from == me && *video == first),
    )
    .await;
    assert!(heard, "the node never heard the peer's first announcement");

    // Three it must reject: bytes that are no announcement.
    for n in 0..3u8 {
        let rejected = publish_until(
            &mut hostile,
            &mut events,
            &[0xff, 0x00, n],
            Duration::from_secs(10),
            |e| matches!(e, NodeEvent::PeerMisbehaved { peer, .. } if *peer == me),
        )
        .await;
        assert!(rejected, "rejection {n} was not reported");
    }

    // A valid announcement now goes unheard: the peer is below the graylist threshold.
    let after = VideoId(Hash::of(b"after"));
    let heard = publish_until(
        &mut hostile,
        &mut events,
        &announcement(me, after, None),
        Duration::from_secs(3),
        |e| matches!(e, NodeEvent::AnnouncementReceived { video, .. } if *video == after),
    )
    .await;
    assert!(
        !heard,
        "the node still hears a peer that sent three rejected announcements"
    );

    // And an honest peer is served as before.
    an_honest_peer_fetches(&node, &manifest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_more_videos_than_the_cap_grows_no_table_beyond_it() {
    use vidswarm_node::availability::MAX_VIDEOS_PER_PEER;
    let (node, manifest, mut events) = holding_a_video(12).await;
    let mut hostile = gossip_swarm(libp2p::identity::Keypair::generate_ed25519());
    let me = *hostile.local_peer_id();
    connect(&mut hostile, &node.node).await;
    // Valid announcements of more videos than the cap, each a new id.
    let extra = 10;
    let mut heard = 0;
    for n in 0..MAX_VIDEOS_PER_PEER + extra {
        let video = VideoId(Hash::of(&n.to_le_bytes()));
        let got = publish_until(
            &mut hostile,
            &mut events,
            &announcement(me, video, None),
            Duration::from_millis(if n < MAX_VIDEOS_PER_PEER { 5_000 } else { 300 }),
            |e| matches!(e, NodeEvent::AnnouncementReceived { video: v, .. } if *v == video),
        )
        .await;
        if got {
            heard += 1;
        }
    }
    assert_eq!(heard, MAX_VIDEOS_PER_PEER, "not one past the cap is taken");
    let table = node.node.client().availability().videos();
    assert_eq!(
        table.len(),
        MAX_VIDEOS_PER_PEER,
        "the table holds the cap, no more"
    );

    an_honest_peer_fetches(&node, &manifest).await;
}
