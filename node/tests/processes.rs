//! Real processes: three `vidswarm node`s and a `vidswarm fetch --bootstrap` into an empty dir.

mod common;

use std::path::Path;
use std::process::Command;

use common::procs::{add, signal, Proc};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");

/// Starts `vidswarm node` and returns it with the first address it prints.
fn node(data: &Path, bootstrap: Option<&str>) -> (Proc, String) {
    let (proc, addr, _) = node_with_http(data, bootstrap, &[]);
    (proc, addr)
}

/// Starts `vidswarm node` with `extra` arguments; returns it, its address and its HTTP API's URL.
fn node_with_http(data: &Path, bootstrap: Option<&str>, extra: &[&str]) -> (Proc, String, String) {
    common::procs::node_with_http(BIN, data, bootstrap, extra)
}

#[test]
fn three_node_processes_and_a_fetch_process_move_the_bytes() {
    let work = tempfile::tempdir().unwrap();
    let split = work.path().join("split");
    let fragments: Vec<Vec<u8>> = (0..10)
        .map(|i| common::bytes(42 + i, 50_000 + i as usize * 3000))
        .collect();
    let m = common::write_split_dir(&split, &fragments);

    let a_data = work.path().join("a");
    add(BIN, &split, &a_data);

    let (_a, a_addr) = node(&a_data, None);
    let (_b, b_addr) = node(&work.path().join("b"), Some(&a_addr));
    let (_c, _) = node(&work.path().join("c"), Some(&b_addr));

    // The fetcher knows only b; it must find a (and c, once c has copies) through the swarm.
    let out = work.path().join("fetched");
    let fetched = Command::new(BIN)
        .args([
            "fetch",
            &m.video_id.to_string(),
            "--bootstrap",
            &b_addr,
            "--timeout",
            "30",
        ])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&fetched.stdout);
    let stderr = String::from_utf8_lossy(&fetched.stderr);
    assert!(
        fetched.status.success(),
        "fetch failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("fetched 10 fragment(s)"), "{stdout}");
    for (i, bytes) in fragments.iter().enumerate() {
        let got = std::fs::read(out.join(format!("fragment_{i}.mp4"))).unwrap();
        assert!(got == *bytes, "fragment {i} differs");
    }
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    assert_eq!(
        vidswarm_proto::Manifest::from_json(&manifest)
            .unwrap()
            .video_id,
        m.video_id
    );

    // The fetch's own store (inside the out dir) is gone; the out dir holds the split dir only.
    common::procs::assert_split_dir_only(&out, 10);

    // With --data on the same filesystem, each fragment is written once: the out dir's file is
    // the store's (the same inode), not a copy.
    let (data, linked) = (work.path().join("kept"), work.path().join("linked"));
    let fetched = Command::new(BIN)
        .args(["fetch", &m.video_id.to_string(), "--bootstrap", &a_addr])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&linked)
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    for f in &m.fragments {
        use std::os::unix::fs::MetadataExt;
        let stored = std::fs::metadata(data.join("fragments").join(f.blake3.to_string())).unwrap();
        let exported = std::fs::metadata(linked.join(&f.name)).unwrap();
        assert_eq!(stored.ino(), exported.ino(), "{} is a copy", f.name);
    }

    // A fetch of one fragment by name, into another dir.
    let one = work.path().join("one");
    let fetched = Command::new(BIN)
        .args(["fetch", &m.video_id.to_string(), "--bootstrap", &a_addr])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--fragment", "fragment_7.mp4", "--out"])
        .arg(&one)
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    assert_eq!(
        std::fs::read(one.join("fragment_7.mp4")).unwrap(),
        fragments[7]
    );
    assert!(!one.join("fragment_6.mp4").exists());
}

#[test]
fn fetch_of_an_unknown_video_exits_non_zero_with_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let (_a, a_addr) = node(&work.path().join("a"), None);
    let unknown = vidswarm_proto::Hash::of(b"nobody").to_string();
    let out = Command::new(BIN)
        .args(["fetch", &unknown, "--bootstrap", &a_addr, "--timeout", "2"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .arg("--out")
        .arg(work.path().join("o"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no peer gave the manifest"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_fetch_whose_only_bootstrap_address_is_unreachable_names_it_and_why() {
    let work = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    let unknown = vidswarm_proto::Hash::of(b"nobody").to_string();
    let dir = work.path().join("o");
    let out = Command::new(BIN)
        .args(["fetch", &unknown, "--bootstrap", &addr, "--timeout", "2"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(error.contains(&addr), "{stderr}");
    assert!(error.contains("refused"), "{stderr}");
    // Nothing was fetched, so nothing is kept to resume from.
    assert!(!dir.join(".vidswarm-store").exists());
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.mp4");

/// The CLI as a client of running nodes' HTTP APIs: `publish` splits the demo video and uploads
/// it to a (behind a bearer token), b fetches it from a over the swarm, `status` shows it, and
/// `fetch --node` has b fetch a part and downloads it, checked against the manifest.
#[test]
fn publish_status_and_fetch_through_the_http_api() {
    if !common::have_ffmpeg() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let token = ["--api-token", "t0ken"];
    let (_a, a_addr, a_http) = node_with_http(&work.path().join("a"), None, &token);
    let (_b, _, b_http) =
        node_with_http(&work.path().join("b"), Some(&a_addr), &["--no-auto-fetch"]);

    let (ok, _, stderr) = run(&["publish", DEMO, "--node", &a_http]);
    assert!(!ok, "publishing without the token is refused");
    assert!(stderr.contains("401"), "{stderr}");
    let (ok, stdout, stderr) = run(&["publish", DEMO, "--node", &a_http, "--api-token", "t0ken"]);
    assert!(ok, "publish failed:\n{stdout}\n{stderr}");
    let video = stdout
        .split_whitespace()
        .nth(2)
        .expect("publish names the video")
        .to_owned();
    assert_eq!(video.len(), 64, "{stdout}");

    let (ok, stdout, stderr) = run(&["status", "--node", &a_http]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("10/10 fragments held here"), "{stdout}");
    assert!(stdout.contains("peers: 1 connected"), "{stdout}");

    let out = work.path().join("out");
    let (ok, stdout, stderr) = run(&[
        "fetch",
        &video,
        "--node",
        &b_http,
        "--fragment",
        "2",
        "--fragment",
        "fragment_7.mp4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "fetch --node failed:\n{stdout}\n{stderr}");
    let manifest =
        vidswarm_proto::Manifest::from_json(&std::fs::read(out.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest.video_id.to_string(), video);
    for i in [2, 7] {
        let bytes = std::fs::read(out.join(format!("fragment_{i}.mp4"))).unwrap();
        assert_eq!(
            vidswarm_proto::Hash::of(&bytes),
            manifest.fragments[i].blake3
        );
    }
    assert!(!out.join("fragment_3.mp4").exists());
    let (ok, stdout, _) = run(&["status", "--node", &b_http]);
    assert!(ok);
    assert!(stdout.contains("2/10 fragments held here"), "{stdout}");

    // A node that does not answer: status fails (what a health check needs).
    let (ok, _, stderr) = run(&["status", "--quiet", "--node", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(stderr.contains("cannot reach the node"), "{stderr}");
}

/// SIGTERM (what `docker stop` sends) mid-fetch: the node stops within its bounds, exits 0, and
/// its data dir reopens with nothing to drop (no half-written fragment, no temp file).
#[test]
fn sigterm_mid_fetch_stops_the_node_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let split = work.path().join("split");
    let fragments: Vec<Vec<u8>> = (0..10).map(|i| common::bytes(77 + i, 12 << 20)).collect();
    let m = common::write_split_dir(&split, &fragments);
    let a_data = work.path().join("a");
    add(BIN, &split, &a_data);
    let (_a, a_addr) = node(&a_data, None);
    let b_data = work.path().join("b");
    let (mut b, _) = node(&b_data, Some(&a_addr));

    // Wait for the first fragment, then stop b while the rest are on their way.
    let held = |dir: &Path| std::fs::read_dir(dir.join("fragments")).map_or(0, |d| d.count());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while held(&b_data) == 0 {
        assert!(std::time::Instant::now() < deadline, "b fetched nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_stop = held(&b_data);
    signal(&b.0, "TERM");
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(status) = b.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        at_stop < m.fragments.len(),
        "the fetch had ended before the stop"
    );

    let (store, report) = vidswarm_node::store::Store::open(&b_data).expect("reopens");
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    assert!(store.fragment_hashes().unwrap().len() >= at_stop);
}
