//! `vidswarm split` and `join` as a user runs them on awkward paths, and a split killed with
//! SIGKILL at random points: the next split into the same dir must just work.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{have_ffmpeg, vidswarm, DEMO};

mod common;

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Video frames in `path` (ffprobe counts packets).
fn frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn relative_paths_that_look_like_options_or_protocols_are_read_as_files() {
    if !have_ffmpeg() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // A short clip, and files named like an option and like ffmpeg's concat protocol over it: read
    // as a protocol, "concat:v.mp4|v.mp4" would be the clip twice.
    let clip = dir.join("v.mp4");
    let cut = Command::new("ffmpeg")
        .args(["-v", "error", "-i", DEMO, "-t", "2", "-c", "copy"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(cut.success());
    let clip_frames = frames(&clip);
    std::fs::copy(DEMO, dir.join("-x.mp4")).unwrap();
    std::fs::copy(DEMO, dir.join("concat:v.mp4|v.mp4")).unwrap();
    let demo_frames = frames(Path::new(DEMO));
    assert_ne!(demo_frames, 2 * clip_frames);

    for (input, out) in [
        ("-x.mp4", "-parts%d"),
        ("concat:v.mp4|v.mp4", "concat:parts|x"),
    ] {
        ok(&vidswarm(
            &[
                "split",
                "--fragments",
                "3",
                &format!("--out={out}"),
                "--",
                input,
            ],
            dir,
        ));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(out).join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["source"]["frame_count"], demo_frames, "{input}");
        let joined = format!("-joined-{}.mp4", input.len());
        ok(&vidswarm(
            &["join", &format!("--out={joined}"), "--", out],
            dir,
        ));
        assert_eq!(frames(&dir.join(&joined)), demo_frames, "{input}");
    }
}

/// A small xorshift generator: random kill times without a dependency; the seed is printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// No ffmpeg or ffprobe started by a killed split is still running a moment later: an orphan
/// would go on writing into the staging dir the next split clears.
fn assert_no_tool_outlives_its_split(out: &Path, round: u32) {
    let needle = out.as_os_str().as_encoded_bytes();
    let running = || -> Vec<String> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .filter(|cmd| cmd.windows(needle.len()).any(|w| w == needle))
            .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = running();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: tools of the killed split still run: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_split_killed_at_random_points_never_stops_the_next_split_into_the_same_dir() {
    if !have_ffmpeg() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("parts");
    let split = || {
        Command::new(env!("CARGO_BIN_EXE_vidswarm"))
            .args(["split", DEMO, "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // How long a whole split takes here: kills land anywhere within it.
    let started = Instant::now();
    let mut whole = split();
    let status = whole.wait().unwrap();
    assert!(status.success());
    let span = started.elapsed().as_millis() as u64;
    std::fs::remove_dir_all(&out).unwrap();

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill times from seed {seed}, within {span} ms");
    let mut rng = Rng(seed);
    for round in 0..8 {
        let mut child = split();
        let at = Duration::from_millis(rng.below(span));
        std::thread::sleep(at);
        match child.try_wait().unwrap() {
            Some(status) => {
                let out_text = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "round {round}: the split after a kill failed: {}",
                    String::from_utf8_lossy(&out_text.stderr)
                );
                // It finished before the kill: start the next round from scratch.
                std::fs::remove_dir_all(&out).unwrap();
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                eprintln!("round {round}: killed at {} ms", at.as_millis());
                assert_no_tool_outlives_its_split(&out, round);
                // Whatever a kill leaves, a manifest that is there is whole.
                if out.join("manifest.json").exists() {
                    let m = vidswarm_splitter::read_manifest(&out).unwrap();
                    vidswarm_splitter::verify_fragments(&out, &m).unwrap();
                }
            }
        }
    }
    let last = split().wait_with_output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    common::procs::assert_split_dir_only(&out, 10);
}
