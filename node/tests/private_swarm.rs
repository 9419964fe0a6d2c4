//! A private swarm (`--swarm-key`): nodes with the same pre-shared key connect and fetch from each
//! other; a node with another key, or with none, cannot connect at all. A keyed node speaks TCP
//! only (libp2p's pnet cannot run over QUIC).

mod common;

use std::time::Duration;

use common::swarm::config;
use libp2p::pnet::PreSharedKey;
use libp2p::Multiaddr;
use vidswarm_node::fetch::FetchOptions;
use vidswarm_node::node::Node;

struct Keyed {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start(key: Option<PreSharedKey>, bootstrap: &[Multiaddr]) -> Keyed {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), false);
    cfg.net.swarm_key = key;
    cfg.listen = vec![
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
    ];
    cfg.bootstrap = bootstrap.to_vec();
    let node = Node::start(cfg).await.expect("node starts");
    Keyed { node, _dir: dir }
}

fn tcp_addr(node: &Node) -> Multiaddr {
    node.listen_addrs()
        .iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .expect("a TCP address")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_the_swarm_key_connect_and_they_fetch_over_tcp() {
    let key = PreSharedKey::new([7; 32]);
    let other_key = PreSharedKey::new([8; 32]);

    let seeder = start(Some(key), &[]).await;
    assert!(
        seeder
            .node
            .listen_addrs()
            .iter()
            .all(|a| !a.to_string().contains("quic")),
        "a keyed node listens on QUIC: {:?}",
        seeder.node.listen_addrs()
    );
    let split = tempfile::tempdir().unwrap();
    let fragments = common::fragments(5, 6);
    let manifest = common::write_split_dir(split.path(), &fragments);
    seeder.node.import_split(split.path()).await.unwrap();
    let at = tcp_addr(&seeder.node);

    // Without the key, or with another: the handshake fails, no connection on either side.
    for (what, outsider_key) in [("no key", None), ("another key", Some(other_key))] {
        let outsider = start(outsider_key, &[]).await;
        let dialled = tokio::time::timeout(
            Duration::from_secs(20),
            outsider.node.client().dial(at.clone()),
        )
        .await
        .expect("the dial ends within its timeout");
        assert!(
            dialled.is_err(),
            "a node with {what} connected: {dialled:?}"
        );
        let connected = seeder.node.client().connected_peers().await.unwrap();
        assert!(
            !connected.contains(&outsider.node.peer_id()),
            "the seeder lists the node with {what} as a peer"
        );
        // And it cannot fetch the video.
        let opts = FetchOptions {
            stall_timeout: Duration::from_secs(2),
            ..FetchOptions::default()
        };
        assert!(
            outsider.node.fetch(manifest.video_id, &opts).await.is_err(),
            "a node with {what} fetched the video"
        );
    }

    // With the key: it connects and fetches, bytes verified.
    let member = start(Some(key), &[at]).await;
    member
        .node
        .fetch(manifest.video_id, &FetchOptions::default())
        .await
        .expect("a node with the key fetches");
    let member_store = member.node.store();
    assert!(manifest
        .fragments
        .iter()
        .all(|f| member_store.has_fragment(&f.blake3)));
}
