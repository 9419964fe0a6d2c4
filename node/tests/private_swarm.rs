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

/// A node started with `net` changed by `tune`, on TCP, bootstrapped from nobody.
async fn start_tuned(tune: impl FnOnce(&mut vidswarm_node::net::NetConfig)) -> Keyed {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), false);
    tune(&mut cfg.net);
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let node = Node::start(cfg).await.expect("node starts");
    Keyed { node, _dir: dir }
}

/// Asserts that `outsider` cannot stay connected to `node` nor fetch `video` from it: whichever
/// side dials, `node` closes the connection as soon as it is set up.
async fn refused(node: &Node, outsider: &Node, video: vidswarm_proto::VideoId, what: &str) {
    let _ = outsider.client().dial(tcp_addr(node)).await;
    let _ = node.client().dial(tcp_addr(outsider)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let theirs = outsider.client().connected_peers().await.unwrap();
        if !theirs.contains(&node.peer_id()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still connected after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ours = node.client().connected_peers().await.unwrap();
    assert!(
        !ours.contains(&outsider.peer_id()),
        "{what}: listed as a peer"
    );
    let opts = FetchOptions {
        stall_timeout: Duration::from_secs(2),
        ..FetchOptions::default()
    };
    assert!(
        outsider.fetch(video, &opts).await.is_err(),
        "{what}: fetched the video"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_allow_list_only_the_listed_peers_connect() {
    let member = start_tuned(|_| {}).await;
    let outsider = start_tuned(|_| {}).await;
    let member_id = member.node.peer_id();
    let seeder = start_tuned(|net| net.allowed_peers = vec![member_id]).await;
    let split = tempfile::tempdir().unwrap();
    let manifest = common::write_split_dir(split.path(), &common::fragments(9, 4));
    seeder.node.import_split(split.path()).await.unwrap();

    refused(
        &seeder.node,
        &outsider.node,
        manifest.video_id,
        "a peer not on the list",
    )
    .await;

    member
        .node
        .client()
        .dial(tcp_addr(&seeder.node))
        .await
        .unwrap();
    member
        .node
        .fetch(manifest.video_id, &FetchOptions::default())
        .await
        .expect("the listed peer fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_above_its_memory_limit_takes_no_new_connection() {
    let seeder = start_tuned(|net| net.max_memory = 1 << 20).await;
    let split = tempfile::tempdir().unwrap();
    let manifest = common::write_split_dir(split.path(), &common::fragments(10, 3));
    seeder.node.import_split(split.path()).await.unwrap();
    let peer = start_tuned(|_| {}).await;
    refused(
        &seeder.node,
        &peer.node,
        manifest.video_id,
        "a peer of a node above 1 MiB",
    )
    .await;
}
