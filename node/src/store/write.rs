//! Durable writes. Everything enters the data dir the same way: written to a uniquely named file
//! in `tmp/`, hashed on the way, fsynced, renamed into place, and the target directory fsynced.
//! Only then is the write acknowledged; a crash at any point leaves at most a temp file, which the
//! next open deletes.

use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use vidswarm_proto::{Hash, Manifest, ManifestError, MAX_MANIFEST_BYTES};

use super::error::{io_err, StoreError};
use super::verify::{copy_verified, Expected};
use super::Store;

impl Store {
    /// Stores a validated manifest durably. Returns `true` if it was new.
    pub fn put_manifest(&self, m: &Manifest) -> Result<bool, StoreError> {
        m.validate()?;
        let json = m.to_json_pretty();
        // Anything bigger would be dropped as corrupt by the next open.
        if json.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(json.len()).into());
        }
        let _one_at_a_time = self
            .inner
            .put_manifest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.manifest(&m.video_id).is_some() {
            return Ok(false);
        }
        let mut tmp = self.temp()?;
        tmp.write_all(&json)?;
        tmp.persist(&self.manifest_file(&m.video_id))?;
        self.inner
            .manifests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(m.video_id, Arc::new(m.clone()));
        let mut sizes = self
            .inner
            .chunk_sizes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        super::note_chunk_sizes(&mut sizes, m);
        Ok(true)
    }

    /// Copies the file at `src` into the store, hashing as it streams; refuses it (leaving nothing
    /// behind) unless it hashes to `expected`. A no-op if the fragment is held. Returns its size.
    pub fn import_fragment_file(&self, src: &Path, expected: &Hash) -> Result<u64, StoreError> {
        if let Some(size) = self.held_size(expected)? {
            return Ok(size);
        }
        let expected = Expected {
            hash: expected,
            manifest: None,
        };
        self.ingest(src, &expected).map(|(size, _)| size)
    }

    /// Stores `bytes` as a fragment, refusing them if `expected` is given and does not match.
    pub fn put_fragment_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&Hash>,
    ) -> Result<Hash, StoreError> {
        if bytes.is_empty() {
            return Err(StoreError::Empty);
        }
        let hash = Hash::of(bytes);
        if let Some(&expected) = expected.filter(|e| **e != hash) {
            return Err(StoreError::HashMismatch {
                expected,
                actual: hash,
            });
        }
        if self.has_fragment(&hash) {
            return Ok(hash);
        }
        let mut tmp = self.temp()?;
        tmp.write_all(bytes)?;
        tmp.persist_new(&self.fragment_file(&hash))?;
        Ok(hash)
    }

    /// Streams `src` into a temp file while verifying it, then persists it as a fragment.
    /// Returns the size and whether the fragment was new.
    pub(crate) fn ingest(
        &self,
        src: &Path,
        expected: &Expected<'_>,
    ) -> Result<(u64, bool), StoreError> {
        let mut file = File::open(src).map_err(io_err("open", src))?;
        let mut tmp = self.temp()?;
        let size = copy_verified(&mut file, src, &mut tmp.file, &tmp.path, expected)?;
        let new = tmp.persist_new(&self.fragment_file(expected.hash))?;
        Ok((size, new))
    }

    pub(super) fn temp(&self) -> Result<TempFile, StoreError> {
        TempFile::create(&self.tmp_dir(), "")
    }
}

/// A uniquely named file that deletes itself unless persisted.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub path: PathBuf,
    pub file: File,
    persisted: bool,
}

impl TempFile {
    /// Creates a new file in `dir` ([`create_unique`]).
    pub fn create(dir: &Path, prefix: &str) -> Result<Self, StoreError> {
        let (path, file) = create_unique(dir, prefix)?;
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(bytes)
            .map_err(io_err("write", &self.path))
    }

    /// Makes the file `dest` unless `dest` exists already (content-addressed: same name, same
    /// bytes). Returns whether it was renamed into place.
    pub fn persist_new(self, dest: &Path) -> Result<bool, StoreError> {
        if exists(dest)? {
            return Ok(false);
        }
        self.persist(dest).map(|()| true)
    }

    /// fsync the data, rename over `dest`, fsync the directory that now names it.
    pub fn persist(mut self, dest: &Path) -> Result<(), StoreError> {
        self.file.sync_all().map_err(io_err("fsync", &self.path))?;
        fs::rename(&self.path, dest).map_err(io_err("rename into place", dest))?;
        self.persisted = true;
        sync_dir(dest.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: whatever is left, the next open deletes.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates a new file in `dir` named `{prefix}{pid}-{counter}-{random}.tmp`. The counter keeps
/// names unique within the process, pid and salt across processes sharing `dir`; `create_new`
/// makes a collision a retry rather than two writers sharing a file. The caller deletes it.
pub(crate) fn create_unique(dir: &Path, prefix: &str) -> Result<(PathBuf, File), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..8 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let salt = std::hash::RandomState::new().hash_one((std::time::SystemTime::now(), n));
        let path = dir.join(format!(
            "{prefix}{}-{n}-{salt:016x}.tmp",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
    Err(io_err("create a uniquely named file in", dir)(
        ErrorKind::AlreadyExists.into(),
    ))
}

/// fsync a directory so the names created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Whether `path` names anything, without following a symlink.
pub(crate) fn exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("look up", path)(e)),
    }
}
