//! The split matrix: videos the way users' videos differ, each split and checked end to end
//! (`common::check::check_split`). One named test per case (libtest-mimic), so a failure names the
//! video and `cargo test -p vidswarm-splitter --test matrix -- hevc` runs a part.
//!
//! By default a covering subset runs (every frame rate, duration band, codec, audio kind, B-frame
//! setting, keyframe spacing, quirk and fragment count at least once; about two minutes here);
//! `VIDSWARM_SPLIT_MATRIX=full` runs the cross product (docs/architecture.md says what is in it).

mod common;

use common::check::check_split;
use common::sources::{decode, fps_of, Audio, Codec, Quirk, Source};
use libtest_mimic::{Arguments, Failed, Trial};
use vidswarm_proto::SplitMode;
use vidswarm_splitter::ModeChoice;

const RATES: [&str; 6] = ["24000/1001", "25", "30000/1001", "30", "50", "60000/1001"];

/// How far apart the keyframes are.
#[derive(Debug, Clone, Copy)]
enum Keys {
    /// Close enough to every cut for a copy split into this case's fragment count.
    Dense,
    /// One keyframe: a copy is impossible, the split re-encodes.
    Sparse,
    /// Every this many frames.
    Every(u32),
}

#[derive(Debug, Clone, Copy)]
enum Count {
    Exactly(u32),
    /// As many fragments as the source has frames: one frame each.
    Largest,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    rate: &'static str,
    seconds: f64,
    codec: Codec,
    audio: Audio,
    bframes: bool,
    keys: Keys,
    quirk: Quirk,
    count: Count,
}

impl Case {
    fn source(&self) -> Source {
        let mut s = Source {
            rate: self.rate,
            seconds: self.seconds,
            codec: self.codec,
            audio: self.audio,
            bframes: self.bframes && matches!(self.codec, Codec::H264 | Codec::Hevc),
            gop: 1,
            quirk: self.quirk,
        };
        s.gop = match (self.keys, self.count) {
            (Keys::Every(g), _) => g,
            (Keys::Sparse, _) => s.made_frames() as u32 + 1,
            (Keys::Dense, Count::Largest) => 1,
            // Keyframes at most 0.35 of a fragment apart sit within 0.175 of one of every
            // ideal cut: inside the planner's 0.2.
            (Keys::Dense, Count::Exactly(n)) => {
                ((0.35 * s.fps() * self.seconds / f64::from(n)).floor() as u32).max(1)
            }
        };
        s
    }

    fn name(&self) -> String {
        let n = match self.count {
            Count::Exactly(n) => n.to_string(),
            Count::Largest => "max".into(),
        };
        format!("{}_into_{n}", self.source().slug())
    }

    /// The mode the planner must pick: a copy exactly when the keyframes allow one, except for a
    /// variable frame rate, where keyframe times are irregular by design.
    fn expected_mode(&self) -> Option<SplitMode> {
        let closed_and_shown = !matches!(self.quirk, Quirk::EditList | Quirk::OpenGop);
        match self.keys {
            _ if self.quirk == Quirk::Vfr => None,
            Keys::Dense if closed_and_shown => Some(SplitMode::Copy),
            Keys::Dense | Keys::Sparse => Some(SplitMode::Reencode),
            Keys::Every(_) if !closed_and_shown => Some(SplitMode::Reencode),
            Keys::Every(_) => None,
        }
    }

    fn run(&self) -> Result<(), Failed> {
        let source = self.source();
        let path = source.path();
        let n = match self.count {
            Count::Exactly(n) => n,
            Count::Largest => largest(&path)?,
        };
        let (mode, codecs) = check_split(&path, n, ModeChoice::Auto, 1.0 / source.fps())?;
        if let Some(expected) = self.expected_mode() {
            if mode != expected {
                return Err(format!("split in {mode} mode, expected {expected}").into());
            }
        }
        // What a browser is asked before playing (a re-encode is always H.264).
        let codecs = codecs.ok_or("the manifest names no codecs")?;
        let video = match (mode, self.codec) {
            (SplitMode::Reencode, _) | (_, Codec::H264) => ["avc1."].as_slice(),
            (_, Codec::Hevc) => &["hev1.", "hvc1."],
            (_, Codec::Vp9) => &["vp09."],
            (_, Codec::Av1) => &["av01."],
        };
        // MP3 is copied when MP4 can carry it, else re-encoded to AAC.
        let audio: &[&str] = match self.audio {
            Audio::None => &[],
            Audio::Aac => &["mp4a.40.2"],
            Audio::Mp3 => &["mp4a.6b", "mp4a.40.2"],
        };
        let names: Vec<&str> = codecs.split(',').collect();
        let named = names.len() == 1 + usize::from(!audio.is_empty())
            && names.iter().any(|n| video.iter().any(|v| n.starts_with(v)))
            && (audio.is_empty() || names.iter().any(|n| audio.contains(n)));
        if !named {
            return Err(format!(
                "codecs {codecs:?} for {:?} with {:?}",
                self.codec, self.audio
            )
            .into());
        }
        Ok(())
    }
}

/// The largest split the splitter allows: one frame per fragment, or, with audio, the most
/// fragments that each still hold audio, after checking that one more is refused with that reason.
fn largest(path: &std::path::Path) -> Result<u32, Failed> {
    let frames = decode(path).frames as u32;
    let probed = vidswarm_splitter::probe(&vidswarm_splitter::Tools::from_env(), path)
        .map_err(|e| e.to_string())?;
    let max = probed.max_fragments();
    if max < frames {
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut opts = vidswarm_splitter::SplitOptions::new(work.path().join("s"));
        opts.fragments = max + 1;
        match vidswarm_splitter::split(path, &opts) {
            Err(vidswarm_splitter::SplitError::TooShortForAudio { max: said, .. })
                if said == max => {}
            other => {
                return Err(format!(
                    "{} fragments: expected a refusal naming {max}, got {other:?}",
                    max + 1
                )
                .into())
            }
        }
    }
    Ok(max)
}

#[allow(clippy::too_many_arguments)]
fn case(
    rate: &'static str,
    seconds: f64,
    codec: Codec,
    audio: Audio,
    bframes: bool,
    keys: Keys,
    quirk: Quirk,
    count: Count,
) -> Case {
    Case {
        rate,
        seconds,
        codec,
        audio,
        bframes,
        keys,
        quirk,
        count,
    }
}

/// The CI subset: each value of each dimension at least once, and the combinations that broke.
fn covering() -> Vec<Case> {
    use Audio::{Aac, Mp3, None as Silent};
    use Codec::{Av1, Hevc, Vp9, H264};
    use Count::{Exactly, Largest};
    use Keys::{Dense, Every, Sparse};
    use Quirk::*;
    vec![
        case(
            "24000/1001",
            3.0,
            H264,
            Aac,
            true,
            Sparse,
            None,
            Exactly(10),
        ),
        case("25", 2.0, H264, Silent, false, Dense, None, Exactly(7)),
        // The clip of issue #10: 29.97 fps, B-frames, two keyframes, no audio.
        case(
            "30000/1001",
            4.0,
            H264,
            Silent,
            true,
            Every(60),
            None,
            Exactly(10),
        ),
        case("30", 5.0, H264, Mp3, true, Dense, None, Exactly(10)),
        case("50", 1.0, H264, Aac, false, Sparse, None, Largest),
        case(
            "60000/1001",
            2.0,
            H264,
            Silent,
            true,
            Dense,
            None,
            Exactly(3),
        ),
        case(
            "60000/1001",
            12.0,
            H264,
            Aac,
            true,
            Sparse,
            None,
            Exactly(10),
        ),
        case("30", 4.0, Hevc, Silent, true, Dense, None, Exactly(10)),
        // HEVC at 30 fps with a keyframe every half second, in open GOPs (issue #10).
        case("30", 5.0, Hevc, Aac, true, Every(15), OpenGop, Exactly(10)),
        case(
            "24000/1001",
            2.0,
            Hevc,
            Mp3,
            false,
            Sparse,
            None,
            Exactly(2),
        ),
        case("50", 7.0, Hevc, Silent, true, Sparse, None, Exactly(7)),
        case("30000/1001", 12.0, Hevc, Aac, true, Dense, None, Exactly(2)),
        case("25", 3.0, Vp9, Silent, false, Dense, None, Exactly(10)),
        case("30", 2.0, Vp9, Aac, false, Sparse, None, Exactly(3)),
        case("25", 3.0, Av1, Silent, false, Dense, None, Exactly(7)),
        case("30000/1001", 2.0, Av1, Aac, false, Sparse, None, Exactly(2)),
        case(
            "30000/1001",
            4.0,
            H264,
            Aac,
            true,
            Dense,
            TsOffset,
            Exactly(10),
        ),
        case("25", 3.0, H264, Silent, true, Sparse, TsOffset, Exactly(7)),
        case("30", 4.0, H264, Aac, true, Dense, EditList, Exactly(7)),
        case(
            "24000/1001",
            3.0,
            H264,
            Silent,
            false,
            Sparse,
            EditList,
            Exactly(3),
        ),
        case("30", 5.0, H264, Silent, true, Sparse, Vfr, Exactly(10)),
        case("30", 5.0, H264, Aac, false, Dense, Vfr, Exactly(7)),
        case(
            "30000/1001",
            3.0,
            H264,
            Aac,
            true,
            Sparse,
            Rotation,
            Exactly(10),
        ),
        case("30", 3.0, H264, Silent, true, Dense, Rotation, Exactly(7)),
        case("25", 2.0, H264, Silent, false, Sparse, Odd444, Exactly(3)),
        case("25", 2.0, H264, Aac, true, Dense, Odd444, Exactly(10)),
        case("30", 2.0, Hevc, Silent, true, Dense, Odd444, Exactly(7)),
        case("24000/1001", 1.0, H264, Silent, true, Sparse, None, Largest),
        case("25", 1.0, H264, Aac, false, Dense, None, Largest),
        // 119 cuts: more than ffmpeg's expression parser takes as a flat sum.
        case("60000/1001", 2.0, H264, Silent, true, Sparse, None, Largest),
    ]
}

/// The full matrix: the cross product of frame rates, H.264/HEVC, audio, B-frames and keyframe
/// spacing, each split into 2, 3, 7 and 10 (and into its frame count when short), plus VP9, AV1 and
/// every quirk at every frame rate.
fn full() -> Vec<Case> {
    const SECONDS: [f64; 6] = [1.0, 2.0, 3.0, 5.0, 8.0, 12.0];
    let counts = [2, 3, 7, 10].map(Count::Exactly);
    let mut cases = Vec::new();
    let mut i = 0usize;
    for rate in RATES {
        for codec in [Codec::H264, Codec::Hevc] {
            for audio in [Audio::None, Audio::Aac, Audio::Mp3] {
                for bframes in [false, true] {
                    for keys in [Keys::Dense, Keys::Sparse] {
                        let seconds = SECONDS[i % SECONDS.len()];
                        i += 1;
                        let mut these = counts.to_vec();
                        if seconds <= 2.0 {
                            these.push(Count::Largest);
                        }
                        for count in these {
                            cases.push(case(
                                rate,
                                seconds,
                                codec,
                                audio,
                                bframes,
                                keys,
                                Quirk::None,
                                count,
                            ));
                        }
                    }
                }
            }
        }
        for codec in [Codec::Vp9, Codec::Av1] {
            for (keys, audio) in [(Keys::Dense, Audio::None), (Keys::Sparse, Audio::Aac)] {
                let count = counts[i % counts.len()];
                i += 1;
                cases.push(case(
                    rate,
                    3.0,
                    codec,
                    audio,
                    false,
                    keys,
                    Quirk::None,
                    count,
                ));
            }
        }
        for quirk in [
            Quirk::TsOffset,
            Quirk::EditList,
            Quirk::Vfr,
            Quirk::Rotation,
            Quirk::Odd444,
        ] {
            for keys in [Keys::Dense, Keys::Sparse] {
                let count = counts[i % counts.len()];
                i += 1;
                cases.push(case(
                    rate,
                    4.0,
                    Codec::H264,
                    Audio::Aac,
                    true,
                    keys,
                    quirk,
                    count,
                ));
            }
        }
        let gop = fps_of(rate) as u32 / 2;
        cases.push(case(
            rate,
            5.0,
            Codec::Hevc,
            Audio::Aac,
            true,
            Keys::Every(gop),
            Quirk::OpenGop,
            Count::Exactly(10),
        ));
    }
    cases
}

fn main() {
    let args = Arguments::from_args();
    if !common::ffmpeg_available() {
        return;
    }
    let full_run = std::env::var("VIDSWARM_SPLIT_MATRIX").is_ok_and(|v| v == "full");
    let cases = if full_run { full() } else { covering() };
    eprintln!(
        "split matrix: {} cases ({})",
        cases.len(),
        if full_run {
            "full"
        } else {
            "covering subset; VIDSWARM_SPLIT_MATRIX=full runs all"
        }
    );
    let trials = cases
        .into_iter()
        .map(|c| Trial::test(c.name(), move || c.run()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
