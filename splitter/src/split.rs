//! Running a split: plan, cut with ffmpeg's segment muxer into a staging dir ([`crate::cut`]),
//! verify every fragment (frame count as planned, audio kept, optionally a clean decode), hash,
//! then move the fragments and `manifest.json` into place, the manifest last so a half-done split
//! has none ([`crate::output`]).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vidswarm_proto::manifest::round_seconds;
use vidswarm_proto::{
    fragment_name, parse_fragment_name, FragmentHasher, FragmentInfo, Manifest, SourceInfo,
    SplitMode, DEFAULT_CHUNK_SIZE, MAX_FRAGMENTS,
};

use crate::cut::{describe_lost_cuts, run_ffmpeg};
use crate::output::{check_output_dir, OutputDir};
use crate::plan::{self, ModeChoice, Plan, PlannedFragment};
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
    if let (true, Some(audio_packet)) = (n > source.max_fragments(), source.audio_packet) {
        return Err(SplitError::TooShortForAudio {
            fragments: n,
            seconds: source.duration / f64::from(n),
            audio_ms: audio_packet * 1e3,
            max: source.max_fragments(),
        });
    }
    let copyable = plan::copyable(
        &source.video_codec,
        source.audio_codec.as_deref(),
        source.discarded,
    );
    let mut plan = plan::plan(
        &source.frames,
        source.duration,
        n as usize,
        opts.mode,
        copyable,
        source.audio_packet,
    )
    .map_err(|reason| SplitError::CopyImpossible {
        fragments: n,
        reason,
    })?;
    tracing::info!(mode = %plan.mode, reason = %plan.reason, fragments = n, "split planned");

    let out = OutputDir::claim(&opts.out, opts.force)?;
    let staging = out.staging()?;
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
                source.audio_packet,
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
    let codecs = codecs_of(&staging.path.join(fragment_name(0)));

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
    )
    .with_codecs(codecs);
    out.publish(&staging, &manifest)?;
    Ok(SplitReport {
        manifest,
        reason: plan.reason,
        elapsed: started.elapsed(),
    })
}

/// The codec string of a fragment's tracks, read from its init segment (the fragments of one
/// split share it: one encoder, or one source's streams copied). `None` if it cannot be named.
fn codecs_of(fragment: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    // An init segment is a few KiB; its moov lists every track's sample description.
    File::open(fragment)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut head)
        .ok()?;
    let init = vidswarm_proto::mp4::init_segment_len(&head)?;
    vidswarm_proto::mp4::codecs(&head[..init])
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
        let counts: Vec<u64> = (0..written)
            .map(|i| probe(&opts.tools, &dir.join(fragment_name(i))).map(|p| p.frame_count()))
            .collect::<Result<_, _>>()?;
        return Err(SplitError::WrongFragmentCount {
            expected,
            got: written,
            detail: describe_lost_cuts(source, plan, &counts),
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

/// Runs `check` on every planned fragment on all cores, and returns the results in index order.
fn verify_all<F>(planned: &[PlannedFragment], check: F) -> Result<Vec<FragmentInfo>, SplitError>
where
    F: Fn(u32, &PlannedFragment) -> Result<FragmentInfo, SplitError> + Sync,
{
    crate::par::map(planned, |i, p| check(i as u32, p))
        .ok_or_else(|| SplitError::WrongFragmentCount {
            expected: planned.len() as u32,
            got: 0,
            detail: "a verification thread panicked".into(),
        })?
        .into_iter()
        .collect()
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
