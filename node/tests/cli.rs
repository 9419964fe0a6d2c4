//! The `vidswarm` binary as a user runs it: exit codes, messages, and the demo end to end.

use std::process::Output;

use common::{have_ffmpeg, vidswarm, DEMO};

mod common;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_runs_end_to_end_and_says_what_it_did() {
    if !have_ffmpeg() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let keep = work.path().join("w");
    let out = vidswarm(&["demo", "--work", keep.to_str().unwrap()], work.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("mode: reencode: "), "{stdout}");
    assert!(stdout.contains("demo OK"), "{stdout}");
    // 750 frames in 10 fragments of 75.
    assert_eq!(stdout.matches("      75  ").count(), 10, "{stdout}");
    assert!(keep.join("joined.mp4").exists());
    // Five nodes, each ending with all ten fragments in its own store.
    for i in 0..5 {
        let dir = keep.join(format!("node{i}/fragments"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 10, "{dir:?}");
        assert!(stdout.contains(&format!(" node{i} ")), "{stdout}");
    }
    assert!(stderr.contains("announcement from node"), "{stderr}");
    assert!(stderr.contains("stored fragment"), "{stderr}");
}

#[test]
fn split_then_join_through_the_cli() {
    if !have_ffmpeg() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = vidswarm(
        &[
            "split",
            DEMO,
            "-n",
            "4",
            "--out",
            "parts",
            "--no-verify-decode",
        ],
        work.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("into 4 fragments"), "{stdout}");
    let out = vidswarm(&["join", "parts", "--out", "whole.mp4"], work.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("750 frames"), "{stdout}");

    // Import into a data dir twice: the second time finds everything already there.
    for _ in 0..2 {
        let out = vidswarm(&["add", "parts", "--data", "data"], work.path());
        assert!(out.status.success(), "{:?}", text(&out));
    }
}

#[test]
fn bad_input_exits_non_zero_with_a_readable_error() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "not a video").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["split", "missing.mp4", "--out", "o"], "missing.mp4"),
        (
            &["split", "notes.txt", "-n", "0", "--out", "o"],
            "at least 1",
        ),
        (&["split", "notes.txt", "--mode", "fast"], "unknown mode"),
        (&["join", "nowhere", "--out", "x.mp4"], "manifest.json"),
        (&["add", "nowhere", "--data", "d"], "nowhere"),
    ];
    for (args, needle) in cases {
        let out = vidswarm(args, work.path());
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
