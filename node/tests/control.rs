//! What the node decides does not depend on the lossy event stream: with an event buffer of 2 and
//! a subscriber that never reads, auto-fetch, name learning, announcements and the fetch registry
//! still work. And a node stopped mid-fetch with `Node::shutdown` leaves a store that reopens
//! clean.

mod common;

use std::time::{Duration, Instant};

use common::swarm::{config, holds_all, start, wait_until, TestNode};
use vidswarm_node::node::Node;
use vidswarm_node::service::FetchState;
use vidswarm_node::store::Store;
use vidswarm_proto::Manifest;

fn video(dir: &std::path::Path, seed: u64, n: usize, size: usize) -> Manifest {
    let frags: Vec<Vec<u8>> = (0..n)
        .map(|i| common::bytes(seed * 100 + i as u64, size + i * 11))
        .collect();
    common::write_split_dir(dir, &frags)
}

async fn start_lagging(bootstrap: &TestNode) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), true);
    cfg.bootstrap = vec![bootstrap.node.listen_addrs()[0].clone()];
    cfg.events_buffer = 2;
    let node = Node::start(cfg).await.expect("node starts");
    TestNode { node, dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_changes_nothing_the_node_decides() {
    let seeder = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 7, 6, 300_000);
    seeder.node.import_split(split.path()).await.unwrap();
    // A loose upload, whose name travels with its announcement.
    let store = seeder.node.store();
    let mut upload = store.begin_upload(64 * 1024, 1 << 20).unwrap();
    upload.write(b"a loose upload").unwrap();
    let verified = upload.finish(None).unwrap();
    let named = seeder
        .node
        .service()
        .add_named("loose.mp4".into(), verified, false)
        .await
        .unwrap();

    let fetcher = start_lagging(&seeder).await;
    // Subscribed and never read: with a buffer of 2 it lags at once and stays behind.
    let _slow = fetcher.node.client().subscribe();

    wait_until(
        &[&seeder],
        Duration::from_secs(30),
        "the fetcher holds the video and the upload, and knows the name",
        || {
            holds_all(&fetcher, &m)
                && fetcher.node.store().named("loose.mp4").map(|e| e.video) == Some(named.video)
                && fetcher.node.store().has_fragment(&named.hash)
        },
    )
    .await;
    // The registry sees the fetch end, though its events were lost to the slow reader's lag.
    let registry = fetcher.node.service().fetches();
    wait_until(
        &[&seeder],
        Duration::from_secs(10),
        "the fetch is over",
        || {
            registry
                .get(&m.video_id)
                .is_some_and(|p| p.state != FetchState::Running)
        },
    )
    .await;
    let progress = registry.get(&m.video_id).unwrap();
    assert_eq!(progress.state, FetchState::Completed, "{progress:?}");
    assert_eq!(progress.done, (0..6).collect::<Vec<u32>>());
    // What the fetcher gained was announced: the seeder hears it hold every fragment.
    let me = fetcher.node.peer_id();
    wait_until(
        &[&seeder],
        Duration::from_secs(20),
        "the seeder hears the fetcher",
        || {
            (0..6).all(|i| {
                seeder
                    .node
                    .client()
                    .availability()
                    .holders(&m.video_id, i)
                    .contains(&me)
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_fetch_stops_in_time_and_its_store_reopens_clean() {
    let seeder = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    // Big enough that the fetch is still running when the stop comes.
    let m = video(split.path(), 8, 10, 6 << 20);
    seeder.node.import_split(split.path()).await.unwrap();
    let fetcher = start_lagging(&seeder).await;
    wait_until(
        &[&fetcher],
        Duration::from_secs(30),
        "a fragment is in",
        || {
            m.fragments
                .iter()
                .any(|f| fetcher.node.store().has_fragment(&f.blake3))
        },
    )
    .await;
    assert!(
        !holds_all(&fetcher, &m),
        "the fetch should still be running"
    );
    let TestNode { node, dir } = fetcher;
    let started = Instant::now();
    let clean = node.shutdown(Duration::from_secs(5)).await;
    assert!(clean, "stopped cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    let tmp = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert_eq!(tmp, 0, "the stop left temp files");
    // Opening takes the data dir's lock: nothing of the stopped node holds it any more.
    let (store, report) = Store::open(dir.path()).expect("reopens");
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    let held = m
        .fragments
        .iter()
        .filter(|f| store.has_fragment(&f.blake3))
        .count();
    assert!(held >= 1, "what was committed before the stop stays");
}
