//! Test videos made with ffmpeg's synthetic sources, built once per test binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vidswarm_splitter::Tools;

/// True when ffmpeg and ffprobe can run. Outside CI a missing ffmpeg skips the test, loudly; in CI
/// (`CI` set) it fails, so nothing is silently skipped there.
pub fn ffmpeg_available() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffmpeg/ffprobe missing in CI: .ci/run must install them"
        );
        eprintln!("SKIPPED: ffmpeg/ffprobe not installed (sudo apt-get install -y ffmpeg)");
    }
    ok
}

/// Skips the calling test when ffmpeg is missing (see [`ffmpeg_available`]).
#[macro_export]
macro_rules! require_ffmpeg {
    () => {
        if !common::ffmpeg_available() {
            return;
        }
    };
}

fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// A test video: `seconds` of testsrc2 at 25 fps (160x120), a keyframe every `gop` frames, with a
/// sine tone when `audio`. Made once and shared by the tests of this binary.
pub fn video(seconds: u32, gop: u32, audio: bool) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = fixtures().join(format!("v_{seconds}s_gop{gop}_audio{audio}.mp4"));
    if path.exists() {
        return path;
    }
    let duration = seconds.to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=160x120:rate=25:duration={duration}"));
    if audio {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={duration}"))
            .args(["-c:a", "aac", "-shortest"]);
    }
    let gop = gop.to_string();
    cmd.args([
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
    ])
    .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
    .arg(&path);
    run(cmd);
    path
}

/// The clip issue #10 reported: 4.0 s of H.264 High at 29.97 fps (30000/1001), 176x144, B-frames,
/// a keyframe every 60 frames (2 in all), 120 frames, no audio.
pub fn ntsc_clip_with_bframes() -> PathBuf {
    let path = fixtures().join("ntsc_clip_with_bframes.mp4");
    if !path.exists() {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=176x144:rate=30000/1001")
            .args(["-frames:v", "120", "-c:v", "libx264", "-profile:v", "high"])
            .args(["-bf", "3", "-g", "60", "-pix_fmt", "yuv420p"])
            .arg(&path);
        run(cmd);
    }
    path
}

/// An audio-only file (no video stream).
pub fn audio_only() -> PathBuf {
    let path = fixtures().join("audio_only.m4a");
    if !path.exists() {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=2",
            "-c:a",
            "aac",
        ])
        .arg(&path);
        run(cmd);
    }
    path
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (video frames, video stream duration in seconds, has audio) of a file, via ffprobe.
pub fn stats(path: &Path) -> (u64, f64, bool) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .args([
            "stream=codec_type,nb_read_packets,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames = 0;
    let mut duration = 0.0;
    let mut audio = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f.first() {
            Some(&"video") => {
                duration = f[1].parse().unwrap_or(0.0);
                frames = f[2].parse().unwrap_or(0);
            }
            Some(&"audio") => audio = true,
            _ => {}
        }
    }
    (frames, duration, audio)
}

pub fn tools() -> Tools {
    Tools::from_env()
}

pub mod check;
pub mod sources;
