//! Pins: the videos a node keeps whatever its budget, because someone here asked for them: what
//! was published here (a split imported, a manifest or a loose upload put over HTTP) and what was
//! fetched on request (the CLI, `POST /videos/{id}/fetch`, a viewer). What auto-fetch brings is
//! not pinned: it can be evicted, least recently used first (`space.rs`, the service's budget).
//!
//! A pin is an empty file `ROOT/pins/<video id>`, created durably before the call returns, so it
//! survives a crash and needs no parsing. A pin may name a video whose manifest is not here
//! (yet): a requested fetch pins before it has the manifest.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::PoisonError;

use vidswarm_proto::VideoId;

use super::error::{io_err, StoreError};
use super::write::sync_dir;
use super::{Store, MANIFESTS};

pub(super) const PINS: &str = "pins";

impl Store {
    /// Pins `video` (durably): it is never evicted nor collected until [`Store::unpin`].
    pub fn pin(&self, video: &VideoId) -> Result<(), StoreError> {
        if self.is_pinned(video) {
            return Ok(());
        }
        let dir = self.inner.root.join(PINS);
        let path = dir.join(video.to_string());
        fs::File::create(&path).map_err(io_err("create", &path))?;
        sync_dir(&dir)?;
        self.pins_mut().insert(*video);
        Ok(())
    }

    /// Unpins `video`; whether it was pinned.
    pub fn unpin(&self, video: &VideoId) -> Result<bool, StoreError> {
        let dir = self.inner.root.join(PINS);
        let path = dir.join(video.to_string());
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        Ok(self.pins_mut().remove(video))
    }

    pub fn is_pinned(&self, video: &VideoId) -> bool {
        self.inner
            .pins
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(video)
    }

    fn pins_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<VideoId>> {
        self.inner
            .pins
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pins of the data dir at `root`. A data dir from before pins existed has no `pins/`: every
/// video it holds was kept for ever then, so every one is pinned now (nothing is lost to an
/// upgrade).
pub(super) fn load(root: &Path) -> Result<HashSet<VideoId>, StoreError> {
    let dir = root.join(PINS);
    if !dir.exists() {
        let tmp = root.join(format!("{PINS}.new"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        let manifests = root.join(MANIFESTS);
        for entry in fs::read_dir(&manifests).map_err(io_err("list", &manifests))? {
            let entry = entry.map_err(io_err("list", &manifests))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if id.parse::<VideoId>().is_ok() {
                let path = tmp.join(id);
                fs::File::create(&path).map_err(io_err("create", &path))?;
            }
        }
        sync_dir(&tmp)?;
        fs::rename(&tmp, &dir).map_err(io_err("rename", &tmp))?;
        sync_dir(root)?;
    }
    let mut pins = HashSet::new();
    for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
        let entry = entry.map_err(io_err("list", &dir))?;
        match entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            Some(id) => {
                pins.insert(id);
            }
            None => {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removed: not a pin");
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(pins)
}
