//! `vidswarm demo`: the README's main command. In one process, on 127.0.0.1 with port 0: split the
//! shipped video into fragments, start a swarm of nodes, seed the fragments round-robin across
//! them (as the original student system did), let the nodes find and fetch what they miss, then
//! check every node holds every fragment with the right hash and the video joined from one node's
//! fragments plays.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::sync::broadcast::error::RecvError;
use vidswarm_proto::Manifest;
use vidswarm_splitter::{JoinOptions, ModeChoice, SplitOptions, Tools};

use super::eventlog::{log_events, PeerNames};
use super::media::{human_bytes, print_manifest};
use crate::events::NodeEvent;
use crate::node::{Node, NodeConfig};

/// The demo video, made by `assets/make-demo-video.sh`, built into the binary so the demo runs
/// from anywhere (a container included).
const DEMO_VIDEO: &[u8] = include_bytes!("../../../assets/demo.mp4");

pub struct DemoArgs {
    pub video: Option<PathBuf>,
    pub fragments: u32,
    pub nodes: usize,
    pub work: Option<PathBuf>,
    pub timeout: u64,
}

/// What one node received, for the summary table.
#[derive(Default, Clone)]
struct Tally {
    fetched: BTreeSet<u32>,
    bytes: u64,
    from: BTreeSet<libp2p::PeerId>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    ensure!(args.nodes >= 2, "the demo needs at least 2 nodes");
    let started = Instant::now();
    let (work, _temp) = super::dir_or_temp(args.work.clone())?;
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let tools = Tools::from_env();
    let split_dir = work.join("split");
    let manifest = split_step(&args, &work, &split_dir, &tools).await?;

    println!("\n== 2. start {} nodes on 127.0.0.1", args.nodes);
    let nodes = start_nodes(args.nodes, &work).await?;
    let names = PeerNames(
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.peer_id(), format!("node{i}")))
            .collect(),
    );
    let tallies: Arc<Mutex<HashMap<usize, Tally>>> = Arc::default();
    let mut followers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        followers.push(tokio::spawn(log_events(
            n.client().subscribe(),
            format!("node{i} | "),
            names.clone(),
        )));
        followers.push(tokio::spawn(tally(
            n.client().subscribe(),
            i,
            tallies.clone(),
        )));
    }

    println!(
        "\n== 3. seed fragment i on node (i mod {}) and let the swarm spread them",
        args.nodes
    );
    let spread = spread_step(&args, &nodes, &manifest, &split_dir).await?;

    println!("\n== 4. verify every node's copy and join one");
    verify_and_join(&nodes, &manifest, &work, &tools).await?;

    println!(
        "\n== summary: video {} spread to {} nodes in {:.2} s",
        manifest.video_id.short(),
        nodes.len(),
        spread.as_secs_f64()
    );
    let tallies = tallies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    print_summary(&args, &nodes, &tallies, &names);
    println!(
        "\ndemo OK in {:.1} s: every node holds all {} fragments, each verified by BLAKE3",
        started.elapsed().as_secs_f64(),
        manifest.fragments.len()
    );
    // The nodes' goodbyes to each other are not part of the demo's log.
    for follower in followers {
        follower.abort();
    }
    let stops = nodes
        .into_iter()
        .map(|node| node.shutdown(crate::node::SHUTDOWN_WITHIN));
    futures::future::join_all(stops).await;
    Ok(())
}

/// Step 1: the given video (or the built-in one) split into `args.fragments` in `split_dir`.
async fn split_step(
    args: &DemoArgs,
    work: &Path,
    split_dir: &Path,
    tools: &Tools,
) -> anyhow::Result<Manifest> {
    let video = match &args.video {
        Some(v) => v.clone(),
        None => {
            let path = work.join("demo.mp4");
            std::fs::write(&path, DEMO_VIDEO)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    println!(
        "== 1. split {} into {} fragments",
        video.display(),
        args.fragments
    );
    let mut opts = SplitOptions::new(split_dir);
    opts.fragments = args.fragments;
    opts.mode = ModeChoice::Auto;
    opts.force = true;
    opts.tools = tools.clone();
    let video_path = video.clone();
    let report = tokio::task::spawn_blocking(move || vidswarm_splitter::split(&video_path, &opts))
        .await?
        .with_context(|| format!("cannot split {}", video.display()))?;
    println!(
        "mode: {} ({:.2} s)",
        report.reason,
        report.elapsed.as_secs_f64()
    );
    print_manifest(&report.manifest);
    Ok(report.manifest)
}

/// Step 2: `n` loopback nodes, each bootstrapped from the first.
async fn start_nodes(n: usize, work: &Path) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let mut cfg = NodeConfig::loopback(work.join(format!("node{i}")));
        cfg.announce_every = Duration::from_secs(2);
        if let Some(first) = nodes.first() {
            cfg.bootstrap = vec![first.listen_addrs()[0].clone()];
        }
        let node = Node::start(cfg)
            .await
            .with_context(|| format!("cannot start node{i}"))?;
        println!("node{i}: {}", node.listen_addrs()[0]);
        nodes.push(node);
    }
    Ok(nodes)
}

/// Step 3: seeds fragment i on node i mod N, publishes, and waits until every node holds all.
async fn spread_step(
    args: &DemoArgs,
    nodes: &[Node],
    manifest: &Manifest,
    split_dir: &Path,
) -> anyhow::Result<Duration> {
    let fetch_started = Instant::now();
    for (i, node) in nodes.iter().enumerate() {
        let mine: Vec<u32> = (0..args.fragments)
            .filter(|f| *f as usize % args.nodes == i)
            .collect();
        node.seed(manifest, split_dir, &mine)
            .await
            .with_context(|| format!("cannot seed node{i}"))?;
    }
    // Only now tell the swarm, so no node fetches what it is about to be seeded with.
    for node in nodes {
        node.publish(&manifest.video_id).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut events = nodes[0].client().subscribe();
    loop {
        let held: Vec<usize> = nodes
            .iter()
            .map(|n| {
                manifest
                    .fragments
                    .iter()
                    .filter(|f| n.store().has_fragment(&f.blake3))
                    .count()
            })
            .collect();
        if held.iter().all(|&h| h == manifest.fragments.len()) {
            return Ok(fetch_started.elapsed());
        }
        if Instant::now() >= deadline {
            bail!(
                "after {} s the nodes hold {held:?} of {} fragments",
                args.timeout,
                manifest.fragments.len()
            );
        }
        // Wake on any event of node 0 or at least every 200 ms to re-check every node.
        tokio::select! {
            e = events.recv() => if let Err(RecvError::Closed) = e { bail!("node0 stopped") },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Step 4: every node's copy exported (re-hashed against the manifest), the last one joined and
/// decoded.
async fn verify_and_join(
    nodes: &[Node],
    manifest: &Manifest,
    work: &Path,
    tools: &Tools,
) -> anyhow::Result<()> {
    for (i, node) in nodes.iter().enumerate() {
        let dir = work.join(format!("exported/node{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let id = manifest.video_id;
        // Export re-reads and re-hashes every fragment against the manifest.
        node.store()
            .call(move |s| s.export_video(&id, &dir))
            .await
            .with_context(|| format!("node{i}'s copy does not verify"))?;
    }
    let last = nodes.len() - 1;
    let joined = work.join("joined.mp4");
    let (dir, out, t) = (
        work.join(format!("exported/node{last}")),
        joined.clone(),
        tools.clone(),
    );
    let join = tokio::task::spawn_blocking(move || {
        vidswarm_splitter::join(
            &dir,
            &JoinOptions {
                out,
                force: true,
                tools: t,
            },
        )
    })
    .await?
    .context("cannot join the fragments")?;
    let errors = tools.decode_errors(&joined)?;
    ensure!(
        errors.trim().is_empty(),
        "the joined video does not decode cleanly: {errors}"
    );
    println!(
        "joined node{last}'s fragments into {} ({} frames, decodes cleanly)",
        joined.display(),
        join.frame_count
    );
    Ok(())
}

fn print_summary(
    args: &DemoArgs,
    nodes: &[Node],
    tallies: &HashMap<usize, Tally>,
    names: &PeerNames,
) {
    println!(
        "{:>6}  {:>14}  {:>6}  {:>8}  {:>10}  from",
        "node", "peer", "seeded", "fetched", "received"
    );
    for (i, node) in nodes.iter().enumerate() {
        let t = tallies.get(&i).cloned().unwrap_or_default();
        let seeded = (0..args.fragments)
            .filter(|f| *f as usize % args.nodes == i)
            .count();
        let peer = node.peer_id().to_string();
        let from: Vec<String> = t.from.iter().map(|p| names.name(p)).collect();
        println!(
            "{:>6}  {:>14}  {:>6}  {:>8}  {:>10}  {}",
            format!("node{i}"),
            format!("…{}", &peer[peer.len() - 12..]),
            seeded,
            t.fetched.len(),
            human_bytes(t.bytes),
            from.join(", ")
        );
    }
}

async fn tally(
    mut rx: tokio::sync::broadcast::Receiver<NodeEvent>,
    node: usize,
    tallies: Arc<Mutex<HashMap<usize, Tally>>>,
) {
    loop {
        match rx.recv().await {
            Ok(NodeEvent::FragmentStored {
                fragment,
                bytes,
                from,
                ..
            }) => {
                let mut map = tallies.lock().unwrap_or_else(|p| p.into_inner());
                let t = map.entry(node).or_default();
                t.fetched.insert(fragment);
                t.bytes += bytes;
                t.from.extend(from);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
