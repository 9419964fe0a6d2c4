//! `vidswarm demo`: the README's main command. For now it shows the foundation end to end on the
//! shipped video: split into playable fragments, keep them in a node's store, export them and join
//! them back, checking each step. (The swarm issue turns this into an in-process swarm.)

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};
use vidswarm_splitter::{JoinOptions, ModeChoice, SplitOptions, Tools};

use super::media::{human_bytes, print_manifest};
use crate::store::Store;

/// The demo video, made by `assets/make-demo-video.sh`, built into the binary so the demo runs
/// from anywhere (a container included).
const DEMO_VIDEO: &[u8] = include_bytes!("../../../assets/demo.mp4");

pub fn run(video: Option<PathBuf>, fragments: u32, work: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let temp;
    let work = match work {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let video = match video {
        Some(v) => v,
        None => {
            let path = work.join("demo.mp4");
            std::fs::write(&path, DEMO_VIDEO)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    let tools = Tools::from_env();

    println!("== 1. split {} into {fragments} fragments", video.display());
    let split_dir = work.join("split");
    let mut opts = SplitOptions::new(&split_dir);
    opts.fragments = fragments;
    opts.mode = ModeChoice::Auto;
    opts.force = true;
    opts.tools = tools.clone();
    let report = vidswarm_splitter::split(&video, &opts)
        .with_context(|| format!("cannot split {}", video.display()))?;
    println!(
        "mode: {} ({:.2} s)",
        report.reason,
        report.elapsed.as_secs_f64()
    );
    print_manifest(&report.manifest);
    let video_id = report.manifest.video_id;

    println!("\n== 2. import the split into a node's store");
    let data = work.join("node-data");
    let (store, _) = Store::open(&data).context("cannot open the demo store")?;
    let imported = store
        .import_split_dir(&split_dir)
        .context("cannot import the split")?;
    println!("{imported}");

    println!("\n== 3. export from the store and join");
    let exported = work.join("exported");
    let _ = std::fs::remove_dir_all(&exported);
    store
        .export_video(&video_id, &exported)
        .context("cannot export from the store")?;
    let joined = work.join("joined.mp4");
    let join = vidswarm_splitter::join(
        &exported,
        &JoinOptions {
            out: joined.clone(),
            force: true,
            tools: tools.clone(),
        },
    )
    .context("cannot join the exported fragments")?;
    ensure!(
        join.frame_count == report.manifest.source.frame_count,
        "the joined video has {} frames, the source {}",
        join.frame_count,
        report.manifest.source.frame_count
    );
    let errors = tools.decode_errors(&joined)?;
    ensure!(
        errors.trim().is_empty(),
        "the joined video does not decode cleanly: {errors}"
    );
    let size = std::fs::metadata(&joined).map(|m| m.len()).unwrap_or(0);
    println!(
        "joined {} ({}, {} frames, decodes cleanly)",
        joined.display(),
        human_bytes(size),
        join.frame_count
    );

    println!(
        "\ndemo OK in {:.1} s: {} fragments, every one verified by BLAKE3, video {}",
        started.elapsed().as_secs_f64(),
        report.manifest.fragments.len(),
        video_id.short()
    );
    Ok(())
}
