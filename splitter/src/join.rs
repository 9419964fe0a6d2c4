//! Joining: check every fragment against the manifest (size and BLAKE3), then concatenate them
//! with ffmpeg's concat demuxer (stream copy) into a temp file renamed into place, and check the
//! result holds the source's frame count.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use vidswarm_proto::{Manifest, VideoId, MAX_MANIFEST_BYTES};

use crate::probe::probe;
use crate::split::hash_file;
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
    let list = TempFile(out_dir.join(format!(".{file_name}.{pid}.concat.txt")));
    let partial = TempFile(out_dir.join(format!(".{pid}.partial.{file_name}")));
    write_concat_list(&list.0, dir, &manifest)?;

    let mut args: Vec<std::ffi::OsString> = ["-f", "concat", "-safe", "0", "-i"]
        .map(Into::into)
        .to_vec();
    args.push(list.0.clone().into());
    args.extend(["-map", "0", "-c", "copy"].map(Into::into));
    if has_mp4_extension(&file_name) {
        args.extend(["-f", "mp4"].map(Into::into));
    }
    args.push(partial.0.clone().into());
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

/// The concat demuxer's script: one `file '...'` line per fragment, absolute paths, with single
/// quotes escaped the way the demuxer reads them.
fn write_concat_list(path: &Path, dir: &Path, manifest: &Manifest) -> Result<(), JoinError> {
    let io = |source| JoinError::Io {
        what: "cannot write",
        path: path.to_owned(),
        source,
    };
    let dir = fs::canonicalize(dir).map_err(io)?;
    let mut text = String::from("ffconcat version 1.0\n");
    for f in &manifest.fragments {
        let full = dir.join(&f.name);
        let quoted = full.to_string_lossy().replace('\'', r"'\''");
        text.push_str(&format!("file '{quoted}'\n"));
    }
    File::create(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(io)
}

/// Removed on drop, whether the join succeeded (then it was renamed away) or not.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
