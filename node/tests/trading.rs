//! Peers trade chunks before they hold whole fragments: a node still fetching a fragment
//! announces the chunks it has verified and serves them, and another fetch takes those chunks
//! from it (issue #14).

mod common;

use std::time::Duration;

use common::swarm::{merged_events, start, wait_until};
use vidswarm_node::events::NodeEvent;
use vidswarm_node::fetch::FetchOptions;
use vidswarm_node::metrics::HAVE;

/// How the partial holder tells its progress: by gossip (a fetch's first progress, and what
/// older nodes send), or on its progress stream to each connected peer (the rest).
#[derive(Clone, Copy, Debug)]
enum Told {
    Gossip,
    Stream,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_still_fetching_a_fragment_serves_the_chunks_it_has_verified() {
    trades_verified_chunks(Told::Gossip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_on_the_stream_reaches_a_connected_peer() {
    trades_verified_chunks(Told::Stream).await;
}

async fn trades_verified_chunks(told: Told) {
    let split = tempfile::tempdir().unwrap();
    // One fragment of 5 chunks (16 KiB each, the last short).
    let m = common::write_split_dir(split.path(), &[common::bytes(7, 4 * 16_384 + 100)]);
    let data = std::fs::read(split.path().join(&m.fragments[0].name)).unwrap();
    let (hash, size, cs) = (m.fragments[0].blake3, data.len() as u64, m.chunk_size);

    // A node midway through fetching fragment 0: chunks 0, 1 and 2 written and verified, as the
    // store's sink leaves them, nothing committed.
    let partial = start(&[], false).await;
    let store = partial.node.store();
    store.put_manifest(&m).unwrap();
    let writer = store.begin_fragment(hash, size, cs).unwrap();
    for k in 0..3u32 {
        let at = u64::from(k * cs) as usize;
        writer
            .write_at(u64::from(k * cs), &data[at..at + cs as usize])
            .unwrap();
        writer.chunk_verified(k).unwrap();
    }
    assert!(!store.has_fragment(&hash));

    // A fetcher that knows only that node hears its progress (what a fetch gossips).
    let fetcher = start(&[&partial], false).await;
    let progress = common::progress_announcement(
        partial.node.client().peer_id(),
        m.video_id,
        0,
        hash,
        &[true, true, true, false, false],
    );
    let availability = fetcher.node.client().availability().clone();
    let mut announced = tokio::time::Instant::now() - Duration::from_secs(1);
    wait_until(
        &[&partial, &fetcher],
        Duration::from_secs(20),
        "the fetcher hears which chunks the partial holder has",
        || {
            if announced.elapsed() >= Duration::from_millis(300) {
                let (client, a) = (partial.node.client().clone(), progress.clone());
                tokio::spawn(async move {
                    match told {
                        Told::Gossip => client.announce(a).await,
                        Told::Stream => client.progress(a).await,
                    }
                });
                announced = tokio::time::Instant::now();
            }
            !availability.partial_holders(&m.video_id, 0).is_empty()
        },
    )
    .await;

    let have_in = fetcher.node.client().metrics().protocol_bytes_of(HAVE).0;
    match told {
        Told::Gossip => assert_eq!(have_in, 0, "nothing came on the progress stream"),
        Told::Stream => assert!(have_in > 0, "the progress came on the stream"),
    }

    // The fetch takes chunks 0-2 from the partial holder; the rest come once a seeder joins.
    let mut events = merged_events(&[&fetcher]);
    let fetch = {
        let service = fetcher.node.service().clone();
        let video = m.video_id;
        tokio::spawn(async move { service.fetch(video, &FetchOptions::default()).await })
    };
    let from_partial = partial.node.client().peer_id();
    let mut got = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 3 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("chunks 0-2 arrive from the partial holder within 20 s");
        if let Some((
            _,
            NodeEvent::ChunkReceived {
                fragment: 0,
                chunk,
                from,
                ..
            },
        )) = event
        {
            assert_eq!(from, from_partial, "only the partial holder has chunks yet");
            got.insert(chunk);
        }
    }
    assert_eq!(got, [0, 1, 2].into(), "exactly the chunks it has verified");
    assert!(!fetch.is_finished(), "chunks 3 and 4 have no holder yet");

    let seeder = start(&[&fetcher], false).await;
    seeder.node.seed(&m, split.path(), &[0]).await.unwrap();
    seeder.node.publish(&m.video_id).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .expect("the fetch completes once a seeder joins")
        .unwrap()
        .expect("the fetch succeeds");
    assert_eq!(
        report.per_peer.get(&from_partial).copied(),
        Some(3 * u64::from(cs)),
        "3 chunks from the partial holder: {:?}",
        report.per_peer
    );
    let fetched = std::fs::read(fetcher.node.store().fragment_path(&hash).unwrap()).unwrap();
    assert!(fetched == data, "the fragment is exact");
}

/// A peer that predates the progress stream (it speaks gossipsub only) still hears a fetch's
/// progress: while one is connected, progress goes on the topic too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_progress_stream_hears_progress_by_gossip() {
    use futures::StreamExt;
    use libp2p::gossipsub;
    use libp2p::swarm::SwarmEvent;
    use vidswarm_proto::wire::Announcement;

    let node = start(&[], false).await;
    let mut older = common::gossip::gossip_swarm(libp2p::identity::Keypair::generate_ed25519());
    common::gossip::connect(&mut older, &node.node).await;
    let client = node.node.client().clone();
    let video = vidswarm_proto::VideoId(vidswarm_proto::Hash::of(b"older peer's video"));
    let progress = common::progress_announcement(
        client.peer_id(),
        video,
        0,
        vidswarm_proto::Hash::of(b"fragment 0"),
        &[true, false],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut retry = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            event = older.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event {
                    let a = Announcement::decode(&message.data).unwrap();
                    if a.video == video && !a.partial.is_empty() {
                        assert_eq!(a.partial, progress.partial);
                        return;
                    }
                }
            }
            _ = retry.tick() => client.progress(progress.clone()).await.unwrap(),
            _ = tokio::time::sleep_until(deadline) => {
                panic!("the older peer heard no progress by gossip within 20 s")
            }
        }
    }
}
