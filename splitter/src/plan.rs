//! Where to cut. Pure functions over the probed frame list, so every rule is unit-tested without
//! ffmpeg.
//!
//! The ideal cuts sit at `i * duration / n`. A copy split can only cut at the source's keyframes, so
//! copy is chosen when every ideal cut has its own keyframe within [`COPY_TOLERANCE`] of a
//! fragment's ideal length; otherwise the video is re-encoded with keyframes forced at the frames
//! nearest the ideal cuts. Cuts are frame indices (and handed to ffmpeg as such, see
//! [`crate::cut`]), so each fragment's frame count is known before ffmpeg runs, and checked after.

use vidswarm_proto::{SplitMode, MAX_FRAGMENTS};

use crate::probe::FrameTime;

/// How far (as a share of one fragment's ideal duration) a keyframe may sit from an ideal cut for
/// copy mode to count as "roughly equal duration".
pub const COPY_TOLERANCE: f64 = 0.2;

/// Video codecs an MP4 can carry as they are.
const MP4_VIDEO: &[&str] = &["h264", "hevc", "av1", "vp9", "mpeg4"];
/// Audio codecs an MP4 can carry as they are.
pub(crate) const MP4_AUDIO: &[&str] = &["aac", "mp3", "opus", "ac3", "eac3", "alac"];

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    /// Copy when the keyframes allow, else re-encode.
    #[default]
    Auto,
    Copy,
    Reencode,
}

impl std::str::FromStr for ModeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "copy" => Ok(Self::Copy),
            "reencode" => Ok(Self::Reencode),
            other => Err(format!(
                "unknown mode {other:?}: expected copy, reencode or auto"
            )),
        }
    }
}

/// A fragment as planned: its first frame and how many frames it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedFragment {
    pub first_frame: usize,
    pub frames: u64,
    /// Seconds, relative to the source's start.
    pub start: f64,
    pub duration: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: SplitMode,
    /// Why this mode, in a sentence for the user.
    pub reason: String,
    pub fragments: Vec<PlannedFragment>,
}

impl Plan {
    /// The first frame (presentation order) of every fragment but the first.
    pub fn cut_frames(&self) -> Vec<usize> {
        self.fragments[1..].iter().map(|f| f.first_frame).collect()
    }
}

/// Why copy mode is impossible for this source and `n`, or the keyframe cuts that make it possible.
pub fn copy_cuts(frames: &[FrameTime], duration: f64, n: usize) -> Result<Vec<usize>, String> {
    let ideal = duration / n as f64;
    let tolerance = ideal * COPY_TOLERANCE;
    let t0 = frames[0].pts;
    let keys: Vec<usize> = (1..frames.len()).filter(|&i| frames[i].key).collect();
    let mut cuts = Vec::with_capacity(n - 1);
    for i in 1..n {
        let target = t0 + ideal * i as f64;
        let after = cuts.last().copied().unwrap_or(0);
        let nearest = keys
            .iter()
            .copied()
            .filter(|&k| k > after)
            .min_by(|&a, &b| {
                (frames[a].pts - target)
                    .abs()
                    .total_cmp(&(frames[b].pts - target).abs())
            });
        // The frame nearest the cut is as close as any split can get, whatever the tolerance.
        let best = (frames[nearest_frame(frames, target)].pts - target).abs();
        let close = |k: usize| (frames[k].pts - target).abs() <= tolerance.max(best) + 1e-9;
        match nearest {
            Some(k) if close(k) => cuts.push(k),
            Some(k) => {
                return Err(format!(
                    "no keyframe within {tolerance:.2} s of the cut at {target:.2} s \
                     (nearest at {:.2} s; the source has {} keyframe(s) a stream copy can cut at \
                     in {duration:.2} s)",
                    frames[k].pts,
                    keys.len() + 1
                ))
            }
            None => {
                return Err(format!(
                "the source has only {} keyframe(s) a stream copy can cut at in {duration:.2} s, \
                 too few for {n} fragments",
                keys.len() + 1
            ))
            }
        }
    }
    Ok(cuts)
}

/// The frames nearest the ideal cuts, leaving every fragment at least one frame.
pub fn reencode_cuts(frames: &[FrameTime], duration: f64, n: usize) -> Vec<usize> {
    let ideal = duration / n as f64;
    let t0 = frames[0].pts;
    let mut cuts: Vec<usize> = Vec::with_capacity(n - 1);
    for i in 1..n {
        let candidate = nearest_frame(frames, t0 + ideal * i as f64);
        let lowest = cuts.last().map_or(1, |c| c + 1);
        let highest = frames.len() - (n - i);
        cuts.push(candidate.clamp(lowest, highest));
    }
    cuts
}

/// The frame whose time is nearest `target`.
fn nearest_frame(frames: &[FrameTime], target: f64) -> usize {
    let after = frames.partition_point(|f| f.pts < target);
    if after > 0
        && (after == frames.len() || target - frames[after - 1].pts < frames[after].pts - target)
    {
        after - 1
    } else {
        after
    }
}

/// Audio is cut with the video, in whole packets (an AAC packet lasts 21-23 ms, MP3 24-26 ms), so
/// a fragment keeps its audio only when it spans whole packets: planned fragments last at least this
/// many audio packets.
pub const MIN_AUDIO_PACKETS_PER_FRAGMENT: f64 = 2.0;

/// The most fragments a source of `frames` frames over `duration` seconds can be cut into: one
/// frame each, at most [`MAX_FRAGMENTS`], and with audio few enough that even a fragment a frame
/// shorter than the ideal length spans [`MIN_AUDIO_PACKETS_PER_FRAGMENT`] audio packets.
pub fn max_fragments(
    frames: usize,
    duration: f64,
    frame_step: f64,
    audio_packet: Option<f64>,
) -> u32 {
    let by_frames = frames.min(MAX_FRAGMENTS as usize) as u32;
    match audio_packet {
        Some(a) => {
            let shortest = MIN_AUDIO_PACKETS_PER_FRAGMENT * a + frame_step;
            let by_audio = (duration / shortest).floor().max(1.0) as u32;
            by_frames.min(by_audio)
        }
        None => by_frames,
    }
}

/// The shortest planned fragment, when it is too short to keep audio packets of `audio_packet`
/// seconds.
pub fn too_short_for_audio(
    fragments: &[PlannedFragment],
    audio_packet: Option<f64>,
) -> Option<f64> {
    let a = audio_packet?;
    let shortest = fragments
        .iter()
        .map(|f| f.duration)
        .fold(f64::INFINITY, f64::min);
    (shortest < MIN_AUDIO_PACKETS_PER_FRAGMENT * a).then_some(shortest)
}

/// Plans a split of `frames` (sorted, non-empty, at least `n` long) into `n` fragments.
/// `copyable` says whether the codecs allow a stream copy into MP4 at all; `audio_packet` is how
/// long the source's audio packets last, if it has audio (a copy's cuts must leave every fragment
/// its audio; `n` at most [`max_fragments`] does that for a re-encode).
pub fn plan(
    frames: &[FrameTime],
    duration: f64,
    n: usize,
    choice: ModeChoice,
    copyable: Result<(), String>,
    audio_packet: Option<f64>,
) -> Result<Plan, String> {
    let copy = copyable
        .and_then(|()| copy_cuts(frames, duration, n))
        .and_then(|cuts| {
            let fragments = fragments_from_cuts(frames, duration, &cuts);
            match too_short_for_audio(&fragments, audio_packet) {
                Some(shortest) => Err(format!(
                    "at the keyframes a fragment would last {:.0} ms, shorter than {} audio \
                     packets ({:.0} ms each)",
                    shortest * 1e3,
                    MIN_AUDIO_PACKETS_PER_FRAGMENT,
                    audio_packet.unwrap_or_default() * 1e3
                )),
                None => Ok(cuts),
            }
        });
    let (mode, reason, cuts) = match (choice, copy) {
        (ModeChoice::Copy | ModeChoice::Auto, Ok(cuts)) => (
            SplitMode::Copy,
            format!(
                "copy: the source's keyframes sit within {:.0}% of a fragment's length of every cut",
                COPY_TOLERANCE * 100.0
            ),
            cuts,
        ),
        (ModeChoice::Copy, Err(why)) => return Err(why),
        (ModeChoice::Auto, Err(why)) => (
            SplitMode::Reencode,
            format!("reencode: {why}"),
            reencode_cuts(frames, duration, n),
        ),
        (ModeChoice::Reencode, _) => (
            SplitMode::Reencode,
            "reencode: asked for with --mode reencode".to_owned(),
            reencode_cuts(frames, duration, n),
        ),
    };
    Ok(Plan {
        mode,
        reason,
        fragments: fragments_from_cuts(frames, duration, &cuts),
    })
}

fn fragments_from_cuts(
    frames: &[FrameTime],
    duration: f64,
    cuts: &[usize],
) -> Vec<PlannedFragment> {
    let t0 = frames[0].pts;
    let mut starts = vec![0usize];
    starts.extend_from_slice(cuts);
    let ends: Vec<usize> = starts[1..].iter().copied().chain([frames.len()]).collect();
    starts
        .iter()
        .zip(&ends)
        .map(|(&first, &end)| {
            let start = frames[first].pts - t0;
            let stop = if end == frames.len() {
                duration
            } else {
                frames[end].pts - t0
            };
            PlannedFragment {
                first_frame: first,
                frames: (end - first) as u64,
                start,
                duration: stop - start,
            }
        })
        .collect()
}

/// Whether the source can go into MP4 fragments untouched: codecs MP4 carries as they are, and no
/// frames an edit list hides (a copy would carry them into a fragment, where they would count).
pub fn copyable(
    video_codec: &str,
    audio_codec: Option<&str>,
    discarded: usize,
) -> Result<(), String> {
    if discarded > 0 {
        return Err(format!(
            "the source's edit list hides {discarded} video frame(s) that a stream copy would carry along"
        ));
    }
    if !MP4_VIDEO.contains(&video_codec) {
        return Err(format!(
            "video codec {video_codec:?} cannot be stream-copied into MP4"
        ));
    }
    match audio_codec {
        Some(a) if !MP4_AUDIO.contains(&a) => Err(format!(
            "audio codec {a:?} cannot be stream-copied into MP4"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` frames at 25 fps with a keyframe every `gop` frames.
    fn frames(count: usize, gop: usize) -> Vec<FrameTime> {
        (0..count)
            .map(|i| FrameTime {
                pts: i as f64 * 0.04,
                key: i % gop == 0,
            })
            .collect()
    }

    fn total(plan: &Plan) -> u64 {
        plan.fragments.iter().map(|f| f.frames).sum()
    }

    #[test]
    fn dense_keyframes_copy_into_equal_fragments() {
        let f = frames(250, 25);
        let p = plan(&f, 10.0, 10, ModeChoice::Auto, Ok(()), None).unwrap();
        assert_eq!(p.mode, SplitMode::Copy);
        assert!(p.fragments.iter().all(|x| x.frames == 25));
        assert!((p.fragments[3].start - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_single_keyframe_forces_reencode_and_auto_says_why() {
        let f = frames(200, 10_000);
        let p = plan(&f, 8.0, 10, ModeChoice::Auto, Ok(()), None).unwrap();
        assert_eq!(p.mode, SplitMode::Reencode);
        assert!(p.reason.contains("1 keyframe"), "{}", p.reason);
        assert_eq!(p.fragments.len(), 10);
        assert_eq!(total(&p), 200);
        assert!(p.fragments.iter().all(|x| x.frames == 20));
    }

    #[test]
    fn all_intra_sources_copy_even_when_a_frame_is_longer_than_the_tolerance() {
        // 25 frames, each a keyframe, into 11 and 10: 20 % of a fragment is less than half a
        // frame, and into 10 the cut at 0.5 s falls exactly between two frames.
        let f = frames(25, 1);
        for n in [10, 11] {
            let p = plan(&f, 1.0, n, ModeChoice::Copy, Ok(()), None).unwrap();
            assert_eq!(p.fragments.len(), n);
            assert_eq!(total(&p), 25);
        }
    }

    #[test]
    fn copy_refuses_rather_than_giving_fewer_fragments() {
        let f = frames(200, 100);
        let err = plan(&f, 8.0, 10, ModeChoice::Copy, Ok(()), None).unwrap_err();
        assert!(err.contains("no keyframe within"), "{err}");
    }

    #[test]
    fn uncopyable_codecs_reencode_in_auto_and_fail_in_copy() {
        let f = frames(250, 25);
        let why = copyable("rawvideo", None, 0);
        let p = plan(&f, 10.0, 10, ModeChoice::Auto, why.clone(), None).unwrap();
        assert_eq!(p.mode, SplitMode::Reencode);
        assert!(p.reason.contains("rawvideo"));
        assert!(plan(&f, 10.0, 10, ModeChoice::Copy, why, None).is_err());
        assert!(copyable("h264", Some("pcm_s16le"), 0).is_err());
        assert!(copyable("h264", Some("aac"), 0).is_ok());
        assert!(copyable("h264", Some("aac"), 2)
            .unwrap_err()
            .contains("edit list"));
    }

    #[test]
    fn as_many_fragments_as_frames_gives_one_frame_each() {
        let f = frames(7, 1000);
        let p = plan(&f, 0.28, 7, ModeChoice::Reencode, Ok(()), None).unwrap();
        assert!(p.fragments.iter().all(|x| x.frames == 1));
    }

    #[test]
    fn uneven_frame_counts_still_add_up() {
        for (count, n) in [(101, 10), (11, 10), (1000, 7), (30, 1)] {
            let f = frames(count, 1);
            for choice in [ModeChoice::Auto, ModeChoice::Reencode] {
                let p = plan(&f, count as f64 * 0.04, n, choice, Ok(()), None).unwrap();
                assert_eq!(p.fragments.len(), n);
                assert_eq!(total(&p), count as u64, "{count} frames into {n}");
                assert!(p.fragments.iter().all(|x| x.frames >= 1));
            }
        }
    }

    #[test]
    fn the_largest_split_with_audio_leaves_every_fragment_its_audio() {
        // 1 s at 50 fps with AAC (23 ms packets): not 50 one-frame fragments.
        let max = max_fragments(50, 1.0, 0.02, Some(1024.0 / 44100.0));
        assert!((10..50).contains(&max), "{max}");
        let f: Vec<FrameTime> = (0..50)
            .map(|i| FrameTime {
                pts: i as f64 * 0.02,
                key: i == 0,
            })
            .collect();
        let p = plan(&f, 1.0, max as usize, ModeChoice::Reencode, Ok(()), None).unwrap();
        assert_eq!(
            too_short_for_audio(&p.fragments, Some(1024.0 / 44100.0)),
            None
        );
        let p = plan(&f, 1.0, 50, ModeChoice::Reencode, Ok(()), None).unwrap();
        assert!(too_short_for_audio(&p.fragments, Some(1024.0 / 44100.0)).is_some());
        assert_eq!(too_short_for_audio(&p.fragments, None), None);
        assert_eq!(max_fragments(50, 1.0, 0.02, None), 50);
        assert_eq!(max_fragments(5000, 200.0, 0.04, None), MAX_FRAGMENTS);
    }

    #[test]
    fn cut_frames_are_the_fragments_first_frames() {
        let f = frames(100, 5);
        let p = plan(&f, 4.0, 4, ModeChoice::Copy, Ok(()), None).unwrap();
        assert_eq!(p.cut_frames(), [25, 50, 75]);
    }
}
