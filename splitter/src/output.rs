//! The output dir of a split: claimed under a lock for the whole split, written through a hidden
//! staging dir, published with the manifest last.
//!
//! A split killed at any point (even `kill -9`) leaves nothing that stops the next one: a staging
//! dir is removed by the next split into the same dir (the dir's lock says no split is running),
//! and fragments without a manifest are an interrupted split, which a new split may overwrite.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use vidswarm_proto::{parse_fragment_name, Manifest};

use crate::SplitError;

/// Staging dirs are named `.vidswarm-split-PID`.
const STAGING_PREFIX: &str = ".vidswarm-split-";
const MANIFEST: &str = "manifest.json";

/// Fails unless `out` may receive a split: missing, empty, holding only an interrupted split
/// (fragments and no manifest) or staging dirs, or anything at all with `force`. Reads only.
pub(crate) fn check_output_dir(out: &Path, force: bool) -> Result<(), SplitError> {
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io("cannot read output directory", out, source)),
    };
    if force {
        return Ok(());
    }
    let mut fragments = 0usize;
    for entry in entries {
        let name = entry
            .map_err(|e| io("cannot read output directory", out, e))?
            .file_name();
        let name = name.to_string_lossy();
        if name.starts_with(STAGING_PREFIX) {
            continue;
        }
        if parse_fragment_name(&name).is_none() {
            // A manifest means a finished split; anything else is the user's.
            return Err(SplitError::OutputNotEmpty(out.to_owned()));
        }
        fragments += 1;
    }
    if fragments > 0 {
        tracing::info!(dir = %out.display(), fragments, "output dir holds an interrupted split (fragments, no manifest); replacing it");
    }
    Ok(())
}

/// The output dir, locked (an advisory lock on the dir itself) until dropped, so two splits never
/// write into one dir and a staging dir found there belongs to a split that is gone.
pub(crate) struct OutputDir {
    path: PathBuf,
    _lock: File,
    /// This split made the dir: it is removed again if the split leaves it empty.
    created: bool,
}

impl OutputDir {
    pub(crate) fn claim(out: &Path, force: bool) -> Result<Self, SplitError> {
        let created = !out.exists();
        fs::create_dir_all(out).map_err(|e| io("cannot create output directory", out, e))?;
        let lock = File::open(out).map_err(|e| io("cannot open output directory", out, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(SplitError::OutputBusy(out.to_owned()));
            }
            Err(TryLockError::Error(e)) => {
                return Err(io("cannot lock output directory", out, e));
            }
        }
        let dir = Self {
            path: out.to_owned(),
            _lock: lock,
            created,
        };
        dir.remove_stale_staging()?;
        check_output_dir(out, force)?;
        Ok(dir)
    }

    fn remove_stale_staging(&self) -> Result<(), SplitError> {
        let entries = fs::read_dir(&self.path)
            .map_err(|e| io("cannot read output directory", &self.path, e))?;
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                tracing::info!(path = %entry.path().display(), "removing the staging dir of an interrupted split");
                remove_dir_settled(&entry.path())
                    .map_err(|e| io("cannot remove stale staging dir", &entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// A fresh staging dir inside the output dir, for ffmpeg to write into.
    pub(crate) fn staging(&self) -> Result<Staging, SplitError> {
        let path = self
            .path
            .join(format!("{STAGING_PREFIX}{}", std::process::id()));
        let staging = Staging { path };
        staging.clear()?;
        Ok(staging)
    }

    /// Moves the fragments into the output dir, drops stale fragments a forced re-split would
    /// leave, then writes the manifest: a dir with fragments and no manifest is an interrupted
    /// split.
    pub(crate) fn publish(&self, staging: &Staging, manifest: &Manifest) -> Result<(), SplitError> {
        let out = &self.path;
        for f in &manifest.fragments {
            let (from, to) = (staging.path.join(&f.name), out.join(&f.name));
            fs::rename(&from, &to).map_err(|e| io("cannot move fragment to", &to, e))?;
        }
        let n = manifest.fragments.len() as u32;
        for entry in fs::read_dir(out)
            .map_err(|e| io("cannot list", out, e))?
            .flatten()
        {
            let name = entry.file_name();
            if parse_fragment_name(&name.to_string_lossy()).is_some_and(|i| i >= n) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let tmp = staging.path.join(MANIFEST);
        let mut file = File::create(&tmp).map_err(|e| io("cannot write", &tmp, e))?;
        file.write_all(&manifest.to_json_pretty())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write", &tmp, e))?;
        let dest = out.join(MANIFEST);
        fs::rename(&tmp, &dest).map_err(|e| io("cannot write", &dest, e))
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.created {
            // Succeeds only when empty: a failed split into a new dir leaves no dir behind.
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// A hidden dir inside the output dir where ffmpeg writes; removed whatever happens (and, after a
/// `kill -9`, by the next split into the same dir).
pub(crate) struct Staging {
    pub(crate) path: PathBuf,
}

impl Staging {
    pub(crate) fn clear(&self) -> Result<(), SplitError> {
        let _ = fs::remove_dir_all(&self.path);
        fs::create_dir(&self.path).map_err(|e| io("cannot create", &self.path, e))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> SplitError {
    SplitError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Removes `dir`, trying again for a moment when something still creates files in it: a tool
/// child of a killed split gets its SIGKILL as its parent dies, but may finish one last write.
fn remove_dir_settled(dir: &Path) -> std::io::Result<()> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => return other,
        }
    }
}
