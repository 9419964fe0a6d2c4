//! Durable writes. Everything enters the data dir the same way: written to a uniquely named file
//! in `tmp/`, hashed on the way, fsynced, renamed into place, and the target directory fsynced.
//! Only then is the write acknowledged; a crash at any point leaves at most a temp file, which the
//! next open deletes.

use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use vidswarm_proto::{Hash, Manifest, ManifestError, MAX_MANIFEST_BYTES};

use super::error::{io_err, StoreError};
use super::verify::{copy_verified, verify_reader, Expected};
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

    /// Starts a fragment that arrives in pieces (a chunked download): a temp file of `size` bytes
    /// that nothing else can see until [`FragmentWriter::commit`] has verified it.
    pub fn begin_fragment(&self, expected: Hash, size: u64) -> Result<FragmentWriter, StoreError> {
        if size == 0 {
            return Err(StoreError::Empty);
        }
        let tmp = self.temp()?;
        // Sparse: reserves no disk, but lets chunks land at any offset in any order.
        tmp.file
            .set_len(size)
            .map_err(io_err("resize", &tmp.path))?;
        Ok(FragmentWriter {
            store: self.clone(),
            tmp,
            expected,
            size,
        })
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

/// A fragment being written piece by piece. Dropping it uncommitted deletes its temp file.
#[derive(Debug)]
pub struct FragmentWriter {
    store: Store,
    tmp: TempFile,
    expected: Hash,
    size: u64,
}

impl FragmentWriter {
    pub fn hash(&self) -> &Hash {
        &self.expected
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Another handle on the file being written, for reading verified chunks while it arrives
    /// (`partial.rs`); it stays valid when the commit renames the file.
    pub fn reader(&self) -> Result<File, StoreError> {
        self.tmp
            .file
            .try_clone()
            .map_err(io_err("reopen", &self.tmp.path))
    }

    /// Writes `bytes` at `offset`; refuses anything reaching past the fragment's size, and
    /// anything that would leave less free space than the store's reserve (the file is sparse:
    /// its blocks are taken as chunks land, so a fetch is checked as it goes).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let len = bytes.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(StoreError::OutOfRange {
                hash: self.expected,
                offset,
                len,
                size: self.size,
            });
        }
        self.store.check_reserve(len)?;
        self.tmp
            .file
            .write_all_at(bytes, offset)
            .map_err(io_err("write", &self.tmp.path))
    }

    /// Re-hashes what was written and, if it is the expected fragment, makes it durable and
    /// visible. On a mismatch the temp file is deleted and nothing is stored.
    pub fn commit(self) -> Result<(), StoreError> {
        let FragmentWriter {
            store,
            tmp,
            expected,
            ..
        } = self;
        (&tmp.file)
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &tmp.path))?;
        verify_reader(&mut &tmp.file, &tmp.path, &expected)?;
        tmp.persist_new(&store.fragment_file(&expected))?;
        Ok(())
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
    /// Creates a new file in `dir` named `{prefix}{pid}-{counter}-{random}.tmp`. The counter keeps
    /// names unique within the process, pid and salt across processes sharing `dir`;
    /// `create_new` makes a collision a retry rather than two writers sharing a file.
    pub fn create(dir: &Path, prefix: &str) -> Result<Self, StoreError> {
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
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
        Err(io_err("create a uniquely named file in", dir)(
            ErrorKind::AlreadyExists.into(),
        ))
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
