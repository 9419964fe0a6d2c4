//! The splitter against hostile paths and interrupted runs: paths that look like options or
//! protocols, output dirs left behind by a killed split, another split writing the same dir, and
//! joins from dirs whose names hold newlines and quotes. (A real `kill -9` of a running split is in
//! `node/tests/cli_split.rs`, which has the binary.)

mod common;

use std::fs::File;
use std::path::Path;

use vidswarm_splitter::{join, split, JoinOptions, SplitError, SplitOptions, Tools};

fn opts(out: &Path, n: u32) -> SplitOptions {
    let mut o = SplitOptions::new(out);
    o.fragments = n;
    o
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_staging_dir_left_by_a_killed_split_does_not_stop_the_next() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // What `kill -9` leaves mid-cut: a staging dir of a process that is gone, half-written.
    let stale = out.join(".vidswarm-split-4194304");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("fragment_0.mp4"), b"half").unwrap();
    split(&common::video(2, 5, false), &opts(&out, 2)).unwrap();
    assert_eq!(
        files(&out),
        ["fragment_0.mp4", "fragment_1.mp4", "manifest.json"]
    );
}

#[test]
fn fragments_without_a_manifest_are_an_interrupted_split_and_are_replaced() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A kill between moving the fragments into place and writing the manifest.
    for i in 0..4 {
        std::fs::write(out.join(format!("fragment_{i}.mp4")), b"old").unwrap();
    }
    let report = split(&common::video(2, 5, false), &opts(&out, 2)).unwrap();
    assert_eq!(
        files(&out),
        ["fragment_0.mp4", "fragment_1.mp4", "manifest.json"]
    );
    vidswarm_splitter::verify_fragments(&out, &report.manifest).unwrap();

    // A finished split is the user's: replacing it needs --force.
    let err = split(&common::video(2, 5, false), &opts(&out, 2)).unwrap_err();
    assert!(matches!(err, SplitError::OutputNotEmpty(_)), "{err:?}");
}

#[test]
fn a_second_split_into_a_dir_being_written_is_refused() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Hold the dir's lock the way a running split does.
    let held = File::open(&out).unwrap();
    held.try_lock().unwrap();
    let err = split(&common::video(2, 5, false), &opts(&out, 2)).unwrap_err();
    assert!(matches!(err, SplitError::OutputBusy(_)), "{err:?}");
    assert!(err.to_string().contains("another split"), "{err}");
    drop(held);
    split(&common::video(2, 5, false), &opts(&out, 2)).unwrap();
}

#[test]
fn paths_with_newlines_quotes_spaces_dashes_and_percents_split_and_join() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let weird = work.path().join("-a b'c\nd\"e%d|concat:f");
    std::fs::create_dir_all(&weird).unwrap();
    let input = weird.join("-in put'%d.mp4");
    std::fs::copy(common::video(3, 5, true), &input).unwrap();
    let out = weird.join("parts 'x'\n%s");
    let report = split(&input, &opts(&out, 3)).unwrap();
    assert_eq!(
        files(&out),
        [
            "fragment_0.mp4",
            "fragment_1.mp4",
            "fragment_2.mp4",
            "manifest.json"
        ]
    );
    let joined = weird.join("joined 'y'\n.mp4");
    let done = join(
        &out,
        &JoinOptions {
            out: joined.clone(),
            force: false,
            tools: Tools::from_env(),
        },
    )
    .unwrap();
    assert_eq!(done.frame_count, report.manifest.source.frame_count);
    assert_eq!(common::stats(&joined).0, report.manifest.source.frame_count);
    // Nothing else was written beside the output: no concat list, no partial file.
    let mut beside = files(&weird);
    beside.retain(|n| {
        !n.starts_with("-in put") && !n.starts_with("parts") && !n.starts_with("joined")
    });
    assert!(beside.is_empty(), "{beside:?}");
}
