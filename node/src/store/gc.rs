//! Taking things out of the store: a whole video ([`Store::remove_video`], for `DELETE` and
//! eviction) and what nothing references any more ([`Store::collect_garbage`]): manifests of
//! videos nobody pinned of which no fragment is held (an auto-fetch that failed, junk
//! announced by a peer), and fragments that no manifest held lists (a replaced upload's, a
//! crashed import's).
//!
//! Fragments are shared between videos (content addressing), so a fragment goes only when no
//! manifest left lists it. A video in use (a fetch of it runs) is never collected.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::sync::PoisonError;

use vidswarm_proto::{Hash, VideoId};

use super::error::{io_err, StoreError};
use super::write::sync_dir;
use super::{Store, FRAGMENTS, MANIFESTS};

/// What a removal or a collection took out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub manifests: Vec<VideoId>,
    pub fragments: Vec<Hash>,
    pub bytes: u64,
}

impl Store {
    /// Removes `video`: its pin, its manifest, and its fragments that no other video held here
    /// lists. `None` if neither the video nor a pin of it was here.
    pub fn remove_video(&self, video: &VideoId) -> Result<Option<Removed>, StoreError> {
        let _gc = self.gc_exclusive();
        let was_pinned = self.unpin(video)?;
        let _no_manifest_put = self.lock_manifests();
        if self.manifest(video).is_none() {
            return Ok(was_pinned.then(Removed::default));
        }
        let mut removed = Removed::default();
        self.remove_manifest(video)?;
        removed.manifests.push(*video);
        self.remove_unlisted(&mut removed)?;
        Ok(Some(removed))
    }

    /// Removes what nothing references: manifests not pinned, not `in_use`, of which no
    /// fragment is held or being downloaded; then fragments no manifest lists.
    pub fn collect_garbage(
        &self,
        in_use: &dyn Fn(&VideoId) -> bool,
    ) -> Result<Removed, StoreError> {
        let mut removed = Removed::default();
        let _gc = self.gc_exclusive();
        let _no_manifest_put = self.lock_manifests();
        for m in self.manifests() {
            let video = m.video_id;
            // A fragment being downloaded counts: its verified chunks are served already.
            let empty = !m
                .fragments
                .iter()
                .any(|f| self.has_fragment(&f.blake3) || self.partials().get(&f.blake3).is_some());
            if empty && !self.is_pinned(&video) && !in_use(&video) {
                self.remove_manifest(&video)?;
                removed.manifests.push(video);
            }
        }
        self.remove_unlisted(&mut removed)?;
        if !removed.manifests.is_empty() || !removed.fragments.is_empty() {
            tracing::info!(
                manifests = removed.manifests.len(),
                fragments = removed.fragments.len(),
                bytes = removed.bytes,
                "collected garbage"
            );
        }
        Ok(removed)
    }

    /// Keeps garbage collection and removals from running while the guard lives: for a write of
    /// several steps whose fragments land before the manifest that lists them.
    pub(super) fn hold_off_gc(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.inner
            .gc_guard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn gc_exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.inner
            .gc_guard
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock `put_manifest` takes. Removals hold it throughout: a fragment is unlisted only if
    /// no manifest lists it, and a manifest put meanwhile (with a fragment committed for it just
    /// after) would make that answer wrong.
    fn lock_manifests(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .put_manifest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes the manifest of `video` (durably) and forgets it. The caller holds
    /// [`Store::lock_manifests`].
    fn remove_manifest(&self, video: &VideoId) -> Result<(), StoreError> {
        let path = self.manifest_file(video);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.inner.root.join(MANIFESTS))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        let mut manifests = self
            .inner
            .manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        manifests.remove(video);
        let mut sizes = HashMap::new();
        for m in manifests.values() {
            super::note_chunk_sizes(&mut sizes, m);
        }
        *self
            .inner
            .chunk_sizes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = sizes;
        Ok(())
    }

    /// Deletes the partial fragments at rest that no manifest held lists (a fetch writing one
    /// is left alone), adding their bytes to `removed`.
    fn remove_unlisted_partials(
        &self,
        listed: &HashSet<Hash>,
        removed: &mut Removed,
    ) -> Result<(), StoreError> {
        let mut files = self.lock_partial_files();
        let unlisted: Vec<Hash> = files
            .iter()
            .filter(|(h, r)| r.is_some() && !listed.contains(*h))
            .map(|(h, _)| *h)
            .collect();
        for h in unlisted {
            removed.bytes += super::space::allocated(&super::resume::paths(self.root(), &h).0);
            super::resume::remove(self.root(), &h)?;
            files.remove(&h);
            self.partials().end(&h, super::partial::End::Abandoned);
        }
        Ok(())
    }

    /// Deletes the fragments no manifest held lists, adding them to `removed`. The caller holds
    /// [`Store::lock_manifests`].
    fn remove_unlisted(&self, removed: &mut Removed) -> Result<(), StoreError> {
        let listed: HashSet<Hash> = self
            .manifests()
            .iter()
            .flat_map(|m| m.fragments.iter().map(|f| f.blake3))
            .collect();
        let before = removed.fragments.len();
        for h in self.fragment_hashes()? {
            if listed.contains(&h) {
                continue;
            }
            let path = self.fragment_file(&h);
            let size = self.fragment_size(&h).unwrap_or(0);
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed.fragments.push(h);
                    removed.bytes += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        self.remove_unlisted_partials(&listed, removed)?;
        if removed.fragments.len() > before {
            sync_dir(&self.inner.root.join(FRAGMENTS))?;
            let mut touched = self
                .inner
                .touched
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for h in &removed.fragments[before..] {
                touched.remove(h);
            }
        }
        Ok(())
    }
}
