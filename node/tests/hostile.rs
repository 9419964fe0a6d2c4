//! A hostile peer speaking `/vidswarm/fragment/1` with raw bytes: malformed and oversized requests
//! and responses cost a failed request, never a panic, and the node keeps serving others.

mod common;

use std::io;
use std::time::Duration;

use common::swarm::{holds_all, start};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm};
use vidswarm_node::fetch::FetchOptions;
use vidswarm_proto::wire::{self, ErrorCode, Request, Response, TRANSFER_PROTOCOL};
use vidswarm_proto::{Hash, VideoId};

/// Writes whatever bytes it is given; reads up to 16 MiB.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(16 << 20).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_request(p, io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_and_close(io, &r).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_and_close(io, &r).await
    }
}

async fn write_and_close<T: AsyncWrite + Unpin>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.close().await
}

type Raw = request_response::Behaviour<RawCodec>;

fn hostile_swarm() -> Swarm<Raw> {
    raw_swarm(Duration::from_secs(5))
}

/// A raw peer whose requests (and inbound streams) time out after `timeout`.
fn raw_swarm(timeout: Duration) -> Swarm<Raw> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    common::raw::tcp_swarm(key, Duration::from_secs(30), |_| {
        Raw::with_codec(
            RawCodec,
            [(
                StreamProtocol::new(TRANSFER_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(timeout),
        )
    })
}

/// A new node bootstrapped from `a` fetches all of `m` from it.
async fn an_honest_peer_fetches(a: &common::swarm::TestNode, m: &vidswarm_proto::Manifest) {
    let b = start(&[a], false).await;
    b.node
        .fetch(m.video_id, &FetchOptions::default())
        .await
        .unwrap();
    assert!(holds_all(&b, m));
}

/// A node holding a small video (3 fragments of 40,000 bytes, from `seed`), and its address.
async fn seeded_node(seed: u64) -> (common::swarm::TestNode, vidswarm_proto::Manifest, Multiaddr) {
    let a = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let frags: Vec<Vec<u8>> = (0..3).map(|i| common::bytes(seed + i, 40_000)).collect();
    let m = common::write_split_dir(split.path(), &frags);
    a.node.import_split(split.path()).await.unwrap();
    let addr = a.node.listen_addrs()[0].clone();
    (a, m, addr)
}

/// Asks the peer at `addr` for a chunk it must refuse, and returns the error code it answered.
async fn chunk_refusal(
    swarm: &mut Swarm<Raw>,
    addr: &Multiaddr,
    fragment: Hash,
    offset: u64,
    len: u32,
) -> ErrorCode {
    let request = wire::encode(&Request::Chunk {
        fragment,
        offset,
        len,
        may_decline: false,
    });
    match Response::decode(&send_raw(swarm, addr, request).await.unwrap()).unwrap() {
        Response::Error { code, .. } => code,
        other => panic!("{len} bytes at {offset} were answered {other:?}"),
    }
}

/// Sends `bytes` as a request to the peer at `addr` and returns its raw answer, or the failure.
async fn send_raw(
    swarm: &mut Swarm<Raw>,
    addr: &Multiaddr,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("address without /p2p: {addr}");
    };
    swarm.add_peer_address(peer, addr.clone());
    let id = swarm.behaviour_mut().send_request(&peer, bytes);
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Err("no answer within 10 s".into()),
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response }, ..
                }) if request_id == id => {
                    // The node drops the stream of a request it refuses: no bytes at all.
                    return if response.is_empty() {
                        Err("stream closed without an answer".into())
                    } else {
                        Ok(response)
                    };
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. })
                    if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_fail_alone_and_the_node_keeps_serving() {
    let (a, m, addr) = seeded_node(70).await;
    let mut hostile = hostile_swarm();

    // Garbage and a request far over the 1 KiB limit: the node drops the stream, nothing else.
    assert!(send_raw(&mut hostile, &addr, common::bytes(1, 100))
        .await
        .is_err());
    assert!(send_raw(&mut hostile, &addr, vec![0xa1; 2 << 20])
        .await
        .is_err());
    // A zero-length chunk request is refused by the decoder too.
    let zero = wire::encode(&Request::Chunk {
        fragment: m.fragments[0].blake3,
        offset: 0,
        len: 0,
        may_decline: false,
    });
    assert!(send_raw(&mut hostile, &addr, zero).await.is_err());
    // Well-formed but out of range: a clear error answer.
    let first = m.fragments[0].blake3;
    assert_eq!(
        chunk_refusal(&mut hostile, &addr, first, 1 << 40, 1024).await,
        ErrorCode::BadRequest
    );
    // Unknown content: NotFound.
    assert_eq!(
        chunk_refusal(&mut hostile, &addr, Hash::of(b"?"), 0, 1024).await,
        ErrorCode::NotFound
    );
    // More than one of the manifest's chunks (16 KiB here), though within the fragment: refused.
    assert_eq!(
        chunk_refusal(&mut hostile, &addr, first, 0, m.chunk_size * 2).await,
        ErrorCode::BadRequest
    );

    // The node still serves an honest peer.
    an_honest_peer_fetches(&a, &m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_or_oversized_answers_cost_a_failed_request_not_a_panic() {
    let mut hostile = hostile_swarm();
    hostile
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = hostile.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(*hostile.local_peer_id()));
        }
    };
    let hostile_id = *hostile.local_peer_id();
    // Answer every request with garbage, alternating with 9 MiB (over the 8 MiB + 1 KiB limit).
    tokio::spawn(async move {
        let mut n = 0u8;
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = hostile.select_next_some().await
            {
                n = n.wrapping_add(1);
                let answer = if n.is_multiple_of(2) {
                    vec![7u8; 9 << 20]
                } else {
                    common::bytes(3, 500)
                };
                let _ = hostile.behaviour_mut().send_response(channel, answer);
            }
        }
    });

    let a = start(&[], false).await;
    a.node.client().dial(addr).await.unwrap();
    let video = VideoId(Hash::of(b"anything"));
    for _ in 0..2 {
        let result = a
            .node
            .client()
            .request(hostile_id, Request::Manifest { video })
            .await;
        assert!(result.is_err(), "{result:?}");
    }
    // And the node is still alive: it answers its own client.
    assert!(!a.node.client().listen_addrs().await.unwrap().is_empty());
}

/// End game: a holder that takes requests and never answers them (a stalled peer, its requests
/// timing out only after 60 s) costs the fetch nothing: once every chunk is handed out, the ones
/// it sits on are asked of the other holder too, and the first answer wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_holder_costs_nothing_once_the_end_game_starts() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut stalled = raw_swarm(Duration::from_secs(300));
    stalled
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = stalled.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(*stalled.local_peer_id()));
        }
    };
    let stalled_id = *stalled.local_peer_id();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        // Keeps every response channel, answering none: the asker waits until its own timeout.
        let mut held = Vec::new();
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = stalled.select_next_some().await
            {
                counter.fetch_add(1, Ordering::Relaxed);
                held.push(channel);
            }
        }
    });

    let a = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let fragments: Vec<Vec<u8>> = (0..10)
        .map(|i| common::bytes(70 + i, 80_000 + i as usize))
        .collect();
    let m = common::write_split_dir(split.path(), &fragments);
    a.node.import_split(split.path()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::swarm::config(dir.path(), false);
    cfg.net.request_timeout = Duration::from_secs(60);
    cfg.bootstrap = vec![a.node.listen_addrs()[0].clone()];
    let f = common::swarm::TestNode {
        node: vidswarm_node::node::Node::start(cfg).await.unwrap(),
        dir,
    };
    f.node.client().dial(addr).await.unwrap();
    // The stalled peer claims every fragment.
    f.node
        .client()
        .availability()
        .record(m.video_id, stalled_id, 0..10);

    let started = std::time::Instant::now();
    let fetched = tokio::time::timeout(
        Duration::from_secs(30),
        f.node.fetch(m.video_id, &FetchOptions::default()),
    )
    .await
    .expect("the fetch does not wait for the stalled peer's 60 s timeout");
    fetched.unwrap();
    assert!(holds_all(&f, &m));
    assert!(
        asked.load(Ordering::Relaxed) > 0,
        "the stalled peer was asked (so the end game is what saved the fetch)"
    );
    eprintln!(
        "fetched in {:?} despite a stalled holder",
        started.elapsed()
    );
}

/// One peer dialing a node again and again keeps at most `MAX_CONNECTIONS_PER_PEER` of them: the
/// rest are refused as they come, and an honest peer fetches meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_dials_again_and_again_keeps_a_bounded_number_of_connections() {
    use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
    use vidswarm_node::net::MAX_CONNECTIONS_PER_PEER;
    let (a, m, addr) = seeded_node(90).await;
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("address without /p2p: {addr}");
    };
    let mut hostile = hostile_swarm();
    let dials = 3 * MAX_CONNECTIONS_PER_PEER as usize;
    for _ in 0..dials {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        hostile.dial(opts).unwrap();
    }
    // Every dial ends (established, then perhaps closed by the node, or failed), and the node
    // has closed all but the allowed number.
    let mut ended = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let open = hostile
            .network_info()
            .connection_counters()
            .num_established();
        if ended >= dials && open <= MAX_CONNECTIONS_PER_PEER {
            break;
        }
        let event = tokio::time::timeout_at(deadline, hostile.select_next_some()).await;
        let event = event.unwrap_or_else(|_| {
            panic!("after {ended} of {dials} dials, {open} connections are still open")
        });
        match event {
            SwarmEvent::ConnectionEstablished { .. }
            | SwarmEvent::OutgoingConnectionError { .. } => ended += 1,
            _ => {}
        }
    }
    assert!(hostile.is_connected(&peer), "the allowed ones stay");

    an_honest_peer_fetches(&a, &m).await;
}

/// A raw peer that keeps `in_flight` requests for the chunks of `target` going, over and over,
/// until stopped; `answered` counts the chunks it got.
struct Greedy {
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Greedy {
    fn hammer(addr: Multiaddr, target: vidswarm_proto::FragmentInfo, in_flight: usize) -> Self {
        use std::sync::atomic::Ordering;
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            panic!("address without /p2p: {addr}");
        };
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut swarm = raw_swarm(Duration::from_secs(30));
        swarm.add_peer_address(peer, addr);
        let chunks = target.chunks.len() as u64;
        let task = {
            let (answered, stop) = (answered.clone(), stop.clone());
            tokio::spawn(async move {
                let mut next = 0u64;
                let mut ask = |swarm: &mut Swarm<Raw>| {
                    let request = common::raw::chunk_request(&target, common::CS, next % chunks);
                    next += 1;
                    swarm.behaviour_mut().send_request(&peer, request);
                };
                for _ in 0..in_flight {
                    ask(&mut swarm);
                }
                while !stop.load(Ordering::Relaxed) {
                    // Answers that come back at once (`Busy`) would keep this task from ever
                    // yielding, and a failing test's runtime could then never shut it down.
                    tokio::task::yield_now().await;
                    let event =
                        tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some());
                    match event.await {
                        Ok(SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. },
                            ..
                        })) => {
                            if matches!(Response::decode(&response), Ok(Response::Chunk { .. })) {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            ask(&mut swarm);
                        }
                        Ok(SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                            ..
                        })) => ask(&mut swarm),
                        _ => {}
                    }
                }
            })
        };
        Self {
            answered,
            stop,
            task,
        }
    }

    fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until it was sent `n` chunks: it is being served before the honest fetch comes.
    async fn served(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.answered() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the greedy peer is not served"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// A node holding 4 fragments of 2 MiB (16 KiB chunks), made with `cfg`; and their manifest.
async fn node_with_four_fragments(
    cfg: impl FnOnce(&mut vidswarm_node::node::NodeConfig),
) -> (common::swarm::TestNode, vidswarm_proto::Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::swarm::config(dir.path(), false);
    cfg(&mut config);
    let node = vidswarm_node::node::Node::start(config).await.unwrap();
    let a = common::swarm::TestNode { node, dir };
    let split = tempfile::tempdir().unwrap();
    let frags: Vec<Vec<u8>> = (0..4).map(|i| common::bytes(300 + i, 2 << 20)).collect();
    let m = common::write_split_dir(split.path(), &frags);
    a.node.import_split(split.path()).await.unwrap();
    (a, m)
}

/// A greedy peer that keeps 64 requests in flight for the chunks of one fragment, over and over,
/// cannot starve an honest fetch of that fragment. Each of its chunks counts as "just sent
/// elsewhere", so the node declines it to the honest fetch (`net/event_loop/spread.rs`); asked
/// again after the back-off, the fetch does not let it decline (`fetch/download_hand_out.rs`).
/// Before, it let the node decline every time and stalled after 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_peer_cannot_starve_an_honest_fetch_of_the_fragment_it_hammers() {
    let (a, m) = node_with_four_fragments(|_| {}).await;
    let addr = a.node.listen_addrs()[0].clone();
    let greedy = Greedy::hammer(addr, m.fragments[0].clone(), 64);
    greedy.served(64).await;

    let b = start(&[&a], false).await;
    let opts = FetchOptions::default();
    tokio::time::timeout(Duration::from_secs(60), b.node.fetch(m.video_id, &opts))
        .await
        .expect("the honest fetch ends")
        .expect("the honest fetch completes");
    assert!(greedy.answered() > 64, "the greedy peer kept being served");
    greedy.stop().await;
    assert!(holds_all(&b, &m));
}

/// Where the upload is what binds (here a node limited to 4 MiB/s), a peer that keeps 64
/// requests in flight gets no more of it than an honest fetch keeping 4: each peer has one
/// request served at a time (`net/event_loop/uploads.rs`), and the limit hands out its time in
/// the order the answers are ready (`pacer.rs`). Served in the order requests came, the greedy
/// peer would take 32 of the 32 serves and the honest fetch a sliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_peer_gets_no_more_than_its_share_of_a_limited_upload() {
    const RATE: u64 = 4 << 20;
    let (a, m) = node_with_four_fragments(|cfg| cfg.net.max_upload_rate = Some(RATE)).await;
    let addr = a.node.listen_addrs()[0].clone();
    let greedy = Greedy::hammer(addr, m.fragments[0].clone(), 64);
    greedy.served(64).await;

    let b = start(&[&a], false).await;
    let (before, started) = (greedy.answered(), std::time::Instant::now());
    let opts = FetchOptions::default();
    tokio::time::timeout(Duration::from_secs(30), b.node.fetch(m.video_id, &opts))
        .await
        .expect("the honest fetch ends")
        .expect("the honest fetch completes");
    let (took, during) = (started.elapsed(), greedy.answered() - before);
    greedy.stop().await;
    assert!(holds_all(&b, &m));

    let honest: u64 = m.fragments.iter().map(|f| f.size).sum();
    let greedy_bytes = during * u64::from(common::CS);
    let share = honest as f64 / (honest + greedy_bytes) as f64;
    let rate = (honest + greedy_bytes) as f64 / took.as_secs_f64();
    eprintln!(
        "honest {honest} B, greedy {greedy_bytes} B in {took:?}: honest share {share:.2}, {:.2} MiB/s",
        rate / f64::from(1 << 20)
    );
    assert!(
        rate <= RATE as f64 * 1.1,
        "the node uploaded {rate:.0} B/s with a limit of {RATE}"
    );
    assert!(
        share >= 0.35,
        "the honest fetch got {share:.2} of the upload beside a greedy peer"
    );
}
