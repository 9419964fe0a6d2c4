//! The splitter: turns a video into exactly N fragments that each play on their own, and joins
//! fragments back into one video. It drives `ffmpeg` and `ffprobe` as child processes; it is the
//! only code in vidswarm that runs them.
//!
//! - [`tools`]: locating and running ffmpeg/ffprobe, with their stderr in every error.
//! - [`probe`]: what ffprobe says about a file (streams, duration, every video frame's time).
//! - [`plan`]: where to cut, and whether the source's keyframes allow a lossless copy (pure).
//! - [`cut`]: the ffmpeg run that makes the planned cuts, on frame numbers.
//! - [`split`]: running the cut, verifying the fragments, hashing them, writing the manifest.
//! - `output`: the output dir, locked while a split writes it, and its staging dir.
//! - [`join`]: verifying a manifest's fragments and concatenating them (stream copy).

pub mod cut;
pub mod error;
pub mod join;
mod output;
mod par;
pub mod plan;
pub mod probe;
pub mod split;
pub mod tools;

pub use error::{JoinError, SplitError, ToolError};
pub use join::{join, read_manifest, verify_fragments, JoinOptions, JoinReport};
pub use plan::{ModeChoice, Plan};
pub use probe::{probe, Probe};
pub use split::{split, SplitOptions, SplitReport};
pub use tools::Tools;
