//! What the store takes of the disk, and what it could give back: bytes held, free space on the
//! data dir's file system, and which videos are least recently used (for eviction).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::PoisonError;
use std::time::SystemTime;

use vidswarm_proto::{Hash, VideoId};

use super::error::StoreError;
use super::Store;

/// A video eviction could remove, and what removing it would free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evictable {
    pub video: VideoId,
    /// When it last arrived or was read (a chunk served to a peer, a fragment played).
    pub last_used: SystemTime,
    /// Bytes of its fragments that no other video held here lists.
    pub frees: u64,
}

impl Store {
    /// Bytes of the fragments held, and of the partial fragments (the blocks their chunks
    /// take so far: they are sparse).
    pub fn usage(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for h in self.fragment_hashes()? {
            total += self.fragment_size(&h).unwrap_or(0);
        }
        let partial: Vec<Hash> = self.lock_partial_files().keys().copied().collect();
        for h in partial {
            total += allocated(&super::resume::paths(self.root(), &h).0);
        }
        Ok(total)
    }

    /// Bytes an unprivileged writer can still put on the data dir's file system; `None` where it
    /// cannot be told.
    pub fn free_space(&self) -> Option<u64> {
        free_space(&self.inner.root)
    }

    /// The free space no write may take (`--min-free`); 0 until set.
    pub fn set_reserve(&self, bytes: u64) {
        self.inner
            .reserve
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of newly verified chunks after which a fetch saves its resume record
    /// (`resume.rs`); 0 saves after every chunk.
    pub fn set_resume_every(&self, bytes: u64) {
        self.inner
            .resume_every
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn resume_every(&self) -> u64 {
        self.inner
            .resume_every
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fails with [`StoreError::NoRoom`] if writing `more` bytes would leave less free than the
    /// reserve.
    pub fn check_reserve(&self, more: u64) -> Result<(), StoreError> {
        let reserve = self
            .inner
            .reserve
            .load(std::sync::atomic::Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        match self.free_space() {
            Some(free) if free < reserve.saturating_add(more) => {
                Err(StoreError::NoRoom { free, reserve })
            }
            _ => Ok(()),
        }
    }

    /// Notes that fragment `h` was just read, for least-recently-used eviction.
    pub(super) fn touch(&self, h: &Hash) {
        let mut touched = self
            .inner
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        touched.insert(*h, SystemTime::now());
    }

    /// The videos held that are not pinned and not `in_use`, least recently used first.
    pub fn evictable(&self, in_use: &dyn Fn(&VideoId) -> bool) -> Vec<Evictable> {
        let manifests = self.manifests();
        let mut listed: HashMap<Hash, usize> = HashMap::new();
        for m in &manifests {
            let unique: HashSet<Hash> = m.fragments.iter().map(|f| f.blake3).collect();
            for h in unique {
                *listed.entry(h).or_default() += 1;
            }
        }
        let touched = self
            .inner
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out: Vec<Evictable> = manifests
            .iter()
            .filter(|m| !self.is_pinned(&m.video_id) && !in_use(&m.video_id))
            .map(|m| {
                let arrived = std::fs::metadata(self.manifest_file(&m.video_id))
                    .and_then(|md| md.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let last_used = m
                    .fragments
                    .iter()
                    .filter_map(|f| touched.get(&f.blake3).copied())
                    .fold(arrived, SystemTime::max);
                let unique: HashSet<Hash> = m
                    .fragments
                    .iter()
                    .map(|f| f.blake3)
                    .filter(|h| listed.get(h) == Some(&1))
                    .collect();
                let frees = unique
                    .iter()
                    .map(|h| self.fragment_size(h).unwrap_or(0))
                    .sum();
                Evictable {
                    video: m.video_id,
                    last_used,
                    frees,
                }
            })
            .collect();
        out.sort_by_key(|e| (e.last_used, e.video));
        out
    }
}

/// The bytes of disk the file at `path` takes (0 if it cannot be told).
pub(super) fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the size statvfs writes.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_space(_: &Path) -> Option<u64> {
    None
}
