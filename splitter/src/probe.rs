//! What ffprobe says about a file: its streams, its duration, and the time of every video frame
//! and whether a stream copy may cut before it (read from packets, so nothing is decoded and it
//! stays fast).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{SplitError, ToolError, Tools};

/// One video frame, in presentation order, seconds from the start of the output timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTime {
    pub pts: f64,
    /// A stream copy may start a fragment here: a keyframe that opens a closed GOP, so the frames
    /// before it in presentation order are exactly the packets before it in decode order. (An
    /// open GOP's keyframe is followed in decode order by frames shown before it, which need the
    /// previous GOP to decode: a fragment cannot start there without re-encoding.)
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
    /// How long one video frame lasts (from the frame rate).
    pub frame_step: f64,
    /// How long one packet of the first audio stream lasts (the median gap), if there is audio.
    pub audio_packet: Option<f64>,
    /// Video packets an edit list marks as not shown (decoded for reference, then dropped). They
    /// are not in `frames`; a stream copy would carry them along, so it is not planned.
    pub discarded: usize,
}

impl Probe {
    pub fn frame_count(&self) -> u64 {
        self.frames.len() as u64
    }

    pub fn keyframes(&self) -> usize {
        self.frames.iter().filter(|f| f.key).count()
    }

    /// The most fragments this source can be split into: one frame each, and, with audio, each
    /// long enough to hold its audio (see [`crate::plan::max_fragments`]).
    pub fn max_fragments(&self) -> u32 {
        crate::plan::max_fragments(
            self.frames.len(),
            self.duration,
            self.frame_step,
            self.audio_packet,
        )
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
            crate::tools::file_url(path).as_os_str(),
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
    let audio = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let audio_codec = audio.map(|s| s.codec_name.clone().unwrap_or_default());
    let audio_packet = audio.and_then(|a| packet_length(&raw.packets, a.index));

    let start = parse_seconds(format.start_time.as_deref()).unwrap_or(0.0);
    let (frames, discarded) = video_frames(&raw.packets, video.index, start)?;
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
        frame_step,
        audio_packet,
        discarded,
    })
}

/// How late the first video frame of `path` starts after the file itself (its earliest stream):
/// `video start_time - format start_time`, from stream headers only (fast).
pub fn video_lead(tools: &Tools, path: &Path) -> Result<f64, SplitError> {
    let json = tools.ffprobe([
        "-v".as_ref(),
        "error".as_ref(),
        "-select_streams".as_ref(),
        "v:0".as_ref(),
        "-show_entries".as_ref(),
        "format=start_time:stream=start_time".as_ref(),
        "-of".as_ref(),
        "json".as_ref(),
        crate::tools::file_url(path).as_os_str(),
    ])?;
    #[derive(Deserialize)]
    struct Start {
        start_time: Option<String>,
    }
    #[derive(Deserialize)]
    struct Starts {
        #[serde(default)]
        streams: Vec<Start>,
        format: Option<Start>,
    }
    let raw: Starts = serde_json::from_slice(&json).map_err(|e| ToolError::BadOutput {
        tool: "ffprobe",
        detail: e.to_string(),
    })?;
    let format = raw
        .format
        .and_then(|f| parse_seconds(f.start_time.as_deref()));
    let video = raw
        .streams
        .first()
        .and_then(|s| parse_seconds(s.start_time.as_deref()));
    Ok(match (video, format) {
        (Some(v), Some(f)) => (v - f).max(0.0),
        _ => 0.0,
    })
}

/// The video stream's packets (one per frame, in decode order) as frame times in presentation
/// order, without those an edit list discards (their count is returned beside them).
fn video_frames(
    packets: &[RawPacket],
    stream: u32,
    start: f64,
) -> Result<(Vec<FrameTime>, usize), SplitError> {
    let mut decoded = Vec::with_capacity(packets.len());
    let mut discarded = 0;
    for p in packets.iter().filter(|p| p.stream_index == stream) {
        if p.flags.contains('D') {
            discarded += 1;
            continue;
        }
        let pts = parse_seconds(p.pts_time.as_deref()).or(parse_seconds(p.dts_time.as_deref()));
        let Some(t) = pts else {
            return Err(ToolError::BadOutput {
                tool: "ffprobe",
                detail: "a video packet has no timestamp".into(),
            }
            .into());
        };
        decoded.push(FrameTime {
            pts: t - start,
            key: p.flags.contains('K'),
        });
    }
    Ok((presentation_order(decoded), discarded))
}

/// Sorts frames given in decode order by time, keeping `key` only on keyframes where the packets
/// before them in decode order are exactly the frames before them in presentation order.
fn presentation_order(decoded: Vec<FrameTime>) -> Vec<FrameTime> {
    let mut order: Vec<usize> = (0..decoded.len()).collect();
    order.sort_by(|&a, &b| decoded[a].pts.total_cmp(&decoded[b].pts).then(a.cmp(&b)));
    let mut rank = vec![0; decoded.len()];
    for (r, &d) in order.iter().enumerate() {
        rank[d] = r;
    }
    let mut latest_before = f64::NEG_INFINITY;
    let mut frames: Vec<FrameTime> = decoded.clone();
    for (d, f) in decoded.iter().enumerate() {
        let closed = rank[d] == d && latest_before < f.pts;
        frames[rank[d]] = FrameTime {
            pts: f.pts,
            key: f.key && closed,
        };
        latest_before = latest_before.max(f.pts);
    }
    frames
}

/// The median gap between the presentation times of `stream`'s packets.
fn packet_length(packets: &[RawPacket], stream: u32) -> Option<f64> {
    let mut times: Vec<f64> = packets
        .iter()
        .filter(|p| p.stream_index == stream)
        .filter_map(|p| parse_seconds(p.pts_time.as_deref()))
        .collect();
    times.sort_by(f64::total_cmp);
    median_gap(&times)
}

/// The median gap between consecutive `times` (sorted), if it is positive.
fn median_gap(times: &[f64]) -> Option<f64> {
    let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    gaps.get(gaps.len() / 2).copied().filter(|g| *g > 0.0)
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
    let times: Vec<f64> = frames.iter().map(|f| f.pts).collect();
    median_gap(&times).unwrap_or(0.04)
}

fn parse_seconds(s: Option<&str>) -> Option<f64> {
    s.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(list: &[(f64, bool)]) -> Vec<FrameTime> {
        list.iter()
            .map(|&(pts, key)| FrameTime { pts, key })
            .collect()
    }

    #[test]
    fn closed_gop_keyframes_stay_cut_points() {
        // I0 P3 B1 B2 | I4 P6 B5: B-frames, but nothing shown before I4 comes after it.
        let f = presentation_order(decoded(&[
            (0.0, true),
            (3.0, false),
            (1.0, false),
            (2.0, false),
            (4.0, true),
            (6.0, false),
            (5.0, false),
        ]));
        let pts: Vec<f64> = f.iter().map(|x| x.pts).collect();
        assert_eq!(pts, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let keys: Vec<usize> = (0..f.len()).filter(|&i| f[i].key).collect();
        assert_eq!(keys, [0, 4]);
    }

    #[test]
    fn open_gop_keyframes_are_not_cut_points() {
        // I0 P2 B1 | I5 B3 B4: B3 and B4 are shown before I5 but decoded after it (leading frames).
        let f = presentation_order(decoded(&[
            (0.0, true),
            (2.0, false),
            (1.0, false),
            (5.0, true),
            (3.0, false),
            (4.0, false),
        ]));
        let keys: Vec<usize> = (0..f.len()).filter(|&i| f[i].key).collect();
        assert_eq!(keys, [0]);
    }
}
