//! Multi-node tests in one process (127.0.0.1, port 0), waiting on events with deadlines: the
//! properties issue #4 asks of the swarm.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::swarm::{holds_all, merged_events, start, start_many, wait_until, TestNode};
use vidswarm_node::events::NodeEvent;
use vidswarm_node::fetch::{FetchError, FetchOptions};
use vidswarm_node::service::ServiceError;
use vidswarm_proto::{Hash, Manifest, VideoId};

/// A 10-fragment "video" of about 1 MiB (7 chunks of 16 KiB per fragment) in a split dir.
fn video(dir: &Path, seed: u64) -> Manifest {
    let fragments: Vec<Vec<u8>> = (0..10)
        .map(|i| common::bytes(seed * 100 + i, 100_000 + i as usize * 1000))
        .collect();
    common::write_split_dir(dir, &fragments)
}

fn all(m: &Manifest) -> Vec<u32> {
    (0..m.fragments.len() as u32).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_to_full_replicas() {
    let nodes = start_many(5, true).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 1);
    // Round-robin, as the original system did: fragment i on node i % 5.
    for (i, n) in nodes.iter().enumerate() {
        let mine: Vec<u32> = (0..10).filter(|f| f % 5 == i as u32).collect();
        n.node.seed(&m, split.path(), &mine).await.unwrap();
        n.node.publish(&m.video_id).await.unwrap();
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_until(
        &refs,
        Duration::from_secs(60),
        "every node holds all 10",
        || nodes.iter().all(|n| holds_all(n, &m)),
    )
    .await;
    // Every node can export a verified copy (the store re-hashes as it exports).
    for n in &nodes {
        let out = tempfile::tempdir().unwrap();
        n.node
            .store()
            .export_video(&m.video_id, out.path())
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_one_bootstrap_address_fetches_from_peers_it_never_dialed() {
    // a knows nobody; b and c bootstrap from a and hold the video; a holds nothing.
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let c = start(&[&a], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 2);
    b.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    b.node.publish(&m.video_id).await.unwrap();
    c.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    c.node.publish(&m.video_id).await.unwrap();

    // d knows only a's address.
    let d = start(&[&a], false).await;
    let report = d
        .node
        .fetch(m.video_id, &FetchOptions::default())
        .await
        .expect("fetch through a single bootstrap node");
    assert!(holds_all(&d, &m));
    let senders: HashSet<_> = report.per_peer.keys().copied().collect();
    assert!(!senders.contains(&a.node.peer_id()), "a holds nothing");
    assert!(
        senders.contains(&b.node.peer_id()) || senders.contains(&c.node.peer_id()),
        "bytes came from peers d never dialed: {senders:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fragment_comes_from_several_providers_at_once() {
    let seeders = start_many(3, false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 3);
    for s in &seeders {
        s.node.seed(&m, split.path(), &all(&m)).await.unwrap();
        s.node.publish(&m.video_id).await.unwrap();
    }
    let fetcher = start(&[&seeders[0]], false).await;
    // What is tested is the spread over holders, not how fast they are found: with the fetch
    // started at once, a loaded machine can finish a 7-chunk fragment from the first holder
    // before gossip names the others.
    let (client, video) = (fetcher.node.client().clone(), m.video_id);
    let holders = || {
        let peers = client.availability().holders(&video, 4);
        peers
            .iter()
            .filter(|p| client.peers().is_connected(p))
            .count()
    };
    wait_until(
        &[&fetcher],
        Duration::from_secs(20),
        "two holders are connected",
        || holders() >= 2,
    )
    .await;
    let mut events = merged_events(&[&fetcher]);
    let opts = FetchOptions {
        fragments: Some(vec![4]),
        per_peer: 2,
        ..FetchOptions::default()
    };
    fetcher.node.fetch(m.video_id, &opts).await.unwrap();
    let mut senders = HashSet::new();
    while let Ok((_, e)) = events.try_recv() {
        if let NodeEvent::ChunkReceived {
            fragment: 4, from, ..
        } = e
        {
            senders.insert(from);
        }
    }
    assert!(
        senders.len() >= 2,
        "chunks of fragment 4 came only from {senders:?}"
    );
    assert!(fetcher.node.store().has_fragment(&m.fragments[4].blake3));
    assert!(!fetcher.node.store().has_fragment(&m.fragments[3].blake3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_is_detected_and_excluded_and_the_fetch_completes() {
    let honest = start(&[], false).await;
    let liar = start(&[&honest], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 4);
    honest.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    honest.node.publish(&m.video_id).await.unwrap();
    liar.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    liar.node.publish(&m.video_id).await.unwrap();
    // The liar's files rot after its store checked them: it now serves wrong bytes.
    for f in &m.fragments {
        let path = liar.node.store().fragment_path(&f.blake3).unwrap();
        let garbage = common::bytes(999, f.size as usize);
        std::fs::write(path, garbage).unwrap();
    }

    let fetcher = start(&[&honest, &liar], false).await;
    let mut events = merged_events(&[&fetcher]);
    let report = fetcher
        .node
        .fetch(m.video_id, &FetchOptions::default())
        .await
        .expect("fetch completes from the honest peer");
    assert!(holds_all(&fetcher, &m));
    let mut blamed = HashSet::new();
    while let Ok((_, e)) = events.try_recv() {
        if let NodeEvent::PeerMisbehaved { peer, .. } = e {
            blamed.insert(peer);
        }
    }
    assert!(blamed.contains(&liar.node.peer_id()), "{blamed:?}");
    assert!(!blamed.contains(&honest.node.peer_id()));
    assert_eq!(
        report.per_peer.get(&liar.node.peer_id()),
        None,
        "no byte from the liar kept"
    );
    let out = tempfile::tempdir().unwrap();
    fetcher
        .node
        .store()
        .export_video(&m.video_id, out.path())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_transfer_does_not_fail_the_fetch() {
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 5);
    a.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    a.node.publish(&m.video_id).await.unwrap();
    b.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    b.node.publish(&m.video_id).await.unwrap();
    let fetcher = start(&[&a, &b], false).await;
    let b_id = b.node.peer_id();

    // Kill b as soon as it has delivered its first chunk.
    let mut events = merged_events(&[&fetcher]);
    let killer = tokio::spawn(async move {
        while let Some((_, e)) = events.recv().await {
            if matches!(&e, NodeEvent::ChunkReceived { from, .. } if *from == b_id) {
                drop(b.node); // abruptly, as a crash would
                return true;
            }
        }
        false
    });
    let opts = FetchOptions {
        per_peer: 1,
        ..FetchOptions::default()
    };
    fetcher
        .node
        .fetch(m.video_id, &opts)
        .await
        .expect("a still serves");
    assert!(holds_all(&fetcher, &m));
    assert!(
        killer.await.unwrap(),
        "b delivered at least one chunk before it was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_an_unknown_video_fails_clearly_after_a_bounded_wait() {
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let unknown = VideoId(Hash::of(b"nobody has this"));
    let opts = FetchOptions {
        stall_timeout: Duration::from_secs(2),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let err = b.node.fetch(unknown, &opts).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            ServiceError::Fetch(FetchError::ManifestUnavailable { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&unknown.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_learns_what_exists_and_fetches_it() {
    let a = start(&[], true).await;
    let b = start(&[&a], true).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 6);
    a.node.seed(&m, split.path(), &all(&m)).await.unwrap();
    a.node.publish(&m.video_id).await.unwrap();
    wait_until(
        &[&a, &b],
        Duration::from_secs(30),
        "b holds the video",
        || holds_all(&b, &m),
    )
    .await;

    // c arrives after every announcement above was sent, knowing only b.
    let c = start(&[&b], true).await;
    wait_until(
        &[&c],
        Duration::from_secs(30),
        "the late node holds the video",
        || holds_all(&c, &m),
    )
    .await;
}

/// A node whose bootstrap node is not up yet (as in compose, or a host that boots first) keeps
/// dialing it while it has no peer, and joins once it answers: no restart needed. The address
/// has no `/p2p/` part, as a `/dns4/...` bootstrap address would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_a_bootstrap_node_that_comes_up_later() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut b_cfg = common::swarm::config(b_dir.path(), false);
    b_cfg.bootstrap = vec![addr.clone()];
    let b = TestNode {
        node: vidswarm_node::node::Node::start(b_cfg).await.unwrap(),
        dir: b_dir,
    };
    assert!(b.node.client().connected_peers().await.unwrap().is_empty());

    let a_dir = tempfile::tempdir().unwrap();
    let mut a_cfg = common::swarm::config(a_dir.path(), false);
    a_cfg.listen = vec![addr];
    let a = TestNode {
        node: vidswarm_node::node::Node::start(a_cfg).await.unwrap(),
        dir: a_dir,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let a_id = a.node.peer_id();
    while !b
        .node
        .client()
        .connected_peers()
        .await
        .unwrap()
        .contains(&a_id)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b joined a within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a peer announced is forgotten when it goes: the availability table (and so
/// `/api/v1/videos`) lists live holders only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_leaves_is_no_longer_listed_as_a_holder() {
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 9);
    b.node.import_split(split.path()).await.unwrap();
    let b_id = b.node.peer_id();
    wait_until(
        &[&a, &b],
        Duration::from_secs(20),
        "a hears b's announcement",
        || a.node.client().availability().holders(&m.video_id, 0) == vec![b_id],
    )
    .await;
    drop(b.node); // abruptly, as a crash would
    wait_until(&[&a], Duration::from_secs(20), "a forgets b", || {
        a.node
            .client()
            .availability()
            .peers_with(&m.video_id)
            .is_empty()
    })
    .await;
    assert!(a.node.client().availability().videos().is_empty());
}

/// The DHT of `node` names `peer` as a provider of `key` (its own store first, then the network).
async fn lists_provider(
    node: &TestNode,
    key: libp2p::kad::RecordKey,
    peer: libp2p::PeerId,
) -> bool {
    let providers = node.node.client().providers(key).await.unwrap_or_default();
    providers.contains(&peer)
}

/// A node that stops says goodbye: its peers drop the provider records they store for it at
/// once (the DHT has no withdrawal; without this they would hand it out for their 30 min TTL),
/// and say so in an event. It stops as soon as its peer confirms the goodbye arrived, not after
/// its longest wait for that (`goodbye_wait`, made long here so that the test tells them apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_says_goodbye_and_its_provider_records_go_with_it() {
    use vidswarm_node::net::{fragment_key, manifest_key};
    let a = start(&[], false).await;
    let b_dir = tempfile::tempdir().unwrap();
    let mut b_cfg = common::swarm::config(b_dir.path(), false);
    b_cfg.net.goodbye_wait = Duration::from_secs(30);
    b_cfg.bootstrap = vec![a.node.listen_addrs()[0].clone()];
    let b = TestNode {
        node: vidswarm_node::node::Node::start(b_cfg).await.unwrap(),
        dir: b_dir,
    };
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 13);
    b.node.import_split(split.path()).await.unwrap();
    let b_id = b.node.peer_id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lists_provider(&a, manifest_key(&m.video_id), b_id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never stored b's provider record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fragment = fragment_key(&m.fragments[0].blake3);
    assert!(lists_provider(&a, fragment.clone(), b_id).await);

    let mut events = merged_events(&[&a]);
    let stopping = std::time::Instant::now();
    assert!(
        b.node.shutdown(Duration::from_secs(60)).await,
        "b stops cleanly"
    );
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "b waited {took:?} to stop: a's confirmation of the goodbye never came"
    );
    let said = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some((_, e)) = events.recv().await {
            if let NodeEvent::PeerLeaving { peer, video } = e {
                if peer == b_id && video == m.video_id {
                    return;
                }
            }
        }
    })
    .await;
    assert!(said.is_ok(), "a never heard b's goodbye");
    assert!(!lists_provider(&a, manifest_key(&m.video_id), b_id).await);
    assert!(!lists_provider(&a, fragment, b_id).await);
    assert!(a
        .node
        .client()
        .availability()
        .peers_with(&m.video_id)
        .is_empty());
    // And a does not dial it while it is gone.
    assert!(a.node.client().peers().is_backed_off(&b_id));
}
