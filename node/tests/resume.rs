//! A fetch killed with SIGKILL over and over goes on where it stopped (`store/resume.rs`): the
//! bytes come out exact, no kill leaves a half-written fragment where a fragment is visible,
//! and all the restarts together take little more than the video's size from the seeder.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{add, Proc};
use vidswarm_proto::{fragment_name, Hash, Manifest};

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");
const KILLS: usize = 20;
const CHUNK: u32 = 64 * 1024;
/// The fetcher's `--resume-every`: two chunks.
const RESUME_EVERY: u64 = 128 * 1024;
/// What one kill may cost beside the video's own chunks: those verified and not saved (at most
/// twice `RESUME_EVERY`: chunks wait for a slow save beyond that), and those in flight, served
/// but not yet verified when it died (at most `FetchOptions::per_peer` requests per peer: on
/// loopback the window is that wide), with a margin of 4.
fn loss_per_kill() -> u64 {
    let in_flight = vidswarm_node::fetch::FetchOptions::default().per_peer as u64;
    2 * RESUME_EVERY / CHUNK as u64 + in_flight + 4
}

#[test]
fn a_fetch_killed_twenty_times_resumes_each_time_and_ends_exact() {
    let work = tempfile::tempdir().unwrap();
    let seeder = Seeder::start(work.path(), 3, 32 << 20, 90);
    let (m, fragments, addr, http) = (
        &seeder.manifest,
        &seeder.fragments,
        &seeder.addr,
        &seeder.http,
    );
    let total_chunks = seeder.chunks();

    let out = work.path().join("out");
    let store = out.join(".vidswarm-store");
    let fetch = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["fetch", &m.video_id.to_string(), "--bootstrap", addr])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30"])
            .args(["--resume-every", &RESUME_EVERY.to_string()])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Proc(cmd.spawn().expect("vidswarm fetch starts"))
    };

    // Each round is killed once the seeder has served a random number of chunks more: kills
    // land anywhere in a fragment, in a save or between saves, and 20 rounds cannot finish.
    let mut rng = common::bytes(7, KILLS).into_iter();
    let mut resumed_chunks = 0;
    for kill in 0..KILLS {
        let before = served(http);
        let target = before + 24 + u64::from(rng.next().unwrap()) % 40;
        let mut proc = fetch();
        let deadline = Instant::now() + Duration::from_secs(60);
        while served(http) < target {
            if let Some(status) = proc.0.try_wait().unwrap() {
                panic!(
                    "round {kill}: the fetch ended ({status}) before its kill: {}",
                    stderr(&mut proc)
                );
            }
            assert!(
                Instant::now() < deadline,
                "round {kill}: no progress in 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        proc.0.kill().unwrap(); // SIGKILL
        proc.0.wait().unwrap();
        assert_no_half_written_fragment(&store, m, kill);
        resumed_chunks = resumed_chunks.max(claimed_chunks(&store));
    }
    assert!(
        resumed_chunks > 0,
        "no kill left a resume record claiming anything"
    );

    let mut last = fetch();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = last.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the last fetch does not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "the last fetch failed: {}",
        stderr(&mut last)
    );
    for (i, bytes) in fragments.iter().enumerate() {
        let got = std::fs::read(out.join(fragment_name(i as u32))).unwrap();
        assert!(got == *bytes, "fragment {i} differs");
    }
    common::procs::assert_split_dir_only(&out, 3);

    let served = served(http);
    let bound = total_chunks + KILLS as u64 * loss_per_kill();
    eprintln!(
        "served {served} chunks over {} runs for a video of {total_chunks} (bound {bound}); a record claimed up to {resumed_chunks}",
        KILLS + 1
    );
    assert!(
        served <= bound,
        "{served} chunks served for a video of {total_chunks}: the kills cost more than {} chunks each",
        loss_per_kill()
    );
}

/// A node killed mid-fetch takes the fetch up again when it starts, on its own, from the chunks
/// it had verified.
#[test]
fn a_node_killed_mid_fetch_resumes_it_when_it_starts_again() {
    let work = tempfile::tempdir().unwrap();
    let seeder = Seeder::start(work.path(), 2, 16 << 20, 70);
    let (m, addr, seed_http) = (&seeder.manifest, &seeder.addr, &seeder.http);
    let total_chunks = seeder.chunks();

    let data = work.path().join("fetcher");
    let args = ["--no-auto-fetch", "--resume-every", "128K"];
    let (mut node, _, http) = common::procs::node_with_http(BIN, &data, Some(addr), &args);
    let http = http.trim_start_matches("http://").to_owned();
    let fetch = format!("/api/v1/videos/{}/fetch", m.video_id);
    let (status, body) = call(&http, "POST", &fetch);
    assert_eq!(status, 202, "{body}");
    let halfway = total_chunks / 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while served(seed_http) < halfway {
        assert!(Instant::now() < deadline, "no progress in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    node.0.kill().unwrap(); // SIGKILL
    node.0.wait().unwrap();
    let claimed = claimed_chunks(&data);
    assert!(claimed > 0, "nothing was saved to resume from");

    let (_node, _, http) = common::procs::node_with_http(BIN, &data, Some(addr), &args);
    let http = http.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = call(&http, "GET", &fetch);
        if status == 200 && body.contains(r#""state":"completed""#) {
            break;
        }
        assert!(!body.contains(r#""state":"failed""#), "{body}");
        assert!(
            Instant::now() < deadline,
            "the fetch was not resumed: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, videos) = call(&http, "GET", "/api/v1/videos");
    assert!(!videos.contains(r#""held":false"#), "{videos}");
    let served = served(seed_http);
    eprintln!("served {served} chunks for {total_chunks}; the record claimed {claimed}");
    assert!(
        served <= total_chunks + loss_per_kill(),
        "{served} chunks served for {total_chunks}: the restart began again (a record claimed {claimed})"
    );
}

/// A `vidswarm node` holding a video of `count` fragments of `size` bytes (from `seed`), in
/// chunks of [`CHUNK`].
struct Seeder {
    manifest: Manifest,
    fragments: Vec<Vec<u8>>,
    addr: String,
    /// Its HTTP API, `host:port`.
    http: String,
    _node: Proc,
}

impl Seeder {
    fn start(work: &Path, count: u64, size: usize, seed: u64) -> Self {
        let split = work.join("split");
        let fragments: Vec<Vec<u8>> = (0..count).map(|i| common::bytes(seed + i, size)).collect();
        let manifest = common::write_split_dir_in_chunks_of(&split, &fragments, CHUNK);
        let data = work.join("seed");
        add(BIN, &split, &data);
        let (node, addr, http) = common::procs::node_with_http(BIN, &data, None, &[]);
        let http = http.trim_start_matches("http://").to_owned();
        Self {
            manifest,
            fragments,
            addr,
            http,
            _node: node,
        }
    }

    fn chunks(&self) -> u64 {
        self.manifest
            .fragments
            .iter()
            .map(|f| f.chunks.len() as u64)
            .sum()
    }
}

/// Every fragment in the store's `fragments/` is whole: it hashes to its name, one the manifest
/// lists. Whatever else a kill left is in `partial/` or `tmp/`, which nothing reads as a fragment.
fn assert_no_half_written_fragment(store: &Path, m: &Manifest, kill: usize) {
    let Ok(entries) = std::fs::read_dir(store.join("fragments")) else {
        return; // killed before the store was made
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Hash::of(&bytes).to_string(),
            name,
            "after kill {kill}: {name} is not whole"
        );
        assert!(m.fragments.iter().any(|f| f.blake3.to_string() == name));
    }
}

/// The chunks the resume records in the data dir `store` claim now (bits in their bitmaps).
fn claimed_chunks(store: &Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(store.join("partial")) else {
        return 0;
    };
    let mut claimed = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "have") {
            let record = std::fs::read(&path).unwrap();
            // Header (16 + 32 + 8 + 4 bytes), bitmap, checksum (32 bytes).
            let bitmap = &record[60..record.len() - 32];
            claimed += bitmap.iter().map(|b| b.count_ones()).sum::<u32>();
        }
    }
    claimed
}

/// The seeder's `vidswarm_chunks_served_total` (polled often: a bare request, no client).
fn served(http: &str) -> u64 {
    let (_, text) = call(http, "GET", "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("vidswarm_chunks_served_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A bodiless HTTP/1.0 request to the API at `http` (host:port): the status and the body.
fn call(http: &str, method: &str, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(http).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {http}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn stderr(proc: &mut Proc) -> String {
    let _ = proc.0.kill();
    let mut err = String::new();
    if let Some(mut pipe) = proc.0.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    err
}
