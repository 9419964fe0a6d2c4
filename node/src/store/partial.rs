//! Fragments being downloaded, readable chunk by chunk as each chunk is verified: a viewer is
//! sent a fragment while it arrives, not after (`GET /api/v1/videos/{id}/fragments/{i}`). A
//! fragment whose fetch stopped rests here with its verified chunks (`resume.rs`): peers are
//! still served those, and the next fetch takes it up.
//!
//! Only chunks whose hash matched the manifest are marked readable, and a chunk is marked after
//! its bytes are written, so a reader never sees a byte that was not verified. The reader keeps
//! its own handle on the temp file: a commit renames the file (same bytes), an abandoned
//! download ends the stream with an error.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use vidswarm_proto::Hash;

/// How a partial fragment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Whole and verified: every chunk is readable.
    Committed,
    /// The download stopped (failed, cancelled): what was not verified never will be.
    Abandoned,
}

#[derive(Debug, Clone)]
pub struct PartialState {
    pub verified: Vec<bool>,
    pub end: Option<End>,
}

/// One fragment being written, or at rest.
#[derive(Debug)]
pub struct Partial {
    /// While a fetch writes it, a handle that stays valid when the commit renames the file (a
    /// viewer streams it to the end). At rest, `None`: each read opens `path`, so fragments at
    /// rest, however many, hold no file descriptors.
    file: Option<File>,
    path: PathBuf,
    size: u64,
    chunk_size: u32,
    state: watch::Sender<PartialState>,
}

impl Partial {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn chunks(&self) -> u32 {
        vidswarm_proto::chunk_count(self.size, self.chunk_size) as u32
    }

    pub fn subscribe(&self) -> watch::Receiver<PartialState> {
        self.state.subscribe()
    }

    /// The bytes at `offset..offset + len` if they are one whole chunk that is verified: what a
    /// peer may be served from a fragment still being fetched. `None` otherwise.
    pub fn read_verified(&self, offset: u64, len: u32) -> Option<std::io::Result<Vec<u8>>> {
        let k = offset / u64::from(self.chunk_size);
        let range = vidswarm_proto::chunk_range(self.size, self.chunk_size, k)?;
        let k = u32::try_from(k).ok()?;
        let verified = self.state.borrow().verified.get(k as usize).copied();
        (range == (offset, len) && verified == Some(true)).then(|| self.read_chunk(k))
    }

    /// Chunk `k`'s bytes; call only once it is verified (or the fragment committed).
    pub fn read_chunk(&self, k: u32) -> std::io::Result<Vec<u8>> {
        let (offset, len) = vidswarm_proto::chunk_range(self.size, self.chunk_size, u64::from(k))
            .ok_or_else(|| std::io::Error::other(format!("no chunk {k}")))?;
        let mut buf = vec![0u8; len as usize];
        match &self.file {
            Some(file) => file.read_exact_at(&mut buf, offset)?,
            None => File::open(&self.path)?.read_exact_at(&mut buf, offset)?,
        }
        Ok(buf)
    }
}

/// The partial fragments of one store, by hash.
#[derive(Debug, Default)]
pub struct Partials {
    map: Mutex<HashMap<Hash, Arc<Partial>>>,
    /// Bumped whenever a partial begins, for whoever waits for one to appear.
    begun: watch::Sender<u64>,
}

impl Partials {
    /// A fetch writes fragment `hash` at `path` (read through `file`), with the chunks
    /// `verified` so far.
    pub fn begin(
        &self,
        hash: Hash,
        file: File,
        path: PathBuf,
        size: u64,
        chunk_size: u32,
        verified: Vec<bool>,
    ) {
        self.insert(hash, Some(file), path, size, chunk_size, verified);
        self.begun.send_modify(|n| *n += 1);
    }

    /// Fragment `hash` rests at `path` with the chunks `verified`: peers may be served those.
    pub fn at_rest(
        &self,
        hash: Hash,
        path: PathBuf,
        size: u64,
        chunk_size: u32,
        verified: Vec<bool>,
    ) {
        self.insert(hash, None, path, size, chunk_size, verified);
    }

    /// The fetch writing `hash` stopped: its readers learn nothing more comes, and the
    /// fragment rests with what it has.
    pub fn rest(&self, hash: &Hash) {
        let Some(old) = self.get(hash) else {
            return;
        };
        let verified = old.state.borrow().verified.clone();
        let path = old.path.clone();
        self.at_rest(*hash, path, old.size, old.chunk_size, verified);
    }

    fn insert(
        &self,
        hash: Hash,
        file: Option<File>,
        path: PathBuf,
        size: u64,
        chunk_size: u32,
        verified: Vec<bool>,
    ) {
        let partial = Arc::new(Partial {
            file,
            path,
            size,
            chunk_size,
            state: watch::channel(PartialState {
                verified,
                end: None,
            })
            .0,
        });
        // Whoever read the one it replaces learns that nothing more comes through it.
        if let Some(old) = self.lock().insert(hash, partial) {
            old.state.send_modify(|s| s.end = Some(End::Abandoned));
        }
    }

    /// Chunk `k` of `hash` is written and its hash matched.
    pub fn verified(&self, hash: &Hash, k: u32) {
        if let Some(p) = self.lock().get(hash) {
            p.state
                .send_if_modified(|s| match s.verified.get_mut(k as usize) {
                    Some(v) if !*v => {
                        *v = true;
                        true
                    }
                    _ => false,
                });
        }
    }

    /// The download of `hash` ended: readers are told how, and the entry goes.
    pub fn end(&self, hash: &Hash, end: End) {
        if let Some(p) = self.lock().remove(hash) {
            p.state.send_modify(|s| s.end = Some(end));
        }
    }

    /// The partial fragment `hash`, being fetched or at rest: what peers may be served of.
    pub fn get(&self, hash: &Hash) -> Option<Arc<Partial>> {
        self.lock().get(hash).cloned()
    }

    /// The partial fragment `hash` if a fetch writes it now: what a viewer may wait on.
    pub fn arriving(&self, hash: &Hash) -> Option<Arc<Partial>> {
        self.get(hash).filter(|p| p.file.is_some())
    }

    /// Sees a change whenever a partial begins.
    pub fn begun(&self) -> watch::Receiver<u64> {
        self.begun.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Arc<Partial>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_readable_one_by_one_and_the_entry_goes_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"aaaabbbbcc").unwrap();
        let partials = Partials::default();
        let hash = Hash::of(b"aaaabbbbcc");
        let begun = partials.begun();
        partials.begin(
            hash,
            File::open(&path).unwrap(),
            path.clone(),
            10,
            4,
            vec![false; 3],
        );
        assert!(begun.has_changed().unwrap());
        let p = partials.get(&hash).unwrap();
        assert_eq!(p.chunks(), 3);
        let rx = p.subscribe();
        partials.verified(&hash, 2);
        assert_eq!(rx.borrow().verified, vec![false, false, true]);
        assert_eq!(p.read_chunk(2).unwrap(), b"cc");
        assert!(p.read_chunk(3).is_err());
        assert_eq!(p.read_verified(8, 2).unwrap().unwrap(), b"cc");
        assert!(
            p.read_verified(0, 4).is_none(),
            "chunk 0 is not verified yet"
        );
        assert!(p.read_verified(8, 1).is_none(), "not a whole chunk");
        assert!(p.read_verified(9, 1).is_none(), "not at a chunk's start");
        assert!(p.read_verified(12, 4).is_none(), "past the end");
        partials.verified(&hash, 99); // out of range: ignored
        partials.end(&hash, End::Committed);
        assert_eq!(rx.borrow().end, Some(End::Committed));
        assert!(partials.get(&hash).is_none());
    }

    #[test]
    fn a_fragment_at_rest_serves_its_chunks_but_is_not_arriving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"aaaabbbbcc").unwrap();
        let partials = Partials::default();
        let hash = Hash::of(b"aaaabbbbcc");
        let mut begun = partials.begun();
        let file = || File::open(&path).unwrap();
        partials.begin(hash, file(), path.clone(), 10, 4, vec![true, false, false]);
        let rx = partials.arriving(&hash).unwrap().subscribe();
        partials.verified(&hash, 1);
        partials.rest(&hash);
        assert_eq!(rx.borrow().end, Some(End::Abandoned), "its viewer is told");
        assert!(partials.arriving(&hash).is_none());
        let resting = partials.get(&hash).unwrap();
        assert_eq!(
            resting.subscribe().borrow().verified,
            vec![true, true, false]
        );
        assert_eq!(resting.read_verified(4, 4).unwrap().unwrap(), b"bbbb");
        begun.mark_unchanged();
        partials.begin(hash, file(), path.clone(), 10, 4, vec![true, true, false]);
        assert!(partials.arriving(&hash).is_some(), "a fetch took it up");
        assert!(
            begun.has_changed().unwrap(),
            "viewers waiting for it to begin are woken"
        );
    }
}
