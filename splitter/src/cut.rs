//! The one ffmpeg run that cuts a planned split, and what to say when ffmpeg did not cut where the
//! plan said.
//!
//! Cuts are handed to ffmpeg as frame numbers, never as times, so the count is right by
//! construction: `-segment_frames K1,K2,..` makes the segment muxer start a new file at the first
//! keyframe packet once K packets of the video stream have gone by, and a re-encode forces those
//! keyframes with `-force_key_frames expr:eq(n,K1)+eq(n,K2)+..`, where `n` counts the frames fed to
//! the encoder (one per source frame: `-fps_mode passthrough`). Both count the same frames, so no
//! time base, rounding, start offset or B-frame delay can move a cut. In decode order a cut frame
//! is packet K: for a copy, the planner takes only closed-GOP keyframes (see
//! [`crate::probe::FrameTime::key`]); for a re-encode, x264 makes each forced frame an IDR frame,
//! which nothing before it in presentation order follows in decode order.

use std::ffi::OsString;
use std::path::Path;

use vidswarm_proto::SplitMode;

use crate::plan::{Plan, MP4_AUDIO};
use crate::probe::Probe;
use crate::tools::{file_url, segment_pattern};
use crate::{SplitError, Tools};

/// The name pattern ffmpeg writes fragments under (the same as [`vidswarm_proto::fragment_name`]).
const FRAGMENT_PATTERN: &str = "fragment_%d.mp4";

/// Runs ffmpeg over `source`, writing the plan's fragments into `dir`.
pub(crate) fn run_ffmpeg(
    source: &Probe,
    plan: &Plan,
    dir: &Path,
    tools: &Tools,
) -> Result<(), SplitError> {
    tools.ffmpeg(ffmpeg_args(source, plan, dir))?;
    Ok(())
}

fn ffmpeg_args(source: &Probe, plan: &Plan, dir: &Path) -> Vec<OsString> {
    let cuts = plan.cut_frames();
    let mut args: Vec<OsString> = vec!["-i".into(), file_url(&source.path)];
    args.extend(["-map", "0:v:0", "-map", "0:a:0?"].map(Into::into));
    let audio_copy = source
        .audio_codec
        .as_deref()
        .is_some_and(|a| MP4_AUDIO.contains(&a));
    match plan.mode {
        SplitMode::Copy => args.extend(["-c", "copy"].map(Into::into)),
        // The planner never chooses Upload (that is a loose fragment a node was given as is).
        SplitMode::Reencode | SplitMode::Upload => {
            args.extend(
                [
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "20",
                    // Players expect 4:2:0 with even sides; x264 refuses odd sides in 4:2:0.
                    "-pix_fmt",
                    "yuv420p",
                    "-vf",
                    "scale=trunc(iw/2)*2:trunc(ih/2)*2",
                    // One output frame per input frame: the frame counts must add up, and `n`
                    // below must count source frames.
                    "-fps_mode",
                    "passthrough",
                    // The source's own time base: a variable frame rate keeps every timestamp
                    // instead of rounding two frames onto one tick of 1/frame rate.
                    "-enc_time_base:v",
                    "-1",
                    "-c:a",
                    if audio_copy { "copy" } else { "aac" },
                ]
                .map(Into::into),
            );
            if !cuts.is_empty() {
                args.extend(["-force_key_frames".into(), keyframe_expr(&cuts).into()]);
            }
        }
    }
    args.extend(
        [
            "-f",
            "segment",
            "-segment_format",
            "mp4",
            // Fragmented MP4 (an empty moov, then a moof and mdat per keyframe): still a file any
            // player opens on its own, and what Media Source Extensions take, so a browser can
            // play fragments one after another as they arrive (docs/playback.md).
            "-segment_format_options",
            FMP4_FLAGS,
            "-reset_timestamps",
            "1",
            // Without this the first fragment starts late by the B-frame delay, and the join drifts.
            "-avoid_negative_ts",
            "disabled",
        ]
        .map(Into::into),
    );
    if !cuts.is_empty() {
        args.extend(["-segment_frames".into(), frame_list(&cuts).into()]);
    }
    args.push(segment_pattern(dir, FRAGMENT_PATTERN));
    args
}

/// The mp4 muxer's flags for fragmented MP4 whose every fragment starts with its init segment.
pub const FMP4_FLAGS: &str = "movflags=+frag_keyframe+empty_moov+default_base_moof";

/// `expr:eq(n,K1)+eq(n,K2)+..`: true exactly on the cut frames. The sum is nested as a balanced
/// tree of parentheses: ffmpeg's expression parser refuses a flat sum of more than about 100 terms,
/// and a tree of 1000 cuts nests only 10 deep.
fn keyframe_expr(cuts: &[usize]) -> String {
    fn sum(cuts: &[usize]) -> String {
        match cuts {
            [k] => format!("eq(n,{k})"),
            _ => {
                let (left, right) = cuts.split_at(cuts.len() / 2);
                format!("({}+{})", sum(left), sum(right))
            }
        }
    }
    format!("expr:{}", sum(cuts))
}

fn frame_list(cuts: &[usize]) -> String {
    cuts.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Which planned cuts the written fragments lack, as a sentence: `written` holds each written
/// fragment's video frame count, in order.
pub(crate) fn describe_lost_cuts(source: &Probe, plan: &Plan, written: &[u64]) -> String {
    let mut boundaries = Vec::with_capacity(written.len());
    let mut at = 0u64;
    for frames in &written[..written.len().saturating_sub(1)] {
        at += frames;
        boundaries.push(at);
    }
    let t0 = source.frames.first().map_or(0.0, |f| f.pts);
    let mut said: Vec<String> = Vec::new();
    for (i, &cut) in plan.cut_frames().iter().enumerate() {
        if !boundaries.contains(&(cut as u64)) {
            let t = source.frames.get(cut).map_or(0.0, |f| f.pts - t0);
            said.push(format!(
                "the cut before fragment {} (frame {cut}, {t:.3} s) was not made",
                i + 1
            ));
        }
    }
    let planned: Vec<u64> = plan.cut_frames().iter().map(|&c| c as u64).collect();
    for b in boundaries.iter().filter(|b| !planned.contains(b)) {
        said.push(format!("ffmpeg cut at frame {b}, which was not planned"));
    }
    if said.is_empty() {
        "ffmpeg's fragments do not match the plan".into()
    } else {
        said.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlannedFragment;
    use crate::probe::FrameTime;

    fn source(frames: usize) -> Probe {
        Probe {
            path: "/in.mp4".into(),
            size: 0,
            format_name: "mp4".into(),
            video_codec: "h264".into(),
            audio_codec: None,
            frames: (0..frames)
                .map(|i| FrameTime {
                    pts: i as f64 / 30.0,
                    key: i == 0,
                })
                .collect(),
            duration: frames as f64 / 30.0,
            frame_step: 1.0 / 30.0,
            audio_packet: None,
            discarded: 0,
        }
    }

    fn plan(mode: SplitMode, firsts: &[usize], total: usize) -> Plan {
        let ends: Vec<usize> = firsts[1..].iter().copied().chain([total]).collect();
        Plan {
            mode,
            reason: String::new(),
            fragments: firsts
                .iter()
                .zip(&ends)
                .map(|(&first, &end)| PlannedFragment {
                    first_frame: first,
                    frames: (end - first) as u64,
                    start: first as f64 / 30.0,
                    duration: (end - first) as f64 / 30.0,
                })
                .collect(),
        }
    }

    fn arg_after(args: &[OsString], flag: &str) -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        Some(args[i + 1].to_string_lossy().into_owned())
    }

    #[test]
    fn a_reencode_forces_keyframes_and_cuts_on_the_same_frame_numbers() {
        let p = plan(SplitMode::Reencode, &[0, 15, 30, 45], 60);
        let args = ffmpeg_args(&source(60), &p, Path::new("/out"));
        assert_eq!(
            arg_after(&args, "-force_key_frames").unwrap(),
            "expr:(eq(n,15)+(eq(n,30)+eq(n,45)))"
        );
        assert_eq!(arg_after(&args, "-segment_frames").unwrap(), "15,30,45");
        assert!(arg_after(&args, "-segment_times").is_none());
        assert_eq!(arg_after(&args, "-i").unwrap(), "file:/in.mp4");
        assert_eq!(
            args.last().unwrap(),
            &OsString::from("file:/out/fragment_%d.mp4")
        );
    }

    #[test]
    fn the_keyframe_expression_nests_shallowly_for_the_most_fragments() {
        let cuts: Vec<usize> = (1..1000).collect();
        let expr = keyframe_expr(&cuts);
        let (mut depth, mut deepest) = (0i32, 0i32);
        for c in expr.chars() {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            deepest = deepest.max(depth);
        }
        assert_eq!(depth, 0);
        // Ten levels of sums (2^10 >= 999), plus one for each eq( ).
        assert!(deepest <= 11, "{deepest}");
        assert_eq!(expr.matches("eq(n,").count(), 999);
        assert_eq!(keyframe_expr(&[7]), "expr:eq(n,7)");
    }

    #[test]
    fn a_copy_cuts_on_frame_numbers_without_forcing_anything() {
        let p = plan(SplitMode::Copy, &[0, 30], 60);
        let args = ffmpeg_args(&source(60), &p, Path::new("/out"));
        assert!(arg_after(&args, "-force_key_frames").is_none());
        assert_eq!(arg_after(&args, "-segment_frames").unwrap(), "30");
    }

    #[test]
    fn one_fragment_has_no_cut_arguments() {
        let p = plan(SplitMode::Reencode, &[0], 60);
        let args = ffmpeg_args(&source(60), &p, Path::new("/out"));
        assert!(arg_after(&args, "-force_key_frames").is_none());
        assert!(arg_after(&args, "-segment_frames").is_none());
    }

    #[test]
    fn a_lost_cut_is_named_with_its_frame_and_time() {
        let p = plan(SplitMode::Reencode, &[0, 15, 30, 45], 60);
        // ffmpeg merged fragments 1 and 2: the cut at frame 30 is missing.
        let said = describe_lost_cuts(&source(60), &p, &[15, 30, 15]);
        assert_eq!(
            said,
            "the cut before fragment 2 (frame 30, 1.000 s) was not made"
        );
        let moved = describe_lost_cuts(&source(60), &p, &[15, 14, 16, 15]);
        assert!(moved.contains("frame 30"), "{moved}");
        assert!(
            moved.contains("ffmpeg cut at frame 29, which was not planned"),
            "{moved}"
        );
    }
}
