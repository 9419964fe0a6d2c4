//! Bad input gets a clear error, never a panic: each case from issue #3.

mod common;

use std::path::PathBuf;

use vidswarm_splitter::{
    join, split, JoinError, JoinOptions, ModeChoice, SplitError, SplitOptions, ToolError, Tools,
};

fn opts(out: PathBuf, n: u32) -> SplitOptions {
    let mut o = SplitOptions::new(out);
    o.fragments = n;
    o
}

#[test]
fn missing_ffmpeg_says_how_to_install_it() {
    let work = tempfile::tempdir().unwrap();
    let video = work.path().join("v.mp4");
    std::fs::write(&video, b"whatever").unwrap();
    let mut o = opts(work.path().join("out"), 3);
    o.tools = Tools {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ffprobe: "/nonexistent/ffprobe".into(),
    };
    let err = split(&video, &o).unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::Tool(ToolError::Missing {
                tool: "ffprobe",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("apt-get install -y ffmpeg"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_video_is_named_as_such() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let text = work.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let err = split(&text, &opts(work.path().join("out"), 3)).unwrap_err();
    assert!(matches!(err, SplitError::NotAVideo { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.mp4"));
}

#[test]
fn a_missing_input_file_is_an_io_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let err = split(
        &work.path().join("nope.mp4"),
        &opts(work.path().join("o"), 3),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope.mp4"), "{err}");
}

#[test]
fn audio_without_video_is_refused() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let err = split(&common::audio_only(), &opts(work.path().join("out"), 3)).unwrap_err();
    assert!(matches!(err, SplitError::NoVideoStream { .. }), "{err:?}");
}

#[test]
fn zero_fragments_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let err = split(
        &work.path().join("x.mp4"),
        &opts(work.path().join("out"), 0),
    )
    .unwrap_err();
    assert!(matches!(err, SplitError::ZeroFragments), "{err:?}");
}

#[test]
fn more_fragments_than_frames_is_refused() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    // 1 s at 25 fps: 25 frames.
    let err = split(
        &common::video(1, 25, false),
        &opts(work.path().join("o"), 26),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::TooManyFragments {
                fragments: 26,
                frames: 25
            }
        ),
        "{err:?}"
    );
    assert!(
        !work.path().join("o").exists(),
        "nothing written on refusal"
    );
}

#[test]
fn non_empty_output_dir_needs_force() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let video = common::video(2, 5, false);
    let err = split(&video, &opts(out.clone(), 2)).unwrap_err();
    assert!(matches!(err, SplitError::OutputNotEmpty(_)), "{err:?}");
    assert!(err.to_string().contains("--force"));

    let mut forced = opts(out.clone(), 2);
    forced.force = true;
    split(&video, &forced).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    assert!(out.join("fragment_1.mp4").exists());

    // Re-splitting into fewer fragments leaves no stale fragment behind.
    forced.fragments = 1;
    split(&video, &forced).unwrap();
    assert!(!out.join("fragment_1.mp4").exists());
}

#[test]
fn copy_mode_that_cannot_give_n_fragments_fails_instead_of_giving_fewer() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let mut o = opts(work.path().join("out"), 10);
    o.mode = ModeChoice::Copy;
    let err = split(&common::video(4, 100_000, false), &o).unwrap_err();
    assert!(
        matches!(err, SplitError::CopyImpossible { fragments: 10, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--mode reencode"), "{err}");
}

fn split_for_join(dir: &std::path::Path) {
    let mut o = opts(dir.to_owned(), 4);
    o.verify_decode = false;
    split(&common::video(4, 5, true), &o).unwrap();
}

#[test]
fn join_refuses_a_tampered_fragment_and_names_it() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("split");
    split_for_join(&dir);
    let victim = dir.join("fragment_2.mp4");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();

    let out = work.path().join("joined.mp4");
    let jo = JoinOptions {
        out: out.clone(),
        force: false,
        tools: Tools::from_env(),
    };
    let err = join(&dir, &jo).unwrap_err();
    match &err {
        JoinError::CorruptFragment { name, .. } => assert_eq!(name, "fragment_2.mp4"),
        other => panic!("expected CorruptFragment, got {other:?}"),
    }
    assert!(!out.exists());

    std::fs::remove_file(dir.join("fragment_1.mp4")).unwrap();
    let err = join(&dir, &jo).unwrap_err();
    assert!(
        matches!(err, JoinError::MissingFragment { ref name, .. } if name == "fragment_1.mp4"),
        "{err:?}"
    );
}

#[test]
fn join_refuses_a_tampered_manifest_and_an_existing_output() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("split");
    split_for_join(&dir);
    let out = work.path().join("joined.mp4");
    std::fs::write(&out, "already here").unwrap();
    let jo = JoinOptions {
        out: out.clone(),
        force: false,
        tools: Tools::from_env(),
    };
    assert!(matches!(
        join(&dir, &jo).unwrap_err(),
        JoinError::OutputExists(_)
    ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "already here");

    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"frame_count\": ", "\"frame_count\": 1", 1),
    )
    .unwrap();
    let err = join(&dir, &jo).unwrap_err();
    assert!(matches!(err, JoinError::BadManifest { .. }), "{err:?}");
}
