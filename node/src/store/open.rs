//! Opening a data dir: take its lock, create its layout, and check everything it holds, so that
//! whatever a crash or a stray hand left behind is gone before the store serves anything.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fs::{self, DirEntry, File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use vidswarm_proto::{Hash, Manifest, VideoId, MAX_MANIFEST_BYTES};

use super::error::{io_err, OpenReport, StoreError};
use super::resume::{self, Record, PARTIAL};
use super::verify::verify_reader;
use super::write::sync_dir;
use super::{read_bounded, Inner, Store, FRAGMENTS, LOCK, MANIFESTS, TMP};

impl Store {
    /// Opens (creating if needed) the data dir at `root`, locks it against other processes and
    /// checks its contents: temp files are deleted, every fragment is re-hashed and every manifest
    /// re-validated, every chunk a resume record claims re-hashed, and whatever fails is deleted
    /// and listed in the report.
    pub fn open(root: impl AsRef<Path>) -> Result<(Store, OpenReport), StoreError> {
        let root = root.as_ref();
        let root = std::path::absolute(root).map_err(io_err("resolve", root))?;
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let lock = lock(&root)?;
        for dir in [FRAGMENTS, MANIFESTS, PARTIAL, TMP] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        }
        // The subdirectories must survive a crash along with the files renamed into them.
        sync_dir(&root)?;

        let mut check = Check {
            root: &root,
            report: OpenReport::default(),
        };
        check.tmp()?;
        check.fragments()?;
        let manifests = check.manifests()?;
        let resting = check.partials(&manifests)?;
        let names = check.collection()?;
        let pins = super::pins::load(&root)?;
        let report = check.report;
        tracing::info!(
            root = %root.display(),
            fragments = report.fragments,
            manifests = report.manifests,
            resumable = resting.len(),
            dropped = report.dropped.len(),
            "store opened"
        );
        let inner = Inner {
            tasks: tokio_util::task::TaskTracker::new(),
            partials: Default::default(),
            partial_files: Mutex::new(HashMap::new()),
            root,
            chunk_sizes: RwLock::new({
                let mut sizes = HashMap::new();
                for m in manifests.values() {
                    super::note_chunk_sizes(&mut sizes, m);
                }
                sizes
            }),
            manifests: RwLock::new(manifests),
            names: Mutex::new(names),
            pins: RwLock::new(pins),
            touched: Mutex::new(HashMap::new()),
            reserve: Default::default(),
            resume_every: super::SAVE_EVERY_BYTES.into(),
            gc_guard: RwLock::new(()),
            put_manifest: Mutex::new(()),
            _lock: lock,
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.rest_all(resting);
        Ok((store, report))
    }

    /// Puts the partial fragments found on open at rest: peers are served their verified
    /// chunks, and a fetch takes them up.
    fn rest_all(&self, resting: Vec<Record>) {
        let mut files = self.lock_partial_files();
        for r in resting {
            let path = resume::paths(self.root(), &r.hash).0;
            let have = r.have.clone();
            self.partials()
                .at_rest(r.hash, path, r.size, r.chunk_size, have);
            files.insert(r.hash, Some(r));
        }
    }
}

/// An advisory lock on `ROOT/LOCK`, held as long as the returned file is open (by the `Store`).
fn lock(root: &Path) -> Result<File, StoreError> {
    let path = root.join(LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(root.to_owned())),
        Err(TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
    }
}

struct Check<'a> {
    root: &'a Path,
    report: OpenReport,
}

impl Check<'_> {
    fn tmp(&mut self) -> Result<(), StoreError> {
        for entry in entries(&self.root.join(TMP))? {
            self.drop(&entry, "left-over temp file of an interrupted write".into())?;
        }
        Ok(())
    }

    fn fragments(&mut self) -> Result<(), StoreError> {
        for entry in entries(&self.root.join(FRAGMENTS))? {
            let Some(hash) = name_of(&entry).and_then(|n| n.parse::<Hash>().ok()) else {
                self.drop(&entry, "name is not a hash".into())?;
                continue;
            };
            if !is_file(&entry) {
                self.drop(&entry, "not a regular file".into())?;
                continue;
            }
            let path = entry.path();
            let checked = File::open(&path)
                .map_err(io_err("open", &path))
                .and_then(|mut f| verify_reader(&mut f, &path, &hash));
            match checked {
                Ok(_) => self.report.fragments += 1,
                Err(e) => self.failed(&entry, &e)?,
            }
        }
        Ok(())
    }

    fn manifests(&mut self) -> Result<BTreeMap<VideoId, Arc<Manifest>>, StoreError> {
        let mut held = BTreeMap::new();
        for entry in entries(&self.root.join(MANIFESTS))? {
            let id = name_of(&entry).and_then(|n| n.strip_suffix(".json")?.parse::<VideoId>().ok());
            let Some(id) = id else {
                self.drop(&entry, "name is not <video id>.json".into())?;
                continue;
            };
            if !is_file(&entry) {
                self.drop(&entry, "not a regular file".into())?;
                continue;
            }
            let parsed = read_bounded(&entry.path(), MAX_MANIFEST_BYTES)
                .and_then(|bytes| Ok(Manifest::from_json(&bytes)?));
            match parsed {
                Ok(m) if m.video_id == id => {
                    held.insert(id, Arc::new(m));
                }
                Ok(m) => self.drop(
                    &entry,
                    format!("holds the manifest of video {}", m.video_id),
                )?,
                Err(e) => self.failed(&entry, &e)?,
            }
        }
        self.report.manifests = held.len();
        Ok(held)
    }

    /// The partial fragments that can be resumed: a data file and its record, of a fragment
    /// not held whole, that a manifest held lists with the record's layout. Each claimed chunk
    /// is hashed again (a claim that fails is dropped, not the file); anything else goes.
    fn partials(
        &mut self,
        manifests: &BTreeMap<VideoId, Arc<Manifest>>,
    ) -> Result<Vec<Record>, StoreError> {
        let dir = self.root.join(PARTIAL);
        let listed = entries(&dir)?;
        let mut resting = Vec::new();
        for entry in &listed {
            let name = name_of(entry).unwrap_or_default();
            let Some(hash) = name
                .strip_suffix(".have")
                .and_then(|h| h.parse::<Hash>().ok())
            else {
                // A data file stays if its record does (checked with it); nothing else does.
                let data_of_a_record = name.parse::<Hash>().is_ok()
                    && is_file(entry)
                    && listed
                        .iter()
                        .any(|e| name_of(e) == Some(format!("{name}.have")));
                if !data_of_a_record {
                    self.drop(entry, "not a partial fragment with a resume record".into())?;
                }
                continue;
            };
            match self.partial(&hash, manifests) {
                Ok(found) => resting.push(found),
                Err(e) if unreadable_is_transient(&e) => {
                    let (data, _) = resume::paths(self.root, &hash);
                    tracing::warn!(path = %data.display(), reason = %chain(&e), "cannot read this partial fragment to check it: left in place, not resumed");
                    self.report.unreadable.push((data, chain(&e)));
                }
                Err(e) => {
                    let (data, _) = resume::paths(self.root, &hash);
                    self.report.dropped.push((data, chain(&e)));
                    tracing::warn!(fragment = %hash.short(), reason = %chain(&e), "deleting a partial fragment");
                    resume::remove(self.root, &hash)?;
                }
            }
        }
        Ok(resting)
    }

    /// One partial fragment, checked; an error says why it cannot be resumed.
    fn partial(
        &mut self,
        hash: &Hash,
        manifests: &BTreeMap<VideoId, Arc<Manifest>>,
    ) -> Result<Record, StoreError> {
        let (data, record_path) = resume::paths(self.root, hash);
        let corrupt = |reason: &str| StoreError::Corrupt {
            path: record_path.clone(),
            reason: reason.into(),
        };
        if super::write::exists(&self.root.join(FRAGMENTS).join(hash.to_string()))? {
            return Err(corrupt(
                "the fragment is held whole (committed before the crash)",
            ));
        }
        let mut record = resume::read(&record_path)?;
        if record.hash != *hash {
            return Err(corrupt("the record is another fragment's"));
        }
        let file = match OpenOptions::new().read(true).open(&data) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt("its data file is gone"))
            }
            Err(e) => return Err(io_err("open", &data)(e)),
        };
        let len = file.metadata().map_err(io_err("stat", &data))?.len();
        if len != record.size {
            return Err(corrupt("its data file is not the fragment's size"));
        }
        let Some(chunks) =
            resume::chunks_of(manifests.values().map(|m| &**m), hash, record.chunk_size)
        else {
            return Err(corrupt("no manifest held lists it in chunks of this size"));
        };
        let dropped = record.recheck(&file, &chunks);
        if dropped > 0 {
            tracing::warn!(fragment = %hash.short(), dropped, "chunks the resume record claimed do not match their hashes: fetched again");
            record.save(&self.root.join(TMP), &record_path)?;
        }
        tracing::info!(fragment = %hash.short(), verified = record.verified(), chunks = record.have.len(), "a partial fragment to resume");
        self.report.partials += 1;
        Ok(record)
    }

    /// The default collection. A damaged file is kept aside (`collection.damaged-<ms>.json`)
    /// and reported, and the names that could be read are written back: none are lost that
    /// could be read, and what could not stays for the operator to look at.
    fn collection(&mut self) -> Result<super::collection::Names, StoreError> {
        let (names, reason) = match super::collection::load(self.root) {
            Ok(loaded) => match loaded.damage {
                None => return Ok(loaded.names),
                Some(reason) => (loaded.names, reason),
            },
            Err(StoreError::Corrupt { reason, .. }) => (Default::default(), reason),
            Err(e @ StoreError::TooLarge { .. }) => (Default::default(), e.to_string()),
            Err(other) => return Err(other),
        };
        let path = self.root.join(super::collection::COLLECTION);
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let aside = self.root.join(format!("collection.damaged-{ms}.json"));
        fs::rename(&path, &aside).map_err(io_err("keep aside", &path))?;
        sync_dir(self.root)?;
        tracing::warn!(path = %path.display(), kept_as = %aside.display(), %reason, good = names.len(), "the collection file is damaged");
        if !names.is_empty() {
            super::collection::write_file(self.root, &self.root.join(TMP), &names)?;
        }
        let reason = format!(
            "{reason}; kept as {}, {} names read",
            aside.display(),
            names.len()
        );
        self.report.dropped.push((path, reason));
        Ok(names)
    }

    /// An entry whose check failed with `e`: deleted when its content is wrong, left in place
    /// when it could not be read at all ([`unreadable_is_transient`]).
    fn failed(&mut self, entry: &DirEntry, e: &StoreError) -> Result<(), StoreError> {
        if !unreadable_is_transient(e) {
            return self.drop(entry, chain(e));
        }
        let path = entry.path();
        tracing::warn!(path = %path.display(), reason = %chain(e), "cannot read this to check it: left in place unchecked (the next start checks it again)");
        self.report.unreadable.push((path, chain(e)));
        Ok(())
    }

    fn drop(&mut self, entry: &DirEntry, reason: String) -> Result<(), StoreError> {
        let path = entry.path();
        tracing::warn!(path = %path.display(), %reason, "deleting from the data dir");
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err("delete", &path))?;
        self.report.dropped.push((path, reason));
        Ok(())
    }
}

/// Whether a failed check says nothing about the content: the file could not be opened or read
/// (EACCES, EIO, EMFILE, a file gone meanwhile). A hash, size or parse failure is the content's.
fn unreadable_is_transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { .. })
}

/// The entries of `dir`, sorted so reports and logs come out in a stable order.
fn entries(dir: &Path) -> Result<Vec<DirEntry>, StoreError> {
    let mut out = fs::read_dir(dir)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(io_err("list", dir))?;
    out.sort_by_key(DirEntry::file_name);
    Ok(out)
}

fn name_of(entry: &DirEntry) -> Option<String> {
    entry.file_name().into_string().ok()
}

/// Regular file, judged without following symlinks (a symlink could point out of the data dir).
fn is_file(entry: &DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_file())
}

/// An error and all its causes on one line, for the report. A cause some message already quotes
/// (`ManifestError::Malformed` does) is not repeated.
fn chain(e: &StoreError) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_of_the_content_deletes_it() {
        let path = std::path::PathBuf::from("fragments/x");
        for kind in [
            std::io::ErrorKind::PermissionDenied,
            std::io::ErrorKind::NotFound,
            std::io::ErrorKind::Other,
        ] {
            let e = io_err("open", &path)(std::io::Error::from(kind));
            assert!(unreadable_is_transient(&e), "{kind:?} cost the fragment");
        }
        let emfile = io_err("read", &path)(std::io::Error::from_raw_os_error(24));
        assert!(unreadable_is_transient(&emfile));
        let (a, b) = (Hash::of(b"a"), Hash::of(b"b"));
        for wrong in [
            StoreError::HashMismatch {
                expected: a,
                actual: b,
            },
            StoreError::SizeMismatch {
                expected: 1,
                actual: 2,
            },
            StoreError::TooLarge { path, limit: 1 },
        ] {
            assert!(!unreadable_is_transient(&wrong), "{wrong} was kept");
        }
    }
}
