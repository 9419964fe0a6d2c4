//! What peers can make a `vidswarm node` process hold, measured on the process: the memory of
//! answers its askers never read, and the descriptors a fetch of the largest video takes. In
//! each, an honest `vidswarm fetch` completes in the same test.

mod common;

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{add, assert_split_dir_only, node_with_http, Proc};
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{Multiaddr, StreamProtocol, Swarm};
use vidswarm_proto::wire::TRANSFER_PROTOCOL;
use vidswarm_proto::Manifest;

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");

/// Sends requests as they are and never reads an answer: the stream stays open, unread.
#[derive(Clone, Default)]
struct NeverReads;

impl request_response::Codec for NeverReads {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        futures::future::pending().await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

fn never_reading_swarm() -> Swarm<request_response::Behaviour<NeverReads>> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    common::raw::tcp_swarm(key, Duration::from_secs(60), |_| {
        request_response::Behaviour::with_codec(
            NeverReads,
            [(
                StreamProtocol::new(TRANSFER_PROTOCOL),
                ProtocolSupport::Outbound,
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
        )
    })
}

/// The process's resident memory, in bytes.
fn rss(node: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.0.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib << 10
}

/// A seeder process holding `fragments` (in chunks of `chunk_size`), and its address.
fn seeder(work: &Path, fragments: &[Vec<u8>], chunk_size: u32) -> (Proc, String, Manifest) {
    let split = work.join("split");
    let m = common::write_split_dir_in_chunks_of(&split, fragments, chunk_size);
    let data = work.join("seeder");
    add(BIN, &split, &data);
    let (node, addr, _) = node_with_http(BIN, &data, None, &[]);
    (node, addr, m)
}

/// `vidswarm fetch` of `m` from `addr` into `out`, run through `sh` with `limits` (shell
/// `ulimit` commands) in effect; whether it succeeded, and what it said.
fn fetch(addr: &str, m: &Manifest, out: &Path, limits: &str) -> (bool, String) {
    let fetched = Command::new("sh")
        .arg("-c")
        .arg(format!("{limits} exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(["fetch", &m.video_id.to_string(), "--bootstrap", addr])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--min-free", "0"])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&fetched.stdout),
        String::from_utf8_lossy(&fetched.stderr)
    );
    (fetched.status.success(), said)
}

fn assert_fetched(out: &Path, fragments: &[Vec<u8>]) {
    assert_split_dir_only(out, fragments.len() as u32);
    for (i, bytes) in fragments.iter().enumerate() {
        let got = std::fs::read(out.join(format!("fragment_{i}.mp4"))).unwrap();
        assert!(got == *bytes, "fragment {i} differs");
    }
}

/// Eight peers each keep 96 requests for 256 KiB chunks open and never read an answer: served
/// all at once, the node would hold 8 × 96 answers (192 MiB). A peer's requests are served one at
/// a time and at most 32 serves are counted until written out, so the node holds a few MiB more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_read_their_answers_make_the_node_hold_a_bounded_amount() {
    let work = tempfile::tempdir().unwrap();
    let fragments: Vec<Vec<u8>> = (0..2).map(|i| common::bytes(900 + i, 12 << 20)).collect();
    let chunk = vidswarm_proto::DEFAULT_CHUNK_SIZE;
    let (node, addr, m) = seeder(work.path(), &fragments, chunk);
    let addr: Multiaddr = addr.parse().unwrap();
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("address without /p2p: {addr}");
    };
    let baseline = rss(&node);

    let mut hostile: Vec<_> = (0..8).map(|_| never_reading_swarm()).collect();
    for swarm in &mut hostile {
        swarm.add_peer_address(peer, addr.clone());
        for k in 0..96u64 {
            let f = &m.fragments[(k % 2) as usize];
            let request = common::raw::chunk_request(f, chunk, k / 2);
            swarm.behaviour_mut().send_request(&peer, request);
        }
    }
    // The hostile swarms run beside the test; they only send.
    let running = tokio::spawn(async move {
        let mut all = futures::stream::select_all(hostile);
        loop {
            all.next().await;
        }
    });

    // While they hold their streams: the node's memory, and an honest fetch.
    let out = work.path().join("out");
    let honest = {
        let (addr, m, out) = (addr.to_string(), m.clone(), out.clone());
        tokio::task::spawn_blocking(move || fetch(&addr, &m, &out, ""))
    };
    let watch_until = Instant::now() + Duration::from_secs(4);
    let mut peak = baseline;
    while Instant::now() < watch_until || !honest.is_finished() {
        peak = peak.max(rss(&node));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, said) = honest.await.unwrap();
    running.abort();
    assert!(
        ok,
        "the honest fetch failed beside peers that never read:\n{said}"
    );
    assert_fetched(&out, &fragments);
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "node memory: {} MiB at start, peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        grew < 48 << 20,
        "the node's memory grew by {} MiB for peers that never read",
        grew >> 20
    );
}

/// A video of the most fragments a manifest may list (1000) is fetched by a process allowed 256
/// descriptors: a fetch holds at most 64 unfinished fragments open, not one file per fragment.
/// (This test found that such a fetch hung, with any descriptor limit: it started a DHT lookup
/// for every fragment at once.)
#[test]
fn a_video_of_a_thousand_fragments_is_fetched_with_256_descriptors() {
    let work = tempfile::tempdir().unwrap();
    let n = vidswarm_proto::MAX_FRAGMENTS as u64;
    let fragments: Vec<Vec<u8>> = (0..n).map(|i| common::bytes(5000 + i, 3000)).collect();
    let (_node, addr, m) = seeder(work.path(), &fragments, common::CS);
    let out = work.path().join("out");
    let (ok, said) = fetch(&addr, &m, &out, "ulimit -n 256 &&");
    assert!(ok, "the fetch failed with 256 descriptors:\n{said}");
    assert_fetched(&out, &fragments);
}
