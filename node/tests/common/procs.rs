//! Helpers for tests that run `vidswarm` processes.

use std::path::Path;
use std::process::{Child, Command};

/// A child process killed when dropped (continued first, if it was stopped), so a failing test
/// leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
        let _ = self.0.kill();
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
