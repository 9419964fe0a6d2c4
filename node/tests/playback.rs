//! Playback from a node that started empty, between processes: a desktop player's view (ffmpeg
//! on the HLS playlist) decodes the whole video, frame for frame, while the node fetches only
//! what the playlist asks for.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::node_with_http;

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.mp4");

fn get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "20", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ffmpeg_decodes_the_whole_video_from_the_playlist_of_a_node_that_started_empty() {
    if !common::have_ffmpeg() {
        eprintln!("SKIPPED: ffmpeg is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_seeder, seeder_addr, seeder_http) =
        node_with_http(BIN, &work.path().join("a"), None, &[]);
    let (_viewer, _, viewer_http) = node_with_http(
        BIN,
        &work.path().join("b"),
        Some(&seeder_addr),
        &["--no-auto-fetch"],
    );
    let published = Command::new(BIN)
        .args(["publish", DEMO, "--node", &seeder_http])
        .output()
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let stdout = String::from_utf8_lossy(&published.stdout);
    let video = stdout
        .split_whitespace()
        .nth(2)
        .expect("publish names the video")
        .to_owned();

    // The viewer hears of it (announcements), holding nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let videos = get(&format!("{viewer_http}/api/v1/videos")).unwrap_or_default();
        if videos.contains(&video) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer never heard of {video}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let playlist = format!("{viewer_http}/api/v1/videos/{video}/playlist.m3u8");
    let m3u8 = get(&playlist).expect("a playlist");
    assert!(m3u8.starts_with("#EXTM3U") && m3u8.contains("#EXT-X-MAP:URI=\"hls/init.mp4\""));
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &playlist, "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success(), "{decoded:?}");
    let errors = String::from_utf8_lossy(&decoded.stderr);
    assert!(errors.trim().is_empty(), "ffmpeg reported: {errors}");

    let probe = |url: &str| -> String {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                url,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // An HLS input lists its stream under its program too: the first line is enough.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().next().unwrap_or_default().trim().to_owned()
    };
    assert_eq!(
        probe(&playlist),
        probe(DEMO),
        "frames through the playlist vs the source"
    );
}
