//! Test videos the way users' videos differ (frame rate, codec, audio, B-frames, keyframe spacing,
//! timestamps, rotation, odd sizes), made with ffmpeg's synthetic sources and cached between runs
//! under cargo's target dir, keyed by everything that made them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the commands below change, so cached videos are made again.
const GENERATOR_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Hevc,
    Vp9,
    Av1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    None,
    Aac,
    /// MP3 in MP4.
    Mp3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// The first timestamp is 1.5 s (`-output_ts_offset`).
    TsOffset,
    /// A copy cut 0.3 s into the source: an edit list hides the frames before the cut.
    EditList,
    /// Frames dropped irregularly, timestamps kept: gaps of one and two frame times.
    Vfr,
    /// A display matrix rotating the picture by 90 degrees.
    Rotation,
    /// 161x121, 4:4:4 chroma.
    Odd444,
    /// HEVC with x265's default open GOPs (CRA keyframes with leading frames).
    OpenGop,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    /// ffmpeg's rate syntax: `30000/1001`, `25`.
    pub rate: &'static str,
    pub seconds: f64,
    pub codec: Codec,
    pub audio: Audio,
    pub bframes: bool,
    /// Frames between keyframes.
    pub gop: u32,
    pub quirk: Quirk,
}

impl Source {
    pub fn fps(&self) -> f64 {
        fps_of(self.rate)
    }

    /// Video frames testsrc2 makes before any quirk drops or hides some.
    pub fn made_frames(&self) -> u64 {
        (self.seconds * self.fps()).ceil() as u64
    }

    /// A name for the test list and the cache: every field.
    pub fn slug(&self) -> String {
        format!(
            "{:?}_{}fps_{}s_{:?}_{}_gop{}_{:?}",
            self.codec,
            self.rate.replace('/', "_"),
            self.seconds,
            self.audio,
            if self.bframes { "bf" } else { "nobf" },
            self.gop,
            self.quirk
        )
        .to_lowercase()
    }

    /// The video file, made on first use.
    pub fn path(&self) -> PathBuf {
        let dir = cache_dir();
        let path = dir.join(format!("{}.mp4", self.slug()));
        if !path.exists() {
            let tmp = dir.join(format!(
                ".{}.{}.{:?}.mp4",
                self.slug(),
                std::process::id(),
                std::thread::current().id()
            ));
            self.make(&tmp);
            std::fs::rename(&tmp, &path).unwrap();
        }
        path
    }

    fn make(&self, out: &Path) {
        let (w, h) = match self.quirk {
            Quirk::Odd444 => (161, 121),
            Quirk::Rotation => (120, 160),
            _ => (160, 120),
        };
        let two_pass = matches!(self.quirk, Quirk::Rotation | Quirk::EditList);
        let first = if two_pass {
            out.with_extension("pass1.mp4")
        } else {
            out.to_owned()
        };
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={w}x{h}:rate={}:duration={}",
                self.rate, self.seconds
            ));
        if self.audio != Audio::None {
            cmd.args(["-f", "lavfi", "-i"])
                .arg(format!("sine=frequency=440:duration={}", self.seconds))
                .args(["-map", "0:v", "-map", "1:a"]);
        }
        if self.quirk == Quirk::Vfr {
            cmd.args([
                "-vf",
                "select='not(mod(n,3))+not(mod(n,5))'",
                "-fps_mode",
                "vfr",
            ]);
        }
        let pix_fmt = if self.quirk == Quirk::Odd444 {
            "yuv444p"
        } else {
            "yuv420p"
        };
        cmd.args(["-pix_fmt", pix_fmt]);
        let gop = self.gop.to_string();
        match self.codec {
            Codec::H264 => {
                cmd.args(["-c:v", "libx264", "-preset", "veryfast"])
                    .args(["-bf", if self.bframes { "3" } else { "0" }])
                    .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
            }
            Codec::Hevc => {
                let open = if self.quirk == Quirk::OpenGop {
                    ""
                } else {
                    ":no-open-gop=1"
                };
                let bframes = if self.bframes { 4 } else { 0 };
                cmd.args(["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"])
                    .arg("-x265-params")
                    .arg(format!(
                        "keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}{open}:log-level=error"
                    ));
            }
            Codec::Vp9 => {
                cmd.args([
                    "-c:v",
                    "libvpx-vp9",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                ])
                .args(["-g", &gop, "-keyint_min", &gop]);
            }
            Codec::Av1 => {
                cmd.env("SVT_LOG", "1")
                    .args(["-c:v", "libsvtav1", "-preset", "12", "-g", &gop]);
            }
        }
        match self.audio {
            Audio::None => {}
            Audio::Aac => {
                cmd.args(["-c:a", "aac"]);
            }
            Audio::Mp3 => {
                cmd.args(["-c:a", "libmp3lame"]);
            }
        }
        if self.quirk == Quirk::TsOffset {
            cmd.args(["-output_ts_offset", "1.5"]);
        }
        cmd.arg(&first);
        run(cmd);
        if two_pass {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-v", "error", "-y"]);
            if self.quirk == Quirk::EditList {
                cmd.args(["-ss", "0.3"]);
            }
            cmd.arg("-i").arg(&first).args(["-map", "0", "-c", "copy"]);
            if self.quirk == Quirk::Rotation {
                cmd.args(["-metadata:s:v:0", "rotate=90"]);
            }
            cmd.arg(out);
            run(cmd);
            std::fs::remove_file(&first).unwrap();
        }
    }
}

/// Frames per second of a rate in ffmpeg's syntax (`30000/1001`, `25`).
pub fn fps_of(rate: &str) -> f64 {
    match rate.split_once('/') {
        Some((n, d)) => n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap(),
        None => rate.parse().unwrap(),
    }
}

fn cache_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("split-matrix-v{GENERATOR_VERSION}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a decode of a file's first video stream shows: (frames, seconds from the first frame's
/// time to the last's, ffmpeg's complaints), and whether it has an audio stream.
#[derive(Debug)]
pub struct Decoded {
    pub frames: u64,
    pub span: f64,
    pub errors: String,
    pub audio: bool,
}

/// Decodes `path` with ffprobe (every frame's presentation time; decode errors on stderr).
pub fn decode(path: &Path) -> Decoded {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=best_effort_timestamp_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let mut errors = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() && errors.is_empty() {
        errors = format!("ffprobe exited with {}", out.status);
    }
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let streams = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    Decoded {
        frames: times.len() as u64,
        span,
        errors,
        audio: String::from_utf8_lossy(&streams.stdout)
            .lines()
            .any(|l| l.trim() == "audio"),
    }
}
