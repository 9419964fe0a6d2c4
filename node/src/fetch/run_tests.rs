//! The driver over fake seams: whole downloads, no sockets, no disk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::fetch::download::Download;
use crate::fetch::test_support::{bytes, manifest, Behaviour, FakeSource, MemSink, CS};
use crate::store::StoreError;
use vidswarm_proto::Manifest;

fn fragments() -> Vec<Vec<u8>> {
    vec![
        bytes(1, 3 * CS as usize),
        bytes(2, 2 * CS as usize + 5),
        bytes(3, 1),
    ]
}

async fn download(
    peers: &[Behaviour],
    fail_writes: bool,
    stall: Duration,
) -> (
    Result<BTreeMap<PeerId, u64>, FetchError>,
    Arc<FakeSource>,
    Arc<MemSink>,
    Vec<Progress>,
) {
    let data = fragments();
    let m = Arc::new(manifest(&data));
    let source = Arc::new(FakeSource::new(&data, peers));
    let mut sink = MemSink::new(m.clone());
    sink.fail_writes = fail_writes;
    let sink = Arc::new(sink);
    let d = Download::new(&m, &[0, 1, 2], 4, Instant::now());
    let seen = Mutex::new(Vec::new());
    let report = |p: Progress| seen.lock().unwrap().push(p);
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        run(
            d,
            source.clone(),
            sink.clone(),
            m.video_id,
            stall,
            None,
            &report,
        ),
    )
    .await
    .expect("the download ends");
    (result, source, sink, seen.into_inner().unwrap())
}

/// Downloads `missing` of `m` from `source` into `sink`, which must succeed within 20 s.
async fn run_to_end(m: &Manifest, missing: &[u32], source: &Arc<FakeSource>, sink: &Arc<MemSink>) {
    let d = Download::new(m, missing, 4, Instant::now());
    let fetched = run(
        d,
        source.clone(),
        sink.clone(),
        m.video_id,
        Duration::from_secs(5),
        None,
        &|_| {},
    );
    tokio::time::timeout(Duration::from_secs(20), fetched)
        .await
        .expect("the download ends")
        .expect("the download completes");
}

fn assert_exact(sink: &MemSink) {
    let data = fragments();
    let buffers = sink.buffers.lock().unwrap();
    for (i, f) in data.iter().enumerate() {
        assert_eq!(&buffers[&(i as u32)], f, "fragment {i}");
    }
    let mut committed = sink.committed.lock().unwrap().clone();
    committed.sort();
    assert_eq!(committed, [0, 1, 2], "each fragment committed once");
}

#[tokio::test]
async fn a_download_from_several_peers_is_exact_and_each_gain_is_told_once() {
    let (result, source, sink, seen) = download(
        &[Behaviour::Honest, Behaviour::Honest, Behaviour::Honest],
        false,
        Duration::from_secs(5),
    )
    .await;
    let received = result.unwrap();
    assert_exact(&sink);
    let total: u64 = fragments().iter().map(|f| f.len() as u64).sum();
    assert_eq!(received.values().sum::<u64>(), total);
    assert!(received.len() >= 2, "spread over peers: {received:?}");
    let mut gained = source.state.lock().unwrap().gained.clone();
    gained.sort();
    assert_eq!(gained, [0, 1, 2]);
    let stored = seen
        .iter()
        .filter(|p| matches!(p, Progress::Fragment { .. }))
        .count();
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn a_liar_is_reported_and_excluded_and_the_download_completes_from_the_others() {
    let (result, source, sink, seen) = download(
        &[Behaviour::Liar, Behaviour::Honest],
        false,
        Duration::from_secs(5),
    )
    .await;
    let received = result.unwrap();
    assert_exact(&sink);
    let liar = source.peer(0);
    assert!(!received.contains_key(&liar));
    assert!(seen
        .iter()
        .any(|p| matches!(p, Progress::Misbehaved { peer, .. } if *peer == liar)));
    // Excluded after its first answers: it was asked only what was handed out before.
    assert!(
        source.asked_of(liar) <= 4,
        "asked {}",
        source.asked_of(liar)
    );
}

#[tokio::test]
async fn a_holder_that_never_answers_costs_nothing_once_the_end_game_starts() {
    let started = Instant::now();
    let (result, source, sink, _) = download(
        &[Behaviour::Silent, Behaviour::Honest],
        false,
        Duration::from_secs(5),
    )
    .await;
    result.unwrap();
    assert_exact(&sink);
    assert!(
        source.asked_of(source.peer(0)) > 0,
        "the silent peer was asked"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_busy_peer_is_asked_again_after_its_cool_down() {
    let (result, source, sink, _) =
        download(&[Behaviour::BusyFor(3)], false, Duration::from_secs(5)).await;
    result.unwrap();
    assert_exact(&sink);
    assert!(source.asked_of(source.peer(0)) >= 3 + 6);
}

#[tokio::test]
async fn a_local_disk_error_ends_the_download_with_a_typed_store_error() {
    let (result, _, sink, _) = download(&[Behaviour::Honest], true, Duration::from_secs(5)).await;
    match result {
        Err(FetchError::Store(StoreError::Io { source, .. })) => {
            assert_eq!(source.raw_os_error(), Some(28));
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(sink.committed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_usable_holder_stalls_with_the_fragments_left() {
    let (result, _, _, _) =
        download(&[Behaviour::NotHeld], false, Duration::from_millis(300)).await;
    match result {
        Err(FetchError::Stalled { missing, .. }) => assert_eq!(missing, [0, 1, 2]),
        other => panic!("expected a stall, got {other:?}"),
    }
}

/// Chunks an earlier fetch verified are not asked for again, and a fragment it had whole (killed
/// before its commit) is committed without a request.
#[tokio::test]
async fn a_resumed_download_asks_only_for_the_chunks_missing() {
    let data = fragments();
    let m = Arc::new(manifest(&data));
    let source = Arc::new(FakeSource::new(&data, &[Behaviour::Honest]));
    let sink = Arc::new(MemSink::new(m.clone()));
    sink.resume(0, &data[0], vec![true, false, true]);
    sink.resume(2, &data[2], vec![true]);
    run_to_end(&m, &[0, 1, 2], &source, &sink).await;
    assert_exact(&sink);
    let asked = source.state.lock().unwrap().asked.clone();
    let of = |i: usize| {
        let mut offsets: Vec<u64> = asked
            .iter()
            .filter(|(_, h, _)| *h == m.fragments[i].blake3)
            .map(|(_, _, at)| *at)
            .collect();
        offsets.sort();
        offsets
    };
    assert_eq!(of(0), vec![u64::from(CS)], "only chunk 1 of fragment 0");
    assert_eq!(of(1).len(), 3, "all of fragment 1");
    assert!(of(2).is_empty(), "nothing of fragment 2");
    let mut committed = sink.committed.lock().unwrap().clone();
    committed.sort();
    assert_eq!(committed, vec![0, 1, 2]);
    assert!(source.state.lock().unwrap().gained.contains(&2));
}

/// A video of many fragments runs at most `MAX_LOOKUPS` slow lookups at once: one DHT query per
/// fragment at once (1000 of them) took every stream of the connections, and the fetch hung.
#[tokio::test]
async fn a_video_of_many_fragments_runs_a_bounded_number_of_lookups() {
    let data: Vec<Vec<u8>> = (0..40).map(|i| bytes(100 + i, 2 * CS as usize)).collect();
    let m = Arc::new(manifest(&data));
    let mut source = FakeSource::new(&data, &[Behaviour::Honest]);
    source.lookup_delay = Some(Duration::from_millis(20));
    let source = Arc::new(source);
    let sink = Arc::new(MemSink::new(m.clone()));
    let all: Vec<u32> = (0..40).collect();
    run_to_end(&m, &all, &source, &sink).await;
    let most = source
        .lookups
        .most
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(most >= 1, "lookups ran");
    assert!(most <= MAX_LOOKUPS, "{most} lookups ran at once");
}

/// A fragment the gossip already names enough holders of is not looked up again (with 32 hosts
/// the seeder answered 1352 provider lookups in one run); one short of them is, and fetching
/// peers count only once they have a chunk of it.
#[test]
fn only_fragments_short_of_holders_are_looked_up_again() {
    let data = fragments();
    let m = manifest(&data);
    let mut d = Download::new(&m, &[0, 1, 2], 4, Instant::now());
    let peers: Vec<PeerId> = (0..ENOUGH_HOLDERS).map(|_| PeerId::random()).collect();
    d.add_holders(0, peers.clone());
    d.add_holders(1, peers[1..].to_vec());
    // Fragment 1 also has fetching peers with nothing of it yet; fragment 2 (one chunk) has
    // enough that hold its chunk.
    d.add_partial_holders(1, peers.iter().map(|p| (*p, vec![0])).collect());
    d.add_partial_holders(1, vec![(PeerId::random(), vec![0])]);
    d.add_partial_holders(2, peers.iter().map(|p| (*p, vec![1])).collect());
    let source = FakeSource::new(&data, &[Behaviour::Honest]);
    let mut lookups = FuturesUnordered::new();
    let mut queue: VecDeque<_> = d.unfinished().into();
    start_lookups(&mut lookups, &mut queue, &d, &source);
    assert_eq!(source.state.lock().unwrap().looked_up, [1]);
    assert_eq!(d.known_holders(1), ENOUGH_HOLDERS - 1);
    assert_eq!(d.known_holders(2), ENOUGH_HOLDERS);
}

#[test]
fn progress_slows_with_the_swarm_up_to_a_second() {
    let ms = |peers| progress_every(peers).as_millis();
    assert_eq!((ms(0), ms(1), ms(8)), (250, 250, 250));
    assert_eq!((ms(9), ms(16), ms(17), ms(24)), (500, 500, 750, 750));
    assert_eq!(
        (ms(25), ms(31), ms(1000), ms(usize::MAX)),
        (1000, 1000, 1000, 1000)
    );
    // The slowest cadence stays well inside the window in which a busy peer declines a chunk
    // it just sent, counting on its receiver to have told the swarm.
    assert!(PROGRESS_SLOWEST * 2 <= crate::net::DECLINE_WINDOW);
}
