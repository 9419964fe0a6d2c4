//! The content-addressed fragment store: a node's data dir, and the only code that touches it.
//!
//! ```text
//! ROOT/LOCK                        advisory lock: one process per data dir
//! ROOT/fragments/<blake3 hex>      a fragment, named by the BLAKE3 hash of its bytes
//! ROOT/manifests/<video id>.json   a validated manifest, named by its video id
//! ROOT/pins/<video id>             a pinned video: kept whatever the budget (pins.rs)
//! ROOT/collection.json             the default collection: upload name -> video (collection.rs)
//! ROOT/partial/<blake3 hex>[.have] a fragment being fetched and its resume record (resume.rs)
//! ROOT/tmp/                        writes in progress; emptied on open
//! ```
//!
//! Every path is built from a parsed [`Hash`](struct@Hash) or [`VideoId`] (64 lowercase hex
//! digits), never from a string from outside; fragment names are resolved through a stored
//! manifest. Writes are durable before they are acknowledged (see `write.rs`), and
//! [`Store::open`] re-checks everything held.
//!
//! - `open.rs`: lock, layout, the startup check.
//! - `write.rs`: temp files, durable persist.
//! - `fragment_writer.rs`: [`FragmentWriter`], a fragment fetched chunk by chunk, resumable;
//!   `resume.rs`: its record of verified chunks, and why a crash cannot make it lie.
//! - `verify.rs`: streaming hashing on the way in.
//! - `upload.rs`: fragments streamed in from outside, hashed on the way.
//! - `partial.rs`: fragments being downloaded, readable chunk by chunk as chunks are verified.
//! - `collection.rs`: the default collection of loose uploads' names.
//! - `pins.rs`: what is kept whatever the budget; `space.rs`: bytes held, free space, what is
//!   least recently used; `gc.rs`: removing a video, and what nothing references.
//! - `split_dir.rs`: importing a splitter's output dir and exporting a video back to one.
//! - `error.rs`: [`StoreError`] and the reports.

mod collection;
mod error;
mod fragment_writer;
mod gc;
mod identity;
mod open;
pub mod partial;
mod pins;
mod resume;
mod space;
mod split_dir;
mod upload;
mod verify;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use vidswarm_proto::{Hash, Manifest, VideoId, MAX_CHUNK_SIZE};

pub use collection::{Claim, NameRecord, NameSignature, NamedEntry, MAX_AHEAD_MS, MAX_NAMES};
use error::io_err;
pub use error::{ImportReport, OpenReport, StoreError};
pub use fragment_writer::FragmentWriter;
pub use gc::Removed;
pub use resume::{SAVE_EVERY, SAVE_EVERY_BYTES};
pub use space::Evictable;
pub use upload::{Upload, Verified};

const FRAGMENTS: &str = "fragments";
const MANIFESTS: &str = "manifests";
const TMP: &str = "tmp";
const LOCK: &str = "LOCK";

/// A handle on an open data dir. Cheap to clone; the lock is released when the last clone drops.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Every manifest held, parsed and validated once (on open or on put): `resolve` is called per
    /// request and must not re-parse megabytes of JSON.
    manifests: RwLock<BTreeMap<VideoId, Arc<Manifest>>>,
    /// Per fragment, the largest chunk size of the manifests that list it: what a chunk request
    /// for it may ask at most.
    chunk_sizes: RwLock<HashMap<Hash, u32>>,
    /// The default collection (see `collection.rs`); writes hold the lock while they persist.
    names: Mutex<collection::Names>,
    /// Serialises `put_manifest`, so "is it new?" has one answer.
    put_manifest: Mutex<()>,
    /// The blocking-pool work running on this store, so a node that stops can wait for it
    /// (a write whose caller was cancelled still runs to its end, and its temp file goes then).
    tasks: tokio_util::task::TaskTracker,
    /// Fragments being downloaded, or at rest until a fetch resumes them (`partial.rs`).
    partials: partial::Partials,
    /// The fragments with a file in `partial/`: `Some(record)` at rest, `None` while a writer
    /// has it (`fragment_writer.rs`).
    partial_files: Mutex<HashMap<Hash, Option<resume::Record>>>,
    /// The videos pinned (`pins.rs`).
    pins: RwLock<std::collections::HashSet<VideoId>>,
    /// Held shared by writes of several steps, exclusively by garbage collection (`gc.rs`).
    gc_guard: RwLock<()>,
    /// The free space no write may take (`space.rs`).
    reserve: std::sync::atomic::AtomicU64,
    /// Bytes of verified chunks between two saves of a resume record (`resume.rs`).
    resume_every: std::sync::atomic::AtomicU64,
    /// When each fragment was last read, since open (`space.rs`, for eviction).
    touched: Mutex<HashMap<Hash, std::time::SystemTime>>,
    /// Holds the advisory lock on `ROOT/LOCK` while open.
    _lock: File,
}

impl Store {
    /// The data dir, as an absolute path.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Fragments being downloaded, readable as their chunks are verified.
    pub fn partials(&self) -> &partial::Partials {
        &self.inner.partials
    }

    /// The manifest of `id`, if held: from memory (parsed once, on open or on put), never a copy.
    pub fn manifest(&self, id: &VideoId) -> Option<Arc<Manifest>> {
        let map = self
            .inner
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(id).cloned()
    }

    /// The most one chunk request for fragment `h` may ask: the largest chunk size of the
    /// manifests held that list it (a fragment may be in several videos). `None` if none does.
    pub fn chunk_size_of(&self, h: &Hash) -> Option<u32> {
        let sizes = self
            .inner
            .chunk_sizes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        sizes.get(h).copied()
    }

    /// Every manifest held, sorted by video id.
    pub fn manifests(&self) -> Vec<Arc<Manifest>> {
        let map = self
            .inner
            .manifests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Runs `f` on the blocking pool (the store does file I/O) with a handle on this store: the
    /// one way async code calls the store.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        self.spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `f`, blocking work on this store's files, on the blocking pool, tracked for
    /// [`Store::quiesce`].
    pub fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.inner.tasks.spawn_blocking(f)
    }

    /// Waits (at most `within`) until the blocking work started on this store has finished, and
    /// takes no more: for a node that stops. Whether everything finished.
    pub async fn quiesce(&self, within: std::time::Duration) -> bool {
        self.inner.tasks.close();
        tokio::time::timeout(within, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    pub fn has_fragment(&self, h: &Hash) -> bool {
        matches!(self.held_size(h), Ok(Some(_)))
    }

    /// The size of fragment `h`, if held.
    pub fn fragment_size(&self, h: &Hash) -> Option<u64> {
        self.held_size(h).ok().flatten()
    }

    /// Where fragment `h` is, if the store holds it. The file must only be read.
    pub fn fragment_path(&self, h: &Hash) -> Option<PathBuf> {
        let held = self.has_fragment(h);
        if held {
            self.touch(h);
        }
        held.then(|| self.fragment_file(h))
    }

    /// Every fragment held, sorted.
    pub fn fragment_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let dir = self.inner.root.join(FRAGMENTS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            // Only the store writes here and open checked the rest, but stay strict anyway.
            if let Some(h) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(h);
            }
        }
        out.sort();
        Ok(out)
    }

    /// `len` bytes of fragment `h` from `offset`. `len` must be 1..=[`MAX_CHUNK_SIZE`] and the
    /// range inside the fragment; the buffer is allocated only once that is checked.
    pub fn read_chunk(&self, h: &Hash, offset: u64, len: u32) -> Result<Vec<u8>, StoreError> {
        let path = self.fragment_file(h);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::FragmentNotFound(*h),
            _ => io_err("open", &path)(e),
        })?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        let in_range = offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= size);
        if len == 0 || len > MAX_CHUNK_SIZE || !in_range {
            return Err(StoreError::OutOfRange {
                hash: *h,
                offset,
                len: u64::from(len),
                size,
            });
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(io_err("read", &path))?;
        self.touch(h);
        Ok(buf)
    }

    /// The size of fragment `h`, if held.
    fn held_size(&self, h: &Hash) -> Result<Option<u64>, StoreError> {
        let path = self.fragment_file(h);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("look up", &path)(e)),
        }
    }

    fn fragment_file(&self, h: &Hash) -> PathBuf {
        self.inner.root.join(FRAGMENTS).join(h.to_string())
    }

    fn manifest_file(&self, id: &VideoId) -> PathBuf {
        self.inner.root.join(MANIFESTS).join(format!("{id}.json"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join(TMP)
    }
}

/// Reads a whole file of at most `limit` bytes; a bigger one is refused without being read.
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, StoreError> {
    let file = File::open(path).map_err(io_err("read", path))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() > limit {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
            limit: limit as u64,
        });
    }
    Ok(bytes)
}

/// Records `m`'s chunk size for each fragment it lists (see `Inner::chunk_sizes`).
fn note_chunk_sizes(sizes: &mut HashMap<Hash, u32>, m: &Manifest) {
    for f in &m.fragments {
        let size = sizes.entry(f.blake3).or_insert(m.chunk_size);
        *size = (*size).max(m.chunk_size);
    }
}
