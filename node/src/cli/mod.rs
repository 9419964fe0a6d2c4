//! The command line: clap options (help text in doc comments), one function per subcommand.

mod demo;
mod eventlog;
mod fetch_cmd;
mod media;
mod node_cmd;
mod remote;
mod remote_cmd;
mod size;
mod store_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use libp2p::Multiaddr;
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
        /// The unit of transfer and verification, in KiB: peers trade a fragment chunk by
        /// chunk, each checked against its hash in the manifest.
        #[arg(long, default_value_t = vidswarm_proto::DEFAULT_CHUNK_SIZE / 1024,
              value_parser = clap::value_parser!(u32).range(16..=4096))]
        chunk_kib: u32,
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
    /// Run a node: join the swarm, serve what it holds, fetch what peers announce.
    Node(node_cmd::NodeArgs),
    /// Fetch a video (or some fragments) from the swarm into a split dir (`vidswarm join` works on it).
    Fetch {
        /// The video id (the manifest's `video_id`).
        video: String,
        /// Only this fragment, by index or name (fragment_3.mp4); repeatable.
        #[arg(long = "fragment")]
        fragments: Vec<String>,
        /// Address of a node in the swarm; repeatable.
        #[arg(long, env = "VIDSWARM_BOOTSTRAP", value_delimiter = ',')]
        bootstrap: Vec<Multiaddr>,
        /// Instead of joining the swarm, have the node with this HTTP API fetch the video (its
        /// progress shown from the node's events), then download it from that node.
        #[arg(long, conflicts_with_all = ["bootstrap", "data", "listen", "seed_after"])]
        node: Option<String>,
        /// Bearer token for --node, if the node wants one.
        #[arg(long, env = "VIDSWARM_API_TOKEN", hide_env_values = true)]
        api_token: Option<String>,
        /// Where to write manifest.json and fragment_{i}.mp4.
        #[arg(short, long, default_value = "fetched")]
        out: PathBuf,
        /// Keep the fetched data in this data dir. Default: OUT/.vidswarm-store, removed once the
        /// fetch succeeds (a killed fetch finds it again and keeps what it had). Fragments are
        /// hard-linked from the store into OUT when both are on one filesystem, else copied.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to listen on while fetching (others fetch from us too).
        #[arg(long)]
        listen: Vec<Multiaddr>,
        /// Keep serving for this many seconds after the fetch.
        #[arg(long, default_value_t = 0)]
        seed_after: u64,
        /// Give up after this many seconds without progress.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The private swarm's key file (Kubo's `swarm.key` format); see `vidswarm node --help`.
        #[arg(long, env = "VIDSWARM_SWARM_KEY", conflicts_with = "node")]
        swarm_key: Option<PathBuf>,
        /// Free space on the disk that the fetch does not take (a size like 512M; 0 for none).
        #[arg(long, env = "VIDSWARM_MIN_FREE", default_value = "512M", value_parser = size::parse_size, conflicts_with = "node")]
        min_free: u64,
        /// Bytes of verified chunks after which the fetch saves what it has (a fetch killed
        /// and started again goes on from there); see `vidswarm node --help`.
        #[arg(long, env = "VIDSWARM_RESUME_EVERY", default_value = "4M", value_parser = size::parse_size, conflicts_with = "node")]
        resume_every: u64,
        /// Upload at most this many bytes per second while seeding (`--seed-after`) or
        /// fetching; see `vidswarm node --help`.
        #[arg(long, env = "VIDSWARM_MAX_UPLOAD_RATE", value_parser = size::parse_size, conflicts_with = "node")]
        max_upload_rate: Option<u64>,
    },
    /// Print a new private swarm key (Kubo's `swarm.key` format) for `--swarm-key FILE`.
    SwarmKey,
    /// Show a running node's state through its HTTP API; exits non-zero if it does not answer.
    Status {
        /// The node's HTTP API.
        #[arg(long, env = "VIDSWARM_NODE", default_value = "http://127.0.0.1:8000")]
        node: String,
        /// Only check that the node answers (a health check).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove a video from a running node (its pin, manifest and the fragments no other video
    /// there lists); its peers are told the node no longer holds it.
    Delete {
        /// The video id.
        video: vidswarm_proto::VideoId,
        /// The node's HTTP API.
        #[arg(long, env = "VIDSWARM_NODE", default_value = "http://127.0.0.1:8000")]
        node: String,
        /// Bearer token, if the node wants one.
        #[arg(long, env = "VIDSWARM_API_TOKEN", hide_env_values = true)]
        api_token: Option<String>,
    },
    /// Split a video on this machine and upload it (manifest and fragments) to a running node.
    Publish {
        /// The video to split and upload.
        video: PathBuf,
        /// The node's HTTP API.
        #[arg(long, env = "VIDSWARM_NODE", default_value = "http://127.0.0.1:8000")]
        node: String,
        /// How many fragments.
        #[arg(short = 'n', long, default_value_t = 10)]
        fragments: u32,
        /// copy, reencode, or auto (copy when possible).
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: ModeChoice,
        /// Bearer token, if the node wants one.
        #[arg(long, env = "VIDSWARM_API_TOKEN", hide_env_values = true)]
        api_token: Option<String>,
    },
    /// The demo: an in-process swarm on 127.0.0.1 spreads the shipped video, verified end to end.
    Demo {
        /// Use this video instead of the shipped one.
        #[arg(long)]
        video: Option<PathBuf>,
        /// How many fragments.
        #[arg(short = 'n', long, default_value_t = 10)]
        fragments: u32,
        /// How many nodes.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Keep the demo's files here instead of a temporary directory.
        #[arg(long)]
        work: Option<PathBuf>,
        /// Give up if the swarm has not spread the video after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

fn parse_mode(s: &str) -> Result<ModeChoice, String> {
    s.parse()
}

/// Parses the command line and runs the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let opts = Opts::parse();
    match opts.command {
        Command::Split {
            video,
            fragments,
            out,
            mode,
            force,
            no_verify_decode,
            chunk_kib,
        } => {
            init_logging("warn");
            let mut opts = vidswarm_splitter::SplitOptions::new(out);
            opts.fragments = fragments;
            opts.mode = mode;
            opts.force = force;
            opts.verify_decode = !no_verify_decode;
            opts.chunk_size = chunk_kib * 1024;
            media::split(&video, opts)
        }
        Command::Join { dir, out, force } => {
            init_logging("warn");
            media::join(&dir, out, force)
        }
        Command::Add { split_dir, data } => {
            init_logging("warn");
            store_cmd::add(&split_dir, &data)
        }
        Command::Node(args) => {
            init_logging(EVENT_LOG);
            runtime()?.block_on(node_cmd::run(args))
        }
        Command::Fetch {
            video,
            fragments,
            node: Some(node),
            api_token,
            out,
            ..
        } => {
            init_logging("warn");
            let api = remote::Api::new(&node, api_token)?;
            let video: vidswarm_proto::VideoId = video
                .parse()
                .with_context(|| format!("{video:?} is not a video id"))?;
            let fragments = fetch_cmd::parse_fragments(&fragments)?;
            runtime()?.block_on(remote_cmd::fetch(&api, video, fragments, &out))
        }
        Command::SwarmKey => {
            use std::io::Read;
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .context("cannot read random bytes from /dev/urandom")?;
            let text = libp2p::pnet::PreSharedKey::new(key).to_string();
            println!("{}", text.trim_end());
            Ok(())
        }
        Command::Status { node, quiet } => {
            init_logging("warn");
            let api = remote::Api::new(&node, None)?;
            runtime()?.block_on(remote_cmd::status(&api, quiet))
        }
        Command::Delete {
            video,
            node,
            api_token,
        } => {
            init_logging("warn");
            let api = remote::Api::new(&node, api_token)?;
            runtime()?.block_on(remote_cmd::delete(&api, video))
        }
        Command::Publish {
            video,
            node,
            fragments,
            mode,
            api_token,
        } => {
            init_logging("warn");
            let api = remote::Api::new(&node, api_token)?;
            runtime()?
                .block_on(remote_cmd::publish(&api, &video, fragments, mode))
                .map(|_| ())
        }
        Command::Fetch {
            video,
            fragments,
            bootstrap,
            out,
            data,
            listen,
            seed_after,
            timeout,
            swarm_key,
            min_free,
            resume_every,
            max_upload_rate,
            ..
        } => {
            init_logging("warn");
            let swarm_key = swarm_key
                .as_deref()
                .map(node_cmd::read_swarm_key)
                .transpose()?;
            runtime()?.block_on(fetch_cmd::run(fetch_cmd::FetchArgs {
                video,
                fragments,
                bootstrap,
                listen,
                out,
                data,
                seed_after,
                timeout,
                swarm_key,
                min_free,
                resume_every,
                max_upload_rate,
            }))
        }
        Command::Demo {
            video,
            fragments,
            nodes,
            work,
            timeout,
        } => {
            init_logging(EVENT_LOG);
            runtime()?.block_on(demo::run(demo::DemoArgs {
                video,
                fragments,
                nodes,
                work,
                timeout,
            }))
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The human event log (target `vidswarm`) at info; the crates' own diagnostics at warn.
const EVENT_LOG: &str = "vidswarm=info,vidswarm_node=warn,vidswarm_splitter=warn,warn";

/// `dir`, or a new temporary directory that lives as long as the returned guard.
fn dir_or_temp(dir: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(dir) => Ok((dir, None)),
        None => {
            let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // A few blocking threads are enough for chunk hashing and disk I/O; hundreds of them (tokio's
    // default ceiling) would each grow their own malloc arena and inflate memory.
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Diagnostics go to stderr through tracing (`VIDSWARM_LOG` or `RUST_LOG`, default `info`;
/// `VIDSWARM_LOG_FORMAT=json` for JSON lines); stdout carries only what the command produces.
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("VIDSWARM_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // JSON lines for log collectors (`VIDSWARM_LOG_FORMAT=json`); readable lines otherwise.
    let _ = if std::env::var("VIDSWARM_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().with_current_span(true).try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init()
    };
}
