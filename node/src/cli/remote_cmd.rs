//! `vidswarm status`, `vidswarm publish` and `vidswarm fetch --node`: the CLI as a client of a
//! running node's HTTP API (see `remote.rs` for the client itself).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use vidswarm_proto::{Manifest, VideoId};
use vidswarm_splitter::{ModeChoice, SplitOptions};

use super::media::human_bytes;
use super::remote::{failure_status, Api};
use crate::events::NodeEvent;

/// `vidswarm delete VIDEO --node URL`: the node removes the video (pinned or not) and tells
/// its peers it no longer holds it.
pub async fn delete(api: &Api, video: vidswarm_proto::VideoId) -> anyhow::Result<()> {
    let deleted: Value = api
        .json(api.delete(&format!("/api/v1/videos/{video}")))
        .await?;
    println!(
        "deleted video {video} from {}: {} fragment(s), {} bytes freed",
        api.base(),
        deleted["fragments_removed"],
        deleted["bytes_freed"]
    );
    Ok(())
}

/// `vidswarm status --node URL`: who the node is, its peers, its videos and fetches. Fails
/// (exit status 1) when the node does not answer: usable as a container health check.
pub async fn status(api: &Api, quiet: bool) -> anyhow::Result<()> {
    let health: Value = api.json(api.get("/health")).await?;
    if quiet {
        return Ok(());
    }
    let info: Value = api.json(api.get("/api/v1/info")).await?;
    let peers: Vec<Value> = api.json(api.get("/api/v1/peers")).await?;
    let videos: Value = api.json(api.get("/api/v1/videos")).await?;
    let fetches: Vec<Value> = api.json(api.get("/api/v1/fetches")).await?;
    println!(
        "node {} (vidswarm {}) at {}: {}",
        info["peer_id"].as_str().unwrap_or("?"),
        info["version"].as_str().unwrap_or("?"),
        api.base(),
        health["status"].as_str().unwrap_or("?")
    );
    for addr in info["addresses"].as_array().into_iter().flatten() {
        println!("  listening on {}", addr.as_str().unwrap_or("?"));
    }
    println!("peers: {} connected", peers.len());
    for v in videos["videos"].as_array().into_iter().flatten() {
        let fragments = v["fragments"].as_array().cloned().unwrap_or_default();
        let held = fragments.iter().filter(|f| f["held"] == true).count();
        let holders: Vec<String> = fragments
            .iter()
            .map(|f| f["peers"].as_array().map_or(0, Vec::len).to_string())
            .collect();
        println!(
            "video {} {:?}: {held}/{} fragments held here; peers holding each: [{}]",
            short(v["video_id"].as_str().unwrap_or("?")),
            v["name"].as_str().unwrap_or("?"),
            fragments.len(),
            holders.join(" ")
        );
    }
    for v in videos["announced"].as_array().into_iter().flatten() {
        println!(
            "video {}: announced by peers, not held",
            short(v.as_str().unwrap_or("?"))
        );
    }
    for f in &fetches {
        println!(
            "fetch of {}: {} ({}/{} fragments, {})",
            short(f["video_id"].as_str().unwrap_or("?")),
            f["state"].as_str().unwrap_or("?"),
            f["done"].as_array().map_or(0, Vec::len),
            f["wanted"].as_array().map_or(0, Vec::len),
            human_bytes(f["bytes"].as_u64().unwrap_or(0))
        );
    }
    Ok(())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// `vidswarm publish VIDEO --node URL`: split on this machine, upload the manifest and every
/// fragment the node lacks (each verified by the node as it arrives), with progress.
pub async fn publish(
    api: &Api,
    video: &Path,
    fragments: u32,
    mode: ModeChoice,
) -> anyhow::Result<VideoId> {
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut opts = SplitOptions::new(work.path().join("split"));
    opts.fragments = fragments;
    opts.mode = mode;
    let input = video.to_owned();
    let report = tokio::task::spawn_blocking(move || vidswarm_splitter::split(&input, &opts))
        .await?
        .with_context(|| format!("cannot split {}", video.display()))?;
    let m = report.manifest;
    eprintln!(
        "split {} into {} fragments in {:.2} s ({})",
        video.display(),
        m.fragments.len(),
        report.elapsed.as_secs_f64(),
        report.reason
    );
    let stored: Value = api
        .json(
            api.post("/api/v1/videos")
                .header(CONTENT_TYPE, "application/json")
                .body(m.to_json_pretty()),
        )
        .await
        .context("the node refused the manifest")?;
    let missing: Vec<u32> = stored["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()))
        .collect();
    let total: u64 = missing
        .iter()
        .filter_map(|i| m.fragment(*i))
        .map(|f| f.size)
        .sum();
    let bar = ProgressBar::new(total).with_style(bar_style());
    let started = Instant::now();
    for &index in &missing {
        let f = m
            .fragment(index)
            .context("the node named a fragment the manifest lacks")?;
        bar.set_prefix(f.name.clone());
        let file = tokio::fs::File::open(work.path().join("split").join(&f.name))
            .await
            .with_context(|| format!("cannot open {}", f.name))?;
        let counted = bar.clone();
        let body = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                counted.inc(bytes.len() as u64);
            }
        });
        api.send(
            api.put(&format!("/api/v1/videos/{}/fragments/{index}", m.video_id))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, f.size)
                .body(reqwest::Body::wrap_stream(body)),
        )
        .await
        .with_context(|| format!("the node refused {}", f.name))?;
    }
    bar.finish_and_clear();
    println!(
        "published video {} ({} fragments, {} uploaded in {:.2} s, {} held already) to {}",
        m.video_id,
        m.fragments.len(),
        human_bytes(total),
        started.elapsed().as_secs_f64(),
        m.fragments.len() - missing.len(),
        api.base()
    );
    Ok(m.video_id)
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>16} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// `vidswarm fetch --node URL VIDEO`: the node fetches from the swarm (progress from its
/// `/events`), then the fragments are downloaded from it into `out`, each checked by hash.
pub async fn fetch(
    api: &Api,
    video: VideoId,
    fragments: Option<Vec<u32>>,
    out: &Path,
) -> anyhow::Result<()> {
    // Subscribe before asking, so no event of this fetch is missed.
    let mut events = api.events().await?;
    let body = serde_json::json!({ "fragments": fragments });
    let asked = api
        .send(
            api.post(&format!("/api/v1/videos/{video}/fetch"))
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await;
    match asked {
        Ok(_) => {}
        // Someone (auto-fetch, say) is fetching it already: follow that fetch.
        Err(e) if failure_status(&e) == Some(StatusCode::CONFLICT) => {}
        Err(e) => return Err(e.context(format!("the node would not fetch {video}"))),
    }
    let (tx, _) = broadcast::channel(1024);
    let manifest: Arc<Mutex<Option<Manifest>>> = Arc::default();
    let lookup = manifest.clone();
    let progress = tokio::spawn(super::fetch_cmd::show_progress(
        tx.subscribe(),
        move |_: &VideoId| lookup.lock().ok().and_then(|m| m.clone()),
    ));
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let state = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { continue };
                if matches!(&event, NodeEvent::FetchStarted { video: v, .. } if *v == video) {
                    // The bars need the sizes: the node holds the manifest by now.
                    if let Ok(m) = get_manifest(api, video).await {
                        *manifest.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                    }
                }
                let _ = tx.send(event);
            }
            _ = poll.tick() => {
                let status: Value = api.json(api.get(&format!("/api/v1/videos/{video}/fetch"))).await?;
                match status["state"].as_str() {
                    Some("running") | None => {}
                    Some(_) => break status,
                }
            }
        }
    };
    progress.abort();
    if state["state"] != "completed" {
        bail!(
            "the node could not fetch {video}: {}",
            state["error"].as_str().unwrap_or("unknown error")
        );
    }
    download(api, video, fragments.as_deref(), out).await
}

async fn get_manifest(api: &Api, video: VideoId) -> anyhow::Result<Manifest> {
    let bytes = api
        .send(api.get(&format!("/api/v1/videos/{video}/manifest")))
        .await?
        .bytes()
        .await?;
    let m = Manifest::from_json(&bytes).context("the node sent an invalid manifest")?;
    if m.video_id != video {
        bail!("the node sent the manifest of another video");
    }
    Ok(m)
}

/// Writes the manifest and the wanted fragments into `out` as a split dir, each fragment
/// streamed to a temp file, checked against the manifest's hash, then renamed into place.
async fn download(
    api: &Api,
    video: VideoId,
    wanted: Option<&[u32]>,
    out: &Path,
) -> anyhow::Result<()> {
    let m = get_manifest(api, video).await?;
    tokio::fs::create_dir_all(out)
        .await
        .with_context(|| format!("cannot create {}", out.display()))?;
    let mut bytes = 0;
    for f in m
        .fragments
        .iter()
        .filter(|f| wanted.is_none_or(|w| w.contains(&f.index)))
    {
        let path = out.join(&f.name);
        let partial: PathBuf = out.join(format!(".{}.partial", f.name));
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut body = api
            .send(api.get(&format!("/api/v1/videos/{video}/fragments/{}", f.index)))
            .await?
            .bytes_stream();
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("the download of {} broke off", f.name))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        if vidswarm_proto::Hash::from(hasher.finalize()) != f.blake3 {
            let _ = tokio::fs::remove_file(&partial).await;
            bail!("{} from the node does not match its hash", f.name);
        }
        tokio::fs::rename(&partial, &path).await?;
        bytes += f.size;
    }
    tokio::fs::write(out.join("manifest.json"), m.to_json_pretty()).await?;
    println!(
        "fetched video {} through {}: {} into {}",
        video.short(),
        api.base(),
        human_bytes(bytes),
        out.display()
    );
    Ok(())
}
