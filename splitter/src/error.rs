//! One error enum per operation; each says what went wrong in words a user can act on.

use std::path::PathBuf;

use vidswarm_proto::ManifestError;

/// Running ffmpeg or ffprobe failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "{tool} was not found (looked for {path:?}); install it, e.g. `sudo apt-get install -y ffmpeg` \
         on Debian/Ubuntu, or point {env} at it"
    )]
    Missing {
        tool: &'static str,
        path: PathBuf,
        env: &'static str,
    },
    #[error("could not run {tool}: {source}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{tool} printed output we could not read: {detail}")]
    BadOutput { tool: &'static str, detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{path} is not a video ffprobe can read: {detail}")]
    NotAVideo { path: PathBuf, detail: String },
    #[error("{path} has no video stream")]
    NoVideoStream { path: PathBuf },
    #[error("the number of fragments must be at least 1")]
    ZeroFragments,
    #[error("cannot cut {frames} video frame(s) into {fragments} fragments: each fragment needs at least one frame")]
    TooManyFragments { fragments: u32, frames: u64 },
    #[error(
        "{fragments} fragments of {seconds:.3} s would not each hold their audio (its packets last \
         {audio_ms:.0} ms; a fragment needs two): this video can be split into at most {max}"
    )]
    TooShortForAudio {
        fragments: u32,
        seconds: f64,
        audio_ms: f64,
        max: u32,
    },
    #[error("at most {max} fragments are allowed, {fragments} were asked for")]
    FragmentLimit { fragments: u32, max: u32 },
    #[error(
        "copy mode cannot give {fragments} fragments: {reason}; use --mode reencode (or auto)"
    )]
    CopyImpossible { fragments: u32, reason: String },
    #[error("output directory {0} exists and is not empty; pass --force to write into it anyway")]
    OutputNotEmpty(PathBuf),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ffmpeg wrote {got} fragment(s), {expected} were planned: {detail}")]
    WrongFragmentCount {
        expected: u32,
        got: u32,
        detail: String,
    },
    #[error("another split is writing into {0}; wait for it to finish or choose another --out")]
    OutputBusy(PathBuf),
    #[error("fragment {index} failed verification: {detail}")]
    BadFragment { index: u32, detail: String },
    #[error("the fragments hold {got} video frames, the source {expected}")]
    FrameCountMismatch { expected: u64, got: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot read manifest {path}: {source}")]
    ReadManifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid: {source}")]
    BadManifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("fragment {name} is missing: {source}")]
    MissingFragment {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fragment {name} does not match the manifest: {detail}")]
    CorruptFragment { name: String, detail: String },
    #[error("output {0} already exists; pass --force to replace it")]
    OutputExists(PathBuf),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the joined video has {got} video frames, the manifest says {expected}")]
    FrameCountMismatch { expected: u64, got: u64 },
}
