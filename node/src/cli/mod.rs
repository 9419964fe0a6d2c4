//! The command line: clap options (help text in doc comments), one function per subcommand.

mod demo;
mod media;
mod store_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vidswarm_splitter::ModeChoice;

/// vidswarm: peer-to-peer exchange of playable video fragments.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Opts {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Split a video into N fragments that each play on their own, plus manifest.json.
    Split {
        /// The video to split.
        video: PathBuf,
        /// How many fragments.
        #[arg(short = 'n', long, default_value_t = 10)]
        fragments: u32,
        /// Where to write fragment_{i}.mp4 and manifest.json.
        #[arg(short, long, default_value = "fragments")]
        out: PathBuf,
        /// copy (lossless, needs keyframes near the cuts), reencode, or auto (copy when possible).
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: ModeChoice,
        /// Write into an output directory that is not empty.
        #[arg(long)]
        force: bool,
        /// Skip decoding every fragment after the split (faster; frame counts are still checked).
        #[arg(long)]
        no_verify_decode: bool,
    },
    /// Join the fragments described by DIR/manifest.json back into one video (stream copy).
    Join {
        /// A directory holding manifest.json and the fragments.
        dir: PathBuf,
        /// The video to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Import a split (manifest.json and fragments, each verified) into a node's data dir.
    Add {
        /// A directory written by `vidswarm split`.
        split_dir: PathBuf,
        /// The node's data directory.
        #[arg(long, env = "VIDSWARM_DATA")]
        data: PathBuf,
    },
    /// Run the demo on the video shipped with vidswarm: split, store, export, join, verify.
    Demo {
        /// Use this video instead of the shipped one.
        #[arg(long)]
        video: Option<PathBuf>,
        /// How many fragments.
        #[arg(short = 'n', long, default_value_t = 10)]
        fragments: u32,
        /// Keep the demo's files here instead of a temporary directory.
        #[arg(long)]
        work: Option<PathBuf>,
    },
}

fn parse_mode(s: &str) -> Result<ModeChoice, String> {
    s.parse()
}

/// Parses the command line and runs the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let opts = Opts::parse();
    init_logging();
    match opts.command {
        Command::Split {
            video,
            fragments,
            out,
            mode,
            force,
            no_verify_decode,
        } => media::split(&video, fragments, out, mode, force, !no_verify_decode),
        Command::Join { dir, out, force } => media::join(&dir, out, force),
        Command::Add { split_dir, data } => store_cmd::add(&split_dir, &data),
        Command::Demo {
            video,
            fragments,
            work,
        } => demo::run(video, fragments, work),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Diagnostics go to stderr through tracing (`VIDSWARM_LOG` or `RUST_LOG`, default `info`);
/// stdout carries only what the command produces.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("VIDSWARM_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
