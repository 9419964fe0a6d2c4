//! What ffprobe says about a file: its streams, its duration, and the time and keyframe flag of
//! every video frame (read from packets, so nothing is decoded and it stays fast).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{SplitError, ToolError, Tools};

/// One video frame, in presentation order, seconds from the start of the output timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTime {
    pub pts: f64,
    pub key: bool,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub path: PathBuf,
    pub size: u64,
    pub format_name: String,
    pub video_codec: String,
    /// The audio codec of the first audio stream, if there is one.
    pub audio_codec: Option<String>,
    /// Every video frame, sorted by time, relative to the file's start time (as ffmpeg sees it).
    pub frames: Vec<FrameTime>,
    /// Seconds from the first frame to the end of the last one.
    pub duration: f64,
}

impl Probe {
    pub fn frame_count(&self) -> u64 {
        self.frames.len() as u64
    }

    pub fn keyframes(&self) -> usize {
        self.frames.iter().filter(|f| f.key).count()
    }
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    #[serde(default)]
    packets: Vec<RawPacket>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawPacket {
    stream_index: u32,
    pts_time: Option<String>,
    dts_time: Option<String>,
    #[serde(default)]
    flags: String,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    avg_frame_rate: Option<String>,
    #[serde(default)]
    disposition: RawDisposition,
}

#[derive(Deserialize, Default)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    start_time: Option<String>,
}

/// Probes `path`. A file ffprobe cannot read is [`SplitError::NotAVideo`]; a file without a real
/// video stream (cover art does not count) is [`SplitError::NoVideoStream`].
pub fn probe(tools: &Tools, path: &Path) -> Result<Probe, SplitError> {
    let size = std::fs::metadata(path)
        .map_err(|source| SplitError::Io {
            what: "cannot read",
            path: path.to_owned(),
            source,
        })?
        .len();
    let not_a_video = |detail: String| SplitError::NotAVideo {
        path: path.to_owned(),
        detail,
    };
    let json = tools
        .ffprobe([
            "-v".as_ref(),
            "error".as_ref(),
            "-show_entries".as_ref(),
            // One process for everything: starting ffprobe costs more than reading a short file.
            "format=format_name,start_time:stream=index,codec_type,codec_name,avg_frame_rate:stream_disposition=attached_pic:packet=stream_index,pts_time,dts_time,flags".as_ref(),
            "-of".as_ref(),
            "json".as_ref(),
            path.as_os_str(),
        ])
        .map_err(|e| match e {
            ToolError::Failed { stderr, .. } => not_a_video(stderr),
            other => other.into(),
        })?;
    let raw: RawProbe = serde_json::from_slice(&json).map_err(|e| ToolError::BadOutput {
        tool: "ffprobe",
        detail: e.to_string(),
    })?;
    let format = raw
        .format
        .ok_or_else(|| not_a_video("ffprobe found no container format".into()))?;
    let video = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0)
        .ok_or_else(|| SplitError::NoVideoStream {
            path: path.to_owned(),
        })?;
    let audio_codec = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|s| s.codec_name.clone().unwrap_or_default());

    let start = parse_seconds(format.start_time.as_deref()).unwrap_or(0.0);
    let frames = video_frames(&raw.packets, video.index, start)?;
    if frames.is_empty() {
        return Err(SplitError::NoVideoStream {
            path: path.to_owned(),
        });
    }
    let frame_step = frame_step(&frames, video.avg_frame_rate.as_deref());
    let last = frames.last().map_or(0.0, |f| f.pts);
    let span = last - frames[0].pts + frame_step;
    Ok(Probe {
        path: path.to_owned(),
        size,
        format_name: format.format_name.unwrap_or_default(),
        video_codec: video.codec_name.clone().unwrap_or_default(),
        audio_codec,
        frames,
        duration: span,
    })
}

/// The video stream's packets (one per frame) as frame times, in presentation order.
fn video_frames(
    packets: &[RawPacket],
    stream: u32,
    start: f64,
) -> Result<Vec<FrameTime>, SplitError> {
    let mut frames = Vec::with_capacity(packets.len());
    for p in packets.iter().filter(|p| p.stream_index == stream) {
        let pts = parse_seconds(p.pts_time.as_deref()).or(parse_seconds(p.dts_time.as_deref()));
        let Some(t) = pts else {
            return Err(ToolError::BadOutput {
                tool: "ffprobe",
                detail: "a video packet has no timestamp".into(),
            }
            .into());
        };
        frames.push(FrameTime {
            pts: t - start,
            key: p.flags.contains('K'),
        });
    }
    frames.sort_by(|a, b| a.pts.total_cmp(&b.pts));
    Ok(frames)
}

/// The time one frame lasts: from the stream's frame rate, else the median gap between frames.
fn frame_step(frames: &[FrameTime], avg_frame_rate: Option<&str>) -> f64 {
    if let Some((num, den)) = avg_frame_rate.and_then(|r| r.split_once('/')) {
        if let (Ok(num), Ok(den)) = (num.parse::<f64>(), den.parse::<f64>()) {
            if num > 0.0 && den > 0.0 {
                return den / num;
            }
        }
    }
    let mut gaps: Vec<f64> = frames.windows(2).map(|w| w[1].pts - w[0].pts).collect();
    gaps.sort_by(f64::total_cmp);
    gaps.get(gaps.len() / 2).copied().unwrap_or(0.04)
}

fn parse_seconds(s: Option<&str>) -> Option<f64> {
    s.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}
