//! Joining: check every fragment against the manifest (size and BLAKE3), then concatenate them
//! with ffmpeg's concat demuxer (stream copy) into a temp file renamed into place, and check the
//! result holds the source's frame count.
//!
//! The concat script is line-based and has no escape for a newline, so it never names the
//! fragments' own paths: it lists `0.mp4`, `1.mp4`, .. in a private temp dir where each is a
//! symlink to its fragment. Any path (newlines, quotes, spaces, a leading `-`) then joins.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use vidswarm_proto::{Manifest, VideoId, MAX_MANIFEST_BYTES};

use crate::probe::probe;
use crate::split::hash_file;
use crate::tools::file_url;
use crate::{JoinError, SplitError, Tools};

#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub out: PathBuf,
    /// Replace an existing output file.
    pub force: bool,
    pub tools: Tools,
}

#[derive(Debug)]
pub struct JoinReport {
    pub video_id: VideoId,
    pub frame_count: u64,
    pub fragments: usize,
}

/// Reads and validates `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, JoinError> {
    let path = dir.join("manifest.json");
    let read_err = |source| JoinError::ReadManifest {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(read_err)?;
    let mut bytes = Vec::new();
    // Bounded read: a hostile "manifest" cannot make us allocate more than the limit.
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_MANIFEST_BYTES as u64 + 1),
        &mut bytes,
    )
    .map_err(read_err)?;
    Manifest::from_json(&bytes).map_err(|source| JoinError::BadManifest {
        path: path.clone(),
        source,
    })
}

/// Checks every fragment in `dir` against `manifest`, naming the first that is missing or wrong.
pub fn verify_fragments(dir: &Path, manifest: &Manifest) -> Result<(), JoinError> {
    for f in &manifest.fragments {
        let path = dir.join(&f.name);
        let size = fs::metadata(&path)
            .map_err(|source| JoinError::MissingFragment {
                name: f.name.clone(),
                source,
            })?
            .len();
        let corrupt = |detail: String| JoinError::CorruptFragment {
            name: f.name.clone(),
            detail,
        };
        if size != f.size {
            return Err(corrupt(format!(
                "{size} bytes, the manifest says {}",
                f.size
            )));
        }
        let hashed = hash_file(&path, manifest.chunk_size).map_err(|e| corrupt(e.to_string()))?;
        if hashed.hash != f.blake3 {
            return Err(corrupt(format!(
                "blake3 {}, the manifest says {}",
                hashed.hash, f.blake3
            )));
        }
    }
    Ok(())
}

/// Joins the fragments of the split in `dir` into `opts.out`.
pub fn join(dir: &Path, opts: &JoinOptions) -> Result<JoinReport, JoinError> {
    let manifest = read_manifest(dir)?;
    verify_fragments(dir, &manifest)?;
    if opts.out.exists() && !opts.force {
        return Err(JoinError::OutputExists(opts.out.clone()));
    }
    let out_dir = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = opts
        .out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "joined.mp4".into());
    let pid = std::process::id();
    let partial = TempFile(out_dir.join(format!(".{pid}.partial.{file_name}")));
    let durations = file_durations(dir, &manifest, &opts.tools)?;
    let list = write_concat_list(dir, &manifest, &durations)?;

    let mut args: Vec<std::ffi::OsString> = ["-f", "concat", "-i"].map(Into::into).to_vec();
    args.push(file_url(&list.path().join(CONCAT_LIST)));
    args.extend(["-map", "0", "-c", "copy"].map(Into::into));
    if has_mp4_extension(&file_name) {
        args.extend(["-f", "mp4"].map(Into::into));
    }
    args.push(file_url(&partial.0));
    opts.tools.ffmpeg(&args)?;

    let joined = probe(&opts.tools, &partial.0).map_err(|e| match e {
        SplitError::Tool(t) => JoinError::Tool(t),
        other => JoinError::CorruptFragment {
            name: "(joined output)".into(),
            detail: other.to_string(),
        },
    })?;
    if joined.frame_count() != manifest.source.frame_count {
        return Err(JoinError::FrameCountMismatch {
            expected: manifest.source.frame_count,
            got: joined.frame_count(),
        });
    }
    fs::rename(&partial.0, &opts.out).map_err(|source| JoinError::Io {
        what: "cannot write",
        path: opts.out.clone(),
        source,
    })?;
    Ok(JoinReport {
        video_id: manifest.video_id,
        frame_count: joined.frame_count(),
        fragments: manifest.fragments.len(),
    })
}

fn has_mp4_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4") || e.eq_ignore_ascii_case("m4v"))
}

const CONCAT_LIST: &str = "concat.txt";

/// How long each fragment lasts in the joined file's timeline, so that every fragment's first video
/// frame lands exactly where it was in the source (its `start` in the manifest), whatever the
/// fragment's own last frame (unknown in a re-encoded variable-rate fragment) or audio packets
/// (which run past the video) say. The concat demuxer places each file's earliest stream at the
/// sum of the durations before it, so a fragment whose video starts late in its own file (audio
/// that begins before the video, as in the source) is accounted for by that lead.
fn file_durations(dir: &Path, manifest: &Manifest, tools: &Tools) -> Result<Vec<f64>, JoinError> {
    let leads = crate::par::map(&manifest.fragments, |_, f| {
        crate::probe::video_lead(tools, &dir.join(&f.name)).map_err(|e| match e {
            SplitError::Tool(t) => JoinError::Tool(t),
            other => JoinError::CorruptFragment {
                name: f.name.clone(),
                detail: other.to_string(),
            },
        })
    })
    .ok_or_else(|| JoinError::CorruptFragment {
        name: "(all)".into(),
        detail: "a probing thread panicked".into(),
    })?
    .into_iter()
    .collect::<Result<Vec<f64>, _>>()?;
    // Where each file must start: its video's source time, less its own lead; the first at 0.
    let starts: Vec<f64> = manifest
        .fragments
        .iter()
        .zip(&leads)
        .map(|(f, lead)| f.start - lead + leads[0])
        .collect();
    Ok((0..starts.len())
        .map(|i| match starts.get(i + 1) {
            Some(next) => next - starts[i],
            None => manifest.fragments[i].duration + leads[i],
        })
        .collect())
}

/// A temp dir holding the concat demuxer's script and, named `0.mp4`, `1.mp4`, .., a symlink to
/// each fragment: the script names only those plain relative names, which the demuxer resolves
/// next to the script (and accepts in its default safe mode).
fn write_concat_list(
    dir: &Path,
    manifest: &Manifest,
    durations: &[f64],
) -> Result<tempfile::TempDir, JoinError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| JoinError::Io {
            what: "cannot write",
            path,
            source,
        }
    };
    let fragments = std::path::absolute(dir).map_err(io(dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".vidswarm-join-")
        .tempdir()
        .map_err(io(&std::env::temp_dir()))?;
    let mut text = String::from("ffconcat version 1.0\n");
    for (i, f) in manifest.fragments.iter().enumerate() {
        let link = tmp.path().join(format!("{i}.mp4"));
        std::os::unix::fs::symlink(fragments.join(&f.name), &link).map_err(io(&link))?;
        text.push_str(&format!("file '{i}.mp4'\nduration {:.6}\n", durations[i]));
    }
    let list = tmp.path().join(CONCAT_LIST);
    File::create(&list)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(io(&list))?;
    Ok(tmp)
}

/// Removed on drop, whether the join succeeded (then it was renamed away) or not.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
