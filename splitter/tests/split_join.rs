//! Splitting real (synthetic) videos and joining them back: the properties issue #3 asks for.

mod common;

use std::path::Path;

use vidswarm_proto::SplitMode;
use vidswarm_splitter::{
    join, read_manifest, split, verify_fragments, JoinOptions, ModeChoice, SplitOptions,
};

/// Splits `video` into `n`, then checks everything a user relies on, and returns the mode used.
fn split_and_check(video: &Path, n: u32, mode: ModeChoice) -> SplitMode {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("split");
    let mut opts = SplitOptions::new(&out);
    opts.fragments = n;
    opts.mode = mode;
    let report = split(video, &opts).unwrap_or_else(|e| panic!("split {video:?}: {e}"));
    let (src_frames, src_duration, src_audio) = common::stats(video);

    // Exactly N fragments and a manifest, nothing else left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("fragment_{i}.mp4")).collect();
    expected.push("manifest.json".into());
    expected.sort();
    assert_eq!(names, expected);

    // Each fragment decodes cleanly on its own, keeps the audio, and the frame counts add up.
    let tools = common::tools();
    let mut total = 0;
    for i in 0..n {
        let path = out.join(format!("fragment_{i}.mp4"));
        let errors = tools.decode_errors(&path).unwrap();
        assert!(errors.is_empty(), "fragment {i} decode errors: {errors}");
        let (frames, _, audio) = common::stats(&path);
        assert!(frames > 0);
        assert_eq!(audio, src_audio, "fragment {i} audio");
        assert_eq!(frames, report.manifest.fragments[i as usize].frame_count);
        total += frames;
    }
    assert_eq!(
        total, src_frames,
        "fragments' frames add up to the source's"
    );

    // Every fragment is a fragmented MP4 that starts with its init segment, as Media Source
    // Extensions want, and the manifest names the codecs (H.264, and AAC when there is audio).
    for i in 0..n {
        let bytes = std::fs::read(out.join(format!("fragment_{i}.mp4"))).unwrap();
        let init = vidswarm_proto::mp4::init_segment_len(&bytes)
            .unwrap_or_else(|| panic!("fragment {i} is not a fragmented MP4"));
        assert_eq!(
            vidswarm_proto::mp4::codecs(&bytes[..init]),
            report.manifest.codecs,
            "fragment {i} has other codecs than the manifest says"
        );
    }
    let codecs = report
        .manifest
        .codecs
        .clone()
        .expect("the manifest names its codecs");
    assert!(codecs.starts_with("avc1."), "codecs {codecs}");
    assert_eq!(codecs.contains("mp4a.40.2"), src_audio, "codecs {codecs}");

    // The manifest on disk verifies (id, structure, every fragment's hash).
    let manifest = read_manifest(&out).unwrap();
    assert_eq!(manifest, report.manifest);
    assert_eq!(manifest.source.frame_count, src_frames);
    verify_fragments(&out, &manifest).unwrap();

    // Roughly equal durations: no fragment more than 20% (plus a frame) off the ideal.
    let ideal = manifest.source.duration / f64::from(n);
    for f in &manifest.fragments {
        assert!(
            (f.duration - ideal).abs() <= ideal * 0.2 + 0.04 + 1e-6,
            "fragment {} lasts {} s, ideal {ideal}",
            f.index,
            f.duration
        );
    }

    // Join restores the frame count and duration (within one frame at 25 fps).
    let joined = work.path().join("joined.mp4");
    let mut jopts = JoinOptions {
        out: joined.clone(),
        force: false,
        tools,
    };
    join(&out, &jopts).unwrap();
    let (frames, duration, audio) = common::stats(&joined);
    assert_eq!(frames, src_frames);
    assert!(
        (duration - src_duration).abs() <= 0.04 + 1e-6,
        "joined {duration} s vs {src_duration} s"
    );
    assert_eq!(audio, src_audio);
    assert!(common::tools().decode_errors(&joined).unwrap().is_empty());
    jopts.force = true;
    join(&out, &jopts).unwrap();
    report.manifest.mode
}

#[test]
fn video_with_audio_splits_into_playable_fragments() {
    require_ffmpeg!();
    split_and_check(&common::video(8, 30, true), 10, ModeChoice::Auto);
}

#[test]
fn single_keyframe_video_is_reencoded_into_exact_fragments() {
    require_ffmpeg!();
    let video = common::video(6, 100_000, false);
    assert_eq!(
        split_and_check(&video, 10, ModeChoice::Auto),
        SplitMode::Reencode
    );
}

#[test]
fn dense_keyframes_split_losslessly_in_copy_mode() {
    require_ffmpeg!();
    let video = common::video(8, 5, true);
    assert_eq!(
        split_and_check(&video, 10, ModeChoice::Auto),
        SplitMode::Copy
    );
    assert_eq!(
        split_and_check(&video, 7, ModeChoice::Copy),
        SplitMode::Copy
    );
}

#[test]
fn reencode_can_be_forced_on_any_source() {
    require_ffmpeg!();
    let video = common::video(8, 5, true);
    assert_eq!(
        split_and_check(&video, 3, ModeChoice::Reencode),
        SplitMode::Reencode
    );
}

#[test]
fn one_fragment_is_the_whole_video() {
    require_ffmpeg!();
    split_and_check(&common::video(2, 25, true), 1, ModeChoice::Auto);
}

#[test]
fn auto_explains_its_choice() {
    require_ffmpeg!();
    let work = tempfile::tempdir().unwrap();
    let report = split(
        &common::video(6, 100_000, false),
        &SplitOptions::new(work.path().join("s")),
    )
    .unwrap();
    assert!(report.reason.starts_with("reencode: "), "{}", report.reason);
    assert!(report.reason.contains("keyframe"), "{}", report.reason);
}

#[test]
fn a_29_97_fps_clip_with_b_frames_reencodes_into_exactly_the_planned_fragments_not_one_fewer() {
    require_ffmpeg!();
    // Cut times used to sit halfway between two frames; ffmpeg rounded them to its encoder time
    // base (1001/30000 s) and forced the keyframe a frame early, so the segment muxer never saw a
    // keyframe at the cut and wrote 9 fragments. Cuts are frame numbers now.
    let clip = common::ntsc_clip_with_bframes();
    let (mode, _) = common::check::check_split(&clip, 10, ModeChoice::Auto, 1001.0 / 30000.0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, SplitMode::Reencode);
    let manifest = {
        let work = tempfile::tempdir().unwrap();
        let mut opts = SplitOptions::new(work.path().join("s"));
        opts.fragments = 10;
        split(&clip, &opts).unwrap().manifest
    };
    assert_eq!(manifest.source.frame_count, 120);
    assert!(manifest.fragments.iter().all(|f| f.frame_count == 12));
}
