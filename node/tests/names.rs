//! Names of the default collection belong to the key that first signed them: a hostile peer
//! cannot re-point one (unsigned, signed by itself, or with the owner's key and a forged
//! signature), another node's upload cannot take it over, and the owner can, from any node that
//! holds its publisher key.

mod common;

use std::time::Duration;

use common::gossip::{announcement, connect, gossip_swarm, publish_until};
use common::http::{assert_error, json, serve, upload_named};
use common::swarm::{config, start, wait_until, TestNode};
use libp2p::identity::Keypair;
use serde_bytes::ByteBuf;
use vidswarm_node::events::NodeEvent;
use vidswarm_node::node::Node;
use vidswarm_proto::wire::NamedUpload;
use vidswarm_proto::{name_claim, Hash, VideoId};

const NAME: &str = "clip.mp4";

async fn upload(base: &str, bytes: Vec<u8>, replace: bool) -> reqwest::Response {
    let query = if replace { "?replace=true" } else { "" };
    upload_named(base, NAME, bytes, query).await
}

async fn uploaded(base: &str, bytes: Vec<u8>, replace: bool) -> VideoId {
    let resp = upload(base, bytes, replace).await;
    assert_eq!(resp.status(), 200);
    json(resp).await["video_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A node bootstrapped from `from`, signing names with `publisher` when given.
async fn start_publishing(from: &TestNode, publisher: Option<Keypair>) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), false);
    cfg.bootstrap = vec![from.node.listen_addrs()[0].clone()];
    cfg.publisher = publisher;
    TestNode {
        node: Node::start(cfg).await.expect("node starts"),
        dir,
    }
}

async fn until_named(node: &TestNode, video: VideoId, what: &str) {
    wait_until(&[node], Duration::from_secs(20), what, || {
        node.node.store().named(NAME).map(|e| e.video) == Some(video)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_publisher_key_that_first_signed_a_name_can_re_point_it() {
    // The owner: a node whose publisher key is in a file of its own.
    let owner_key = Keypair::generate_ed25519();
    let seed = start(&[], false).await;
    let owner = start_publishing(&seed, Some(owner_key.clone())).await;
    let owner_http = serve(&owner).await;
    let watcher = start(&[&owner], false).await;
    let first = uploaded(&owner_http, common::bytes(1, 20_000), false).await;
    until_named(&watcher, first, "the watcher learns the name").await;
    let owner_public = owner_key.public().encode_protobuf();
    assert_eq!(
        watcher.node.store().name_record(NAME).unwrap().owner(),
        Some(owner_public.as_slice())
    );

    // A hostile peer tries three ways, each dated an hour ahead (later than anything honest).
    let thief = Keypair::generate_ed25519();
    let mut hostile = gossip_swarm(thief.clone());
    let me = *hostile.local_peer_id();
    connect(&mut hostile, &watcher.node).await;
    let mut events = watcher.node.client().subscribe();
    let later = vidswarm_node::service::now_ms() + 3_600_000;
    let junk = VideoId(Hash::of(b"the thief's video"));
    let claim = name_claim(NAME, &junk, later);
    let attempts = [
        ("unsigned", None, None),
        (
            "signed by its own key",
            Some(thief.public().encode_protobuf()),
            Some(thief.sign(&claim).unwrap()),
        ),
        (
            "the owner's key with a forged signature",
            Some(owner_public.clone()),
            Some(thief.sign(&claim).unwrap()),
        ),
    ];
    for (what, publisher, signature) in attempts {
        let named = NamedUpload {
            name: NAME.into(),
            uploaded_at_ms: later,
            publisher: publisher.map(ByteBuf::from),
            signature: signature.map(ByteBuf::from),
        };
        let heard = publish_until(
            &mut hostile,
            &mut events,
            &announcement(me, junk, Some(named)),
            Duration::from_secs(10),
            |e| matches!(e, NodeEvent::AnnouncementReceived { from, named: Some(_), .. } if *from == me),
        )
        .await;
        assert!(heard, "the watcher never heard the attempt {what}");
    }

    // Another node's upload under the name is refused, even asked to replace.
    let other = start_publishing(&owner, None).await;
    until_named(&other, first, "the other node learns the name").await;
    let other_http = serve(&other).await;
    let refused = upload(&other_http, common::bytes(2, 20_000), true).await;
    let message = assert_error(refused, 409, "conflict").await;
    assert!(message.contains("--publisher-key"), "{message}");

    // The owner re-points it, and the watcher follows: had any attempt above been taken, its
    // later date would have won over this.
    let second = uploaded(&owner_http, common::bytes(3, 20_000), true).await;
    until_named(&watcher, second, "the watcher follows the owner").await;

    // The key moves to another node, which re-points the name too.
    let moved = start_publishing(&owner, Some(owner_key)).await;
    until_named(&moved, second, "the new node learns the name").await;
    let moved_http = serve(&moved).await;
    let third_bytes = common::bytes(4, 20_000);
    let third = uploaded(&moved_http, third_bytes.clone(), true).await;
    until_named(&watcher, third, "the watcher follows the moved key").await;

    // And the watcher fetches what the name now means, by name, from the swarm.
    let path = watcher.node.service().named_fragment(NAME).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), third_bytes);
}
