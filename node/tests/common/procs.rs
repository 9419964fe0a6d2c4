//! Helpers for tests that run `vidswarm` processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed when dropped (continued first, if it was stopped), so a failing test
/// leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            signal(&self.0, "CONT");
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Sends signal `name` (`TERM`, `STOP`, ...) to `child`.
pub fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

/// `vidswarm add SPLIT --data DATA` with the binary `bin`, which must succeed.
pub fn add(bin: &str, split: &Path, data: &Path) {
    let added = Command::new(bin)
        .arg("add")
        .arg(split)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
}

/// `dir` holds exactly a split dir of `count` fragments: `fragment_{i}.mp4` and `manifest.json`.
pub fn assert_split_dir_only(dir: &Path, count: u32) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..count).map(|i| format!("fragment_{i}.mp4")).collect();
    expected.push("manifest.json".into());
    expected.sort();
    assert_eq!(names, expected);
}

/// Starts `vidswarm node` (the binary `bin`) on 127.0.0.1 with its HTTP API on a free port and
/// `extra` arguments; returns it, its address and its HTTP API's URL.
pub fn node_with_http(
    bin: &str,
    data: &Path,
    bootstrap: Option<&str>,
    extra: &[&str],
) -> (Proc, String, String) {
    let mut cmd = Command::new(bin);
    cmd.args(["node", "--data"])
        .arg(data)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--announce-every", "1"])
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    cmd.args(extra);
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
    let http = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node prints its HTTP URL");
    assert!(http.starts_with("http://127.0.0.1:"), "{http}");
    (Proc(child), addr, http)
}
