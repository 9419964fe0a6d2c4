//! `vidswarm fetch`: join the swarm as a peer, fetch a video (or some fragments), write them as a
//! split dir, optionally keep serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use libp2p::Multiaddr;
use tokio::sync::broadcast::error::RecvError;
use vidswarm_proto::{parse_fragment_name, Manifest, VideoId};

use super::eventlog::rate;
use super::media::human_bytes;
use super::node_cmd::shutdown_signal;
use crate::events::NodeEvent;
use crate::fetch::FetchOptions;
use crate::node::{Node, NodeConfig};

pub struct FetchArgs {
    pub video: String,
    pub fragments: Vec<String>,
    pub bootstrap: Vec<Multiaddr>,
    pub listen: Vec<Multiaddr>,
    pub out: PathBuf,
    pub data: Option<PathBuf>,
    pub seed_after: u64,
    pub timeout: u64,
    pub swarm_key: Option<libp2p::pnet::PreSharedKey>,
    pub min_free: u64,
    pub resume_every: u64,
    pub max_upload_rate: Option<u64>,
}

pub async fn run(args: FetchArgs) -> anyhow::Result<()> {
    let video: VideoId = args
        .video
        .parse()
        .with_context(|| format!("{:?} is not a video id", args.video))?;
    let indices = parse_fragments(&args.fragments)?;
    if args.bootstrap.is_empty() {
        bail!("give at least one --bootstrap address of a node in the swarm");
    }
    // Without --data the store lives inside the out dir, on its filesystem: fragments are then
    // hard-linked into place, written once. It goes when the fetch succeeds; a fetch that was
    // killed finds it again and keeps the fragments it had.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let inner_store = args.data.is_none().then(|| args.out.join(INNER_STORE));
    let data = args
        .data
        .clone()
        .or(inner_store.clone())
        .unwrap_or_default();
    let mut cfg = NodeConfig::new(&data);
    if !args.listen.is_empty() {
        cfg.listen = args.listen;
    }
    cfg.bootstrap = args.bootstrap;
    cfg.net.swarm_key = args.swarm_key;
    cfg.net.max_upload_rate = args.max_upload_rate;
    cfg.auto_fetch = false;
    cfg.resume_fetches = false;
    cfg.space.min_free = args.min_free;
    cfg.space.resume_every = args.resume_every;
    cfg.fetch.provide = args.seed_after > 0;
    let node = Node::start(cfg)
        .await
        .context("cannot start the fetching peer")?;
    let store = node.store().clone();
    let progress = tokio::spawn(show_progress(node.client().subscribe(), move |v| {
        store.manifest(v).map(|m| (*m).clone())
    }));

    let opts = FetchOptions {
        fragments: indices.clone(),
        stall_timeout: Duration::from_secs(args.timeout.max(1)),
        // A fetch that leaves when done puts no records in the DHT (they would outlive it by
        // hours); one that stays to seed does.
        provide: args.seed_after > 0,
        ..FetchOptions::default()
    };
    let result = node.fetch(video, &opts).await;
    progress.abort();
    if result.is_err() && node.store().usage().is_ok_and(|bytes| bytes == 0) {
        // Nothing worth resuming from (no fragment, no verified chunk): leave no store behind.
        if let Some(inner) = &inner_store {
            node.service().stop(crate::node::SHUTDOWN_WITHIN).await;
            let _ = std::fs::remove_dir_all(inner);
        }
    }
    let unreachable = node.unreachable_bootstrap();
    let report = result
        .map_err(anyhow::Error::from)
        .map_err(|e| match unreachable.as_slice() {
            [] => e,
            // Name what could not be reached: "asked 0 peers" alone does not say why.
            list => {
                let why: Vec<String> = list.iter().map(|(a, r)| format!("{a}: {r}")).collect();
                e.context(format!(
                    "could not reach bootstrap address(es): {}",
                    why.join("; ")
                ))
            }
        })
        .with_context(|| format!("cannot fetch video {video}"))?;

    let (out, list) = (args.out.clone(), indices.clone());
    node.store()
        .call(move |s| s.link_fragments(&video, &out, list.as_deref()))
        .await
        .with_context(|| format!("cannot write the fragments to {}", args.out.display()))?;
    let mut from: Vec<String> = report
        .per_peer
        .iter()
        .map(|(p, b)| format!("{} from {p}", human_bytes(*b)))
        .collect();
    from.sort();
    println!(
        "fetched {} fragment(s) of video {} ({}, {} already held) in {:.2} s ({}) into {}",
        report.fetched.len(),
        video.short(),
        human_bytes(report.bytes),
        report.already_held,
        report.elapsed.as_secs_f64(),
        rate(report.bytes, report.elapsed.as_millis() as u64),
        args.out.display()
    );
    for line in from {
        println!("  {line}");
    }
    if args.seed_after > 0 {
        println!("seeding for {} s (Ctrl-C stops)", args.seed_after);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.seed_after)) => {}
            _ = shutdown_signal() => {}
        }
    }
    node.shutdown(crate::node::SHUTDOWN_WITHIN).await;
    if let Some(inner) = inner_store {
        // The fragments stay, as links in the out dir.
        std::fs::remove_dir_all(&inner)
            .with_context(|| format!("cannot remove the fetch's store {}", inner.display()))?;
    }
    Ok(())
}

/// Where `vidswarm fetch` keeps its store inside the out dir when not given `--data`.
const INNER_STORE: &str = ".vidswarm-store";

/// `--fragment 3` or `--fragment fragment_3.mp4`.
pub(super) fn parse_fragments(list: &[String]) -> anyhow::Result<Option<Vec<u32>>> {
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|s| {
            s.parse::<u32>()
                .ok()
                .or_else(|| parse_fragment_name(s))
                .with_context(|| {
                    format!("{s:?} is neither a fragment index nor a name like fragment_3.mp4")
                })
        })
        .collect::<anyhow::Result<Vec<u32>>>()
        .map(Some)
}

/// A bar per fragment being fetched and one for all of them, fed by the node's events;
/// `manifest` gives the sizes (from the local store, or from a remote node).
pub(super) async fn show_progress(
    mut rx: tokio::sync::broadcast::Receiver<NodeEvent>,
    manifest: impl Fn(&VideoId) -> Option<Manifest>,
) {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut total: Option<ProgressBar> = None;
    let mut per_fragment: HashMap<u32, ProgressBar> = HashMap::new();
    loop {
        match rx.recv().await {
            Ok(NodeEvent::FetchStarted {
                video,
                missing,
                resumed,
            }) => {
                let Some(m) = manifest(&video) else {
                    continue;
                };
                let sum: u64 = missing.iter().map(|i| m.fragments[*i as usize].size).sum();
                let t = bars.add(ProgressBar::new(sum).with_style(style.clone()));
                t.set_prefix("all");
                // A fetch that goes on from an earlier one's verified chunks starts there.
                t.set_position(resumed.iter().sum());
                t.reset_eta();
                total = Some(t);
                for (n, i) in missing.into_iter().enumerate() {
                    let b = bars.add(
                        ProgressBar::new(m.fragments[i as usize].size).with_style(style.clone()),
                    );
                    b.set_prefix(format!("fragment {i}"));
                    b.set_position(resumed.get(n).copied().unwrap_or(0));
                    per_fragment.insert(i, b);
                }
            }
            Ok(NodeEvent::ChunkReceived {
                fragment, bytes, ..
            }) => {
                if let Some(b) = per_fragment.get(&fragment) {
                    b.inc(u64::from(bytes));
                }
                if let Some(t) = &total {
                    t.inc(u64::from(bytes));
                }
            }
            Ok(NodeEvent::FragmentStored { fragment, .. }) => {
                if let Some(b) = per_fragment.get(&fragment) {
                    b.finish();
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
