//! Real processes: three `vidswarm node`s and a `vidswarm fetch --bootstrap` into an empty dir.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `vidswarm node` and returns it with the first address it prints.
fn node(data: &Path, bootstrap: Option<&str>) -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["node", "--data"])
        .arg(data)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--announce-every", "1"])
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd.spawn().expect("vidswarm node starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node prints its address");
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.contains("/p2p/"),
        "{addr}"
    );
    (Proc(child), addr)
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
    let added = Command::new(BIN)
        .args(["add"])
        .arg(&split)
        .arg("--data")
        .arg(&a_data)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");

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
