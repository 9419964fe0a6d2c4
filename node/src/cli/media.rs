//! `vidswarm split` and `vidswarm join`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use vidswarm_proto::Manifest;
use vidswarm_splitter::{JoinOptions, SplitOptions, Tools};

pub fn split(video: &Path, opts: SplitOptions) -> anyhow::Result<()> {
    let report = vidswarm_splitter::split(video, &opts)
        .with_context(|| format!("cannot split {}", video.display()))?;
    println!(
        "split {} into {} fragments in {} in {:.2} s",
        video.display(),
        report.manifest.fragments.len(),
        opts.out.display(),
        report.elapsed.as_secs_f64()
    );
    println!("mode: {}", report.reason);
    print_manifest(&report.manifest);
    Ok(())
}

pub fn join(dir: &Path, out: PathBuf, force: bool) -> anyhow::Result<()> {
    let opts = JoinOptions {
        out,
        force,
        tools: Tools::from_env(),
    };
    let report = vidswarm_splitter::join(dir, &opts)
        .with_context(|| format!("cannot join the fragments in {}", dir.display()))?;
    println!(
        "joined {} verified fragments of video {} into {} ({} frames)",
        report.fragments,
        report.video_id,
        opts.out.display(),
        report.frame_count
    );
    Ok(())
}

/// The manifest as a table a person can read.
pub fn print_manifest(m: &Manifest) {
    println!("video id: {}", m.video_id);
    println!(
        "source: {} ({}, {:.2} s, {} frames)",
        m.source.name,
        human_bytes(m.source.size),
        m.source.duration,
        m.source.frame_count
    );
    println!(
        "{:>5}  {:>8}  {:>8}  {:>6}  {:>10}  blake3",
        "#", "start", "duration", "frames", "size"
    );
    for f in &m.fragments {
        println!(
            "{:>5}  {:>8.3}  {:>8.3}  {:>6}  {:>10}  {}",
            f.index,
            f.start,
            f.duration,
            f.frame_count,
            human_bytes(f.size),
            f.blake3.short()
        );
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
