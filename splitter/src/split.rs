//! Running a split: plan, cut with ffmpeg's segment muxer into a staging dir, verify every fragment
//! (frame count as planned, audio kept, optionally a clean decode), hash, then move the fragments
//! and `manifest.json` into place, the manifest last so a half-done split has none.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vidswarm_proto::manifest::round_seconds;
use vidswarm_proto::{
    fragment_name, parse_fragment_name, FragmentHasher, FragmentInfo, Manifest, SourceInfo,
    SplitMode, DEFAULT_CHUNK_SIZE, MAX_FRAGMENTS,
};

use crate::plan::{self, ModeChoice, Plan, PlannedFragment, MP4_AUDIO};
use crate::probe::{probe, Probe};
use crate::{SplitError, Tools};

#[derive(Debug, Clone)]
pub struct SplitOptions {
    pub fragments: u32,
    pub mode: ModeChoice,
    pub out: PathBuf,
    /// Write into an existing, non-empty output dir.
    pub force: bool,
    /// Decode every fragment after the split and fail on any decoder complaint.
    pub verify_decode: bool,
    pub chunk_size: u32,
    pub tools: Tools,
}

impl SplitOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            fragments: 10,
            mode: ModeChoice::Auto,
            out: out.into(),
            force: false,
            verify_decode: true,
            chunk_size: DEFAULT_CHUNK_SIZE,
            tools: Tools::from_env(),
        }
    }
}

#[derive(Debug)]
pub struct SplitReport {
    pub manifest: Manifest,
    /// Why the mode that ran was chosen.
    pub reason: String,
    pub elapsed: Duration,
}

/// Splits `input` into `opts.fragments` fragments in `opts.out`.
pub fn split(input: &Path, opts: &SplitOptions) -> Result<SplitReport, SplitError> {
    let started = Instant::now();
    let n = opts.fragments;
    if n == 0 {
        return Err(SplitError::ZeroFragments);
    }
    if n > MAX_FRAGMENTS {
        return Err(SplitError::FragmentLimit {
            fragments: n,
            max: MAX_FRAGMENTS,
        });
    }
    check_output_dir(&opts.out, opts.force)?;
    let source = probe(&opts.tools, input)?;
    if u64::from(n) > source.frame_count() {
        return Err(SplitError::TooManyFragments {
            fragments: n,
            frames: source.frame_count(),
        });
    }
    let copyable = plan::copyable(&source.video_codec, source.audio_codec.as_deref());
    let mut plan = plan::plan(
        &source.frames,
        source.duration,
        n as usize,
        opts.mode,
        copyable,
    )
    .map_err(|reason| SplitError::CopyImpossible {
        fragments: n,
        reason,
    })?;
    tracing::info!(mode = %plan.mode, reason = %plan.reason, fragments = n, "split planned");

    let staging = Staging::create(&opts.out)?;
    let mut cut = cut_and_verify(&source, &plan, &staging.path, opts);
    if let (Err(e), SplitMode::Copy, ModeChoice::Auto) = (&cut, plan.mode, opts.mode) {
        // Keyframes in the right places do not guarantee a clean copy (open GOPs, odd muxing);
        // auto mode then pays for a re-encode rather than hand out a broken fragment.
        tracing::warn!(error = %e, "copy split failed verification, re-encoding");
        plan = Plan {
            mode: SplitMode::Reencode,
            reason: format!("reencode: a copy split failed verification ({e})"),
            fragments: plan::plan(
                &source.frames,
                source.duration,
                n as usize,
                ModeChoice::Reencode,
                Ok(()),
            )
            .map_err(|reason| SplitError::CopyImpossible {
                fragments: n,
                reason,
            })?
            .fragments,
        };
        staging.clear()?;
        cut = cut_and_verify(&source, &plan, &staging.path, opts);
    }
    let fragments = cut?;

    let name = input
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "video.mp4".into());
    let manifest = Manifest::new(
        SourceInfo {
            name,
            size: source.size,
            duration: round_seconds(source.duration),
            frame_count: source.frame_count(),
        },
        plan.mode,
        opts.chunk_size,
        fragments,
    );
    staging.publish(&opts.out, &manifest)?;
    Ok(SplitReport {
        manifest,
        reason: plan.reason,
        elapsed: started.elapsed(),
    })
}

fn check_output_dir(out: &Path, force: bool) -> Result<(), SplitError> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                return Err(SplitError::OutputNotEmpty(out.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SplitError::Io {
            what: "cannot read output directory",
            path: out.to_owned(),
            source,
        }),
    }
}

/// Runs ffmpeg into `dir` and checks what it wrote against the plan.
fn cut_and_verify(
    source: &Probe,
    plan: &Plan,
    dir: &Path,
    opts: &SplitOptions,
) -> Result<Vec<FragmentInfo>, SplitError> {
    run_ffmpeg(source, plan, dir, &opts.tools)?;
    let written = fs::read_dir(dir)
        .map_err(|source| io("cannot list", dir, source))?
        .filter_map(|e| e.ok())
        .filter(|e| parse_fragment_name(&e.file_name().to_string_lossy()).is_some())
        .count() as u32;
    let expected = plan.fragments.len() as u32;
    if written != expected {
        return Err(SplitError::WrongFragmentCount {
            expected,
            got: written,
        });
    }
    let fragments = verify_all(&plan.fragments, |index, planned| {
        verify_fragment(
            source,
            index,
            planned,
            &dir.join(fragment_name(index)),
            opts,
        )
    })?;
    let total: u64 = fragments.iter().map(|f| f.frame_count).sum();
    if total != source.frame_count() {
        return Err(SplitError::FrameCountMismatch {
            expected: source.frame_count(),
            got: total,
        });
    }
    Ok(fragments)
}

/// Runs `check` on every planned fragment, spread over the machine's cores (each check is mostly
/// waiting on an ffprobe or ffmpeg child), and returns the results in index order.
fn verify_all<F>(planned: &[PlannedFragment], check: F) -> Result<Vec<FragmentInfo>, SplitError>
where
    F: Fn(u32, &PlannedFragment) -> Result<FragmentInfo, SplitError> + Sync,
{
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(planned.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<FragmentInfo, SplitError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = planned.get(i) else { break done };
                        done.push((i, check(i as u32, p)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    if results.len() != planned.len() {
        return Err(SplitError::WrongFragmentCount {
            expected: planned.len() as u32,
            got: results.len() as u32,
        });
    }
    results.into_iter().map(|(_, r)| r).collect()
}

/// Checks one written fragment against its plan and hashes it.
fn verify_fragment(
    source: &Probe,
    index: u32,
    planned: &PlannedFragment,
    path: &Path,
    opts: &SplitOptions,
) -> Result<FragmentInfo, SplitError> {
    let bad = |detail: String| SplitError::BadFragment { index, detail };
    let got = probe(&opts.tools, path).map_err(|e| bad(e.to_string()))?;
    if got.frame_count() != planned.frames {
        return Err(bad(format!(
            "{} video frames, {} planned",
            got.frame_count(),
            planned.frames
        )));
    }
    if source.audio_codec.is_some() && got.audio_codec.is_none() {
        return Err(bad("the source has audio, the fragment has none".into()));
    }
    if opts.verify_decode {
        let errors = opts.tools.decode_errors(path)?;
        if !errors.trim().is_empty() {
            return Err(bad(format!("does not decode cleanly: {}", errors.trim())));
        }
    }
    let hashed = hash_file(path, opts.chunk_size)?;
    Ok(FragmentInfo {
        index,
        name: fragment_name(index),
        size: hashed.size,
        duration: round_seconds(planned.duration),
        start: round_seconds(planned.start),
        frame_count: planned.frames,
        blake3: hashed.hash,
        chunks: hashed.chunks,
    })
}

fn run_ffmpeg(source: &Probe, plan: &Plan, dir: &Path, tools: &Tools) -> Result<(), SplitError> {
    let times = plan
        .cut_times(&source.frames)
        .iter()
        .map(|t| format!("{t:.6}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<std::ffi::OsString> = vec!["-i".into(), source.path.clone().into()];
    let audio_copy = source
        .audio_codec
        .as_deref()
        .is_some_and(|a| MP4_AUDIO.contains(&a));
    match plan.mode {
        SplitMode::Copy => {
            args.extend(["-map", "0:v:0", "-map", "0:a:0?", "-c", "copy"].map(Into::into))
        }
        // The planner never chooses Upload (that is a loose fragment a node was given as is).
        SplitMode::Reencode | SplitMode::Upload => {
            args.extend(
                [
                    "-map",
                    "0:v:0",
                    "-map",
                    "0:a:0?",
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
                    // One output frame per input frame: the frame counts must add up.
                    "-fps_mode",
                    "passthrough",
                    "-c:a",
                    if audio_copy { "copy" } else { "aac" },
                ]
                .map(Into::into),
            );
            if !times.is_empty() {
                args.extend(["-force_key_frames".into(), times.clone().into()]);
            }
        }
    }
    args.extend(
        [
            "-f",
            "segment",
            "-segment_format",
            "mp4",
            "-reset_timestamps",
            "1",
        ]
        .map(Into::into),
    );
    // Without this the first fragment starts late by the B-frame delay, and the join drifts.
    args.extend(["-avoid_negative_ts", "disabled"].map(Into::into));
    if !times.is_empty() {
        args.extend(["-segment_times".into(), times.into()]);
    }
    args.push(dir.join("fragment_%d.mp4").into());
    tools.ffmpeg(&args)?;
    Ok(())
}

pub(crate) fn hash_file(
    path: &Path,
    chunk_size: u32,
) -> Result<vidswarm_proto::HashedFragment, SplitError> {
    let mut file = File::open(path).map_err(|e| io("cannot open", path, e))?;
    let mut hasher = FragmentHasher::new(chunk_size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buf)
            .map_err(|e| io("cannot read", path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
    }
    Ok(hasher.finish())
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> SplitError {
    SplitError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A hidden dir inside the output dir where ffmpeg writes; removed whatever happens.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn create(out: &Path) -> Result<Self, SplitError> {
        fs::create_dir_all(out).map_err(|e| io("cannot create output directory", out, e))?;
        let path = out.join(format!(".vidswarm-split-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).map_err(|e| io("cannot create", &path, e))?;
        Ok(Self { path })
    }

    fn clear(&self) -> Result<(), SplitError> {
        let _ = fs::remove_dir_all(&self.path);
        fs::create_dir(&self.path).map_err(|e| io("cannot create", &self.path, e))
    }

    /// Moves the fragments into `out`, drops stale fragments a forced re-split would leave, then
    /// writes the manifest.
    fn publish(&self, out: &Path, manifest: &Manifest) -> Result<(), SplitError> {
        for f in &manifest.fragments {
            let (from, to) = (self.path.join(&f.name), out.join(&f.name));
            fs::rename(&from, &to).map_err(|e| io("cannot move fragment to", &to, e))?;
        }
        let n = manifest.fragments.len() as u32;
        for entry in fs::read_dir(out)
            .map_err(|e| io("cannot list", out, e))?
            .flatten()
        {
            let name = entry.file_name();
            if parse_fragment_name(&name.to_string_lossy()).is_some_and(|i| i >= n) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let tmp = self.path.join("manifest.json");
        let mut file = File::create(&tmp).map_err(|e| io("cannot write", &tmp, e))?;
        file.write_all(&manifest.to_json_pretty())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write", &tmp, e))?;
        let dest = out.join("manifest.json");
        fs::rename(&tmp, &dest).map_err(|e| io("cannot write", &dest, e))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
