//! Everything a user relies on after a split, checked on real files: exactly N fragments, each
//! decoding cleanly on its own with its audio, frame counts that add up to the source's, a manifest
//! that verifies, and a join that restores the frame count and the duration within one frame.

use std::path::Path;

use vidswarm_proto::SplitMode;
use vidswarm_splitter::{
    join, read_manifest, split, verify_fragments, JoinOptions, ModeChoice, SplitOptions,
};

use super::sources::decode;

/// Splits `video` into `n` with `mode` and checks the result; `frame_time` is one frame's
/// duration in seconds (the tolerance of the joined duration). Returns the mode that ran and the
/// manifest's codec string.
pub fn check_split(
    video: &Path,
    n: u32,
    mode: ModeChoice,
    frame_time: f64,
) -> Result<(SplitMode, Option<String>), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = work.path().join("split");
    let mut opts = SplitOptions::new(&out);
    opts.fragments = n;
    opts.mode = mode;
    let report = split(video, &opts).map_err(|e| format!("split: {e}"))?;
    let source = decode(video);
    ensure(source.errors.is_empty(), || {
        format!("the source does not decode: {}", source.errors)
    })?;

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .map_err(|e| e.to_string())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    names.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("fragment_{i}.mp4")).collect();
    expected.push("manifest.json".into());
    expected.sort();
    ensure(names == expected, || {
        format!("the split dir holds {names:?}")
    })?;

    let mut total = 0;
    for (i, planned) in report.manifest.fragments.iter().enumerate() {
        let got = decode(&out.join(&planned.name));
        ensure(got.errors.is_empty(), || {
            format!("fragment {i} does not decode: {}", got.errors)
        })?;
        ensure(got.frames == planned.frame_count, || {
            format!(
                "fragment {i} decodes to {} frames, the manifest says {}",
                got.frames, planned.frame_count
            )
        })?;
        ensure(got.frames > 0, || format!("fragment {i} is empty"))?;
        // Fragmented MP4 that opens with its init segment, naming the manifest's codecs.
        let bytes = std::fs::read(out.join(&planned.name)).map_err(|e| e.to_string())?;
        let init = vidswarm_proto::mp4::init_segment_len(&bytes)
            .ok_or_else(|| format!("fragment {i} is not a fragmented MP4"))?;
        let codecs = vidswarm_proto::mp4::codecs(&bytes[..init]);
        ensure(codecs == report.manifest.codecs, || {
            format!(
                "fragment {i} has codecs {codecs:?}, the manifest {:?}",
                report.manifest.codecs
            )
        })?;
        ensure(got.audio == source.audio, || {
            format!(
                "fragment {i}: audio {} , the source {}",
                got.audio, source.audio
            )
        })?;
        total += got.frames;
    }
    ensure(total == source.frames, || {
        format!(
            "the fragments hold {total} frames, the source {}",
            source.frames
        )
    })?;
    ensure(report.manifest.source.frame_count == source.frames, || {
        format!(
            "the manifest says {} frames, the source decodes to {}",
            report.manifest.source.frame_count, source.frames
        )
    })?;

    let manifest = read_manifest(&out).map_err(|e| e.to_string())?;
    ensure(manifest == report.manifest, || {
        "the manifest on disk differs from the report".into()
    })?;
    verify_fragments(&out, &manifest).map_err(|e| e.to_string())?;

    let joined = work.path().join("joined.mp4");
    let jopts = JoinOptions {
        out: joined.clone(),
        force: false,
        tools: vidswarm_splitter::Tools::from_env(),
    };
    join(&out, &jopts).map_err(|e| format!("join: {e}"))?;
    let whole = decode(&joined);
    ensure(whole.errors.is_empty(), || {
        format!("the joined video does not decode: {}", whole.errors)
    })?;
    ensure(whole.frames == source.frames, || {
        format!(
            "the joined video has {} frames, the source {}",
            whole.frames, source.frames
        )
    })?;
    ensure(
        (whole.span - source.span).abs() <= frame_time + 1e-3,
        || {
            format!(
                "the joined video spans {:.4} s, the source {:.4} s",
                whole.span, source.span
            )
        },
    )?;
    ensure(whole.audio == source.audio, || {
        "the joined video lost its audio".into()
    })?;
    Ok((report.manifest.mode, report.manifest.codecs))
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}
