//! Peers that come and go, between real processes on 127.0.0.1: fetches one after another (each
//! fetcher seeds a moment, then leaves, its DHT records staying behind), a full holder killed with
//! SIGKILL, and a holder that stops answering (SIGSTOP: its port still accepts connections that
//! never complete a handshake). No later fetch may wait on the peers that left.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::procs::{signal, Proc};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vidswarm_proto::{Manifest, SourceInfo, SplitMode, DEFAULT_CHUNK_SIZE};

/// The binary under test; `VIDSWARM_BIN` runs the same tests against another build (an earlier
/// commit's, to see them fail there).
fn bin() -> String {
    std::env::var("VIDSWARM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vidswarm").into())
}

/// Starts `vidswarm node` on `data`; returns it and its address.
fn node(data: &Path, bootstrap: Option<&str>, extra: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["node", "--data"])
        .arg(data)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--announce-every", "1"])
        .args(["--no-http"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(match std::env::var_os("CHURN_DEBUG") {
            Some(_) => Stdio::from(std::fs::File::create(data.with_extension("log")).unwrap()),
            None => Stdio::null(),
        })
        .env(
            "RUST_LOG",
            std::env::var("CHURN_LOG").unwrap_or_else(|_| "warn".into()),
        );
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd.spawn().expect("vidswarm node starts");
    let stdout = child.stdout.take().expect("piped");
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .next()
        .expect("the node prints its address");
    (Proc(child), addr)
}

fn held(data: &Path) -> usize {
    std::fs::read_dir(data.join("fragments")).map_or(0, |d| d.count())
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `vidswarm fetch` into `out` (seeding `seed_after` s after); returns how long it took
/// from start to the fetched line, and checks every byte.
fn fetch(m: &Manifest, split: &Path, bootstrap: &str, out: &Path, seed_after: u64) -> Duration {
    fetch_meanwhile(m, split, bootstrap, out, seed_after, || {})
}

/// [`fetch`], running `meanwhile` on this thread while the fetch runs.
fn fetch_meanwhile(
    m: &Manifest,
    split: &Path,
    bootstrap: &str,
    out: &Path,
    seed_after: u64,
    meanwhile: impl FnOnce(),
) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(["fetch", &m.video_id.to_string(), "--bootstrap", bootstrap])
        // TCP and QUIC, as by default: a departed peer's QUIC address is what a dial waits on
        // (UDP has no reset), TCP on loopback is refused at once.
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
        ])
        .args(["--timeout", "30"])
        .args(["--seed-after", &seed_after.to_string(), "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env(
            "RUST_LOG",
            std::env::var("CHURN_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("fetched ") {
                if std::env::var_os("CHURN_DEBUG").is_some() {
                    eprintln!("{line}");
                }
                let _ = tx.send(Instant::now());
            }
        }
    });
    meanwhile();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "fetch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fetched = rx.recv().expect("the fetch printed its result");
    if std::env::var_os("CHURN_DEBUG").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    for f in &m.fragments {
        let got = std::fs::read(out.join(&f.name)).unwrap();
        assert!(
            got == std::fs::read(split.join(&f.name)).unwrap(),
            "{} differs",
            f.name
        );
    }
    fetched - started
}

/// A split dir of 10 fragments of about 2 MiB, in chunks of the default size (as the splitter
/// writes them).
fn split(work: &Path, seed: u64) -> (PathBuf, Manifest) {
    split_of(work, seed, 2 << 20)
}

fn split_of(work: &Path, seed: u64, size: usize) -> (PathBuf, Manifest) {
    let dir = work.join("split");
    std::fs::create_dir_all(&dir).unwrap();
    let mut infos = Vec::new();
    for i in 0..10u32 {
        let data = common::bytes(seed + u64::from(i), size + i as usize * 999);
        std::fs::write(dir.join(vidswarm_proto::fragment_name(i)), &data).unwrap();
        infos.push(common::info(i, &data, DEFAULT_CHUNK_SIZE));
    }
    let source = SourceInfo {
        name: "churn.mp4".into(),
        size: infos.iter().map(|f| f.size).sum(),
        duration: 10.0,
        frame_count: 250,
    };
    let m = Manifest::new(source, SplitMode::Copy, DEFAULT_CHUNK_SIZE, infos);
    std::fs::write(dir.join("manifest.json"), m.to_json_pretty()).unwrap();
    (dir, m)
}

fn add(split: &Path, data: &Path) {
    common::procs::add(&bin(), split, data);
}

/// Within 1.5 times the first fetch, plus a constant for process start-up noise.
fn assert_as_fast(label: &str, took: Duration, first: Duration) {
    let bound = first.mul_f64(1.5) + Duration::from_secs(1);
    assert!(
        took <= bound,
        "{label} took {took:?}, the first {first:?} (bound {bound:?})"
    );
}

#[test]
fn fetches_after_churn_run_as_fast_as_the_first() {
    let work = tempfile::tempdir().unwrap();
    let (split, m) = split(work.path(), 300);
    let seed_data = work.path().join("seed");
    add(&split, &seed_data);
    let (_seeder, seed_addr) = node(&seed_data, None, &["--no-auto-fetch"]);

    // Each fetcher seeds for a second (so it provides, announces and serves), then exits: its
    // provider records and the others' memory of it outlive it.
    let mut times = Vec::new();
    for i in 0..5 {
        let took = fetch(
            &m,
            &split,
            &seed_addr,
            &work.path().join(format!("got{i}")),
            1,
        );
        eprintln!("fetch {i}: {took:?}");
        times.push(took);
    }
    // A node that held the whole video, killed without a goodbye.
    let full_data = work.path().join("full");
    let (full, _) = node(&full_data, Some(&seed_addr), &[]);
    wait_for(
        "the full node holds the video",
        Duration::from_secs(60),
        || held(&full_data) == m.fragments.len(),
    );
    std::thread::sleep(Duration::from_millis(1500)); // It announces and provides.
    drop(full); // SIGKILL
    for i in 5..7 {
        let took = fetch(
            &m,
            &split,
            &seed_addr,
            &work.path().join(format!("got{i}")),
            0,
        );
        eprintln!("fetch {i} (after the SIGKILL): {took:?}");
        times.push(took);
    }
    if std::env::var_os("CHURN_DEBUG").is_some() {
        let _ = std::fs::copy(seed_data.with_extension("log"), "/tmp/churn-seed.log");
    }
    for (i, took) in times.iter().enumerate().skip(1) {
        assert_as_fast(&format!("fetch {i}"), *took, times[0]);
    }
}

#[test]
fn a_holder_that_stops_answering_costs_the_fetch_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (split, m) = split(work.path(), 400);
    let seed_data = work.path().join("seed");
    add(&split, &seed_data);
    let (_seeder, seed_addr) = node(&seed_data, None, &["--no-auto-fetch"]);
    let first = fetch(&m, &split, &seed_addr, &work.path().join("first"), 0);

    // A holder of everything, then frozen: its connections stay open and its port still takes
    // TCP connections, but nothing answers, as behind a link that drops every packet.
    let hung_data = work.path().join("hung");
    let (hung, _) = node(&hung_data, Some(&seed_addr), &[]);
    wait_for(
        "the holder holds the video",
        Duration::from_secs(60),
        || held(&hung_data) == m.fragments.len(),
    );
    std::thread::sleep(Duration::from_millis(1500)); // It announces and provides.
    signal(&hung.0, "STOP");
    for i in 0..2 {
        let took = fetch(
            &m,
            &split,
            &seed_addr,
            &work.path().join(format!("got{i}")),
            0,
        );
        eprintln!("fetch {i} with a hung holder: {took:?} (first {first:?})");
        assert_as_fast(&format!("fetch {i}"), took, first);
    }
}

#[test]
fn a_provider_killed_mid_transfer_costs_the_fetch_no_timeout() {
    let work = tempfile::tempdir().unwrap();
    let (split, m) = split_of(work.path(), 500, 6 << 20);
    let seed_data = work.path().join("seed");
    add(&split, &seed_data);
    let (_seeder, seed_addr) = node(&seed_data, None, &["--no-auto-fetch"]);
    let other_data = work.path().join("other");
    add(&split, &other_data);
    let (other, _) = node(&other_data, Some(&seed_addr), &["--no-auto-fetch"]);
    std::thread::sleep(Duration::from_millis(1500)); // Both announce and provide.
    let first = fetch(&m, &split, &seed_addr, &work.path().join("first"), 0);

    // Again, and the other holder dies once the fetch has a fragment from it.
    let out = work.path().join("again");
    let mut other = Some(other);
    let took = fetch_meanwhile(&m, &split, &seed_addr, &out, 0, || {
        wait_for("a first fragment", Duration::from_secs(60), || {
            held(&out.join(".vidswarm-store")) > 0
        });
        drop(other.take()); // SIGKILL, mid-transfer
    });
    eprintln!("fetch with a holder killed mid-transfer: {took:?} (first {first:?})");
    assert_as_fast("the fetch", took, first);
}
