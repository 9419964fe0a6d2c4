//! A fragment that arrives chunk by chunk (a fetch), written where a crash does not lose it:
//! `ROOT/partial/<hash>` with its resume record (`resume.rs`). Nothing reads it as a fragment
//! until [`FragmentWriter::commit`] has verified it whole and renamed it into `fragments/`.
//! A writer dropped uncommitted saves its record and leaves the file for the next fetch.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::Instant;

use vidswarm_proto::{chunk_range, Hash};

use super::error::{io_err, StoreError};
use super::resume::{self, Record, SAVE_EVERY};
use super::verify::verify_reader;
use super::write::sync_dir;
use super::{Store, FRAGMENTS};

/// A fragment being written piece by piece.
#[derive(Debug)]
pub struct FragmentWriter {
    store: Store,
    file: File,
    path: PathBuf,
    expected: Hash,
    size: u64,
    /// The resume record; `None` when another fetch is writing this fragment's partial file
    /// (two videos sharing it): this one then writes a temp file that goes when it drops.
    log: Option<Log>,
    /// Committed or thrown away: nothing left for `Drop` to do.
    finished: bool,
}

#[derive(Debug)]
struct Log {
    record_path: PathBuf,
    state: Mutex<LogState>,
    /// One save at a time; a chunk that finds a save running leaves the marking to the next.
    saving: Mutex<()>,
}

#[derive(Debug)]
struct LogState {
    record: Record,
    /// Bytes of chunks marked since the last save.
    unsaved: u64,
    saved_at: Instant,
}

impl Store {
    /// Starts (or resumes) fragment `expected` of `size` bytes in chunks of `chunk_size`. A
    /// partial file of the same layout left by an earlier fetch is taken up with its verified
    /// chunks ([`FragmentWriter::resumed`]); otherwise the file starts empty (sparse).
    pub fn begin_fragment(
        &self,
        expected: Hash,
        size: u64,
        chunk_size: u32,
    ) -> Result<FragmentWriter, StoreError> {
        if size == 0 {
            return Err(StoreError::Empty);
        }
        let Some(fresh) = Record::empty(expected, size, chunk_size) else {
            return self.begin_temp(expected, size);
        };
        let mut files = self.lock_partial_files();
        let resting = match files.get(&expected) {
            Some(None) => {
                drop(files);
                return self.begin_temp(expected, size);
            }
            Some(Some(r)) => Some(r.clone()),
            None => None,
        };
        let (path, record_path) = resume::paths(self.root(), &expected);
        let resumed = resting.filter(|r| r.size == size && r.chunk_size == chunk_size);
        let open = |truncate: bool| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(truncate)
                .open(&path)
                .map_err(io_err("open", &path))
        };
        let (file, record) = match resumed {
            Some(record) => (open(false)?, record),
            None => {
                // Another layout's claims mean nothing for this one.
                resume::remove(self.root(), &expected)?;
                let file = open(true)?;
                // Sparse: reserves no disk, but lets chunks land at any offset in any order.
                file.set_len(size).map_err(io_err("resize", &path))?;
                (file, fresh)
            }
        };
        files.insert(expected, None);
        drop(files);
        if let Ok(reader) = file.try_clone() {
            let have = record.have.clone();
            self.partials()
                .begin(expected, reader, path.clone(), size, chunk_size, have);
        }
        Ok(FragmentWriter {
            store: self.clone(),
            file,
            path,
            expected,
            size,
            log: Some(Log {
                record_path,
                state: Mutex::new(LogState {
                    record,
                    unsaved: 0,
                    saved_at: Instant::now(),
                }),
                saving: Mutex::new(()),
            }),
            finished: false,
        })
    }

    /// The chunks of fragment `hash` verified by an earlier fetch, if its partial file is at
    /// rest with this layout.
    pub fn resumable(&self, hash: &Hash, size: u64, chunk_size: u32) -> Option<Vec<bool>> {
        let files = self.lock_partial_files();
        match files.get(hash) {
            Some(Some(r)) if r.size == size && r.chunk_size == chunk_size => Some(r.have.clone()),
            _ => None,
        }
    }

    fn begin_temp(&self, expected: Hash, size: u64) -> Result<FragmentWriter, StoreError> {
        let (path, file) = super::write::create_unique(&self.tmp_dir(), "")?;
        let writer = FragmentWriter {
            store: self.clone(),
            file,
            path,
            expected,
            size,
            log: None,
            finished: false,
        };
        writer
            .file
            .set_len(size)
            .map_err(io_err("resize", &writer.path))?;
        Ok(writer)
    }

    pub(super) fn lock_partial_files(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Hash, Option<Record>>> {
        self.inner
            .partial_files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl FragmentWriter {
    pub fn hash(&self) -> &Hash {
        &self.expected
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunks verified so far, this fetch's and those of an earlier one it resumed.
    pub fn resumed(&self) -> Vec<bool> {
        self.log
            .as_ref()
            .map(|l| l.lock().record.have.clone())
            .unwrap_or_default()
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
        self.file
            .write_all_at(bytes, offset)
            .map_err(io_err("write", &self.path))
    }

    /// Chunk `k`, written with [`FragmentWriter::write_at`], hashed to the manifest's chunk
    /// hash: readers may have it now, and the record claims it from its next save (which this
    /// may be).
    pub fn chunk_verified(&self, k: u32) -> Result<(), StoreError> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        self.store.partials().verified(&self.expected, k);
        let every = self.store.resume_every();
        let (due, overdue) = {
            let mut s = log.lock();
            let LogState {
                record, unsaved, ..
            } = &mut *s;
            let Some(have) = record.have.get_mut(k as usize).filter(|h| !**h) else {
                return Ok(());
            };
            *have = true;
            let len = chunk_range(record.size, record.chunk_size, u64::from(k)).map_or(0, |r| r.1);
            *unsaved += u64::from(len);
            let due = s.unsaved >= every || s.saved_at.elapsed() >= SAVE_EVERY;
            (due, s.unsaved >= every.saturating_mul(2))
        };
        // A save already running covers the chunks before it; this one waits for it only when
        // twice the interval is unsaved, so a slow fsync cannot let a crash cost more than that.
        if overdue {
            self.save(true)?;
        } else if due {
            self.save(false)?;
        }
        Ok(())
    }

    /// Saves the record: the marks as they are now, once the data they claim is durable. With
    /// `wait`, after the save running now, if any; without, not at all if one runs.
    pub(crate) fn save(&self, wait: bool) -> Result<(), StoreError> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let _one = match log.saving.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if wait => {
                log.saving.lock().unwrap_or_else(PoisonError::into_inner)
            }
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        let record = {
            let mut s = log.lock();
            s.unsaved = 0;
            s.saved_at = Instant::now();
            s.record.clone()
        };
        // Marks taken first: every chunk they claim was written before this sync began.
        self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        record.save(&self.store.tmp_dir(), &log.record_path)
    }

    /// Re-hashes what was written and, if it is the expected fragment, makes it durable and
    /// visible. On a mismatch the file and its record are deleted and nothing is stored.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.finished = true;
        let checked = (&self.file)
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &self.path))
            .and_then(|_| verify_reader(&mut &self.file, &self.path, &self.expected));
        let result = checked.and_then(|_| self.persist());
        if result.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        if let Some(log) = &self.log {
            let _ = fs::remove_file(&log.record_path);
            self.store.lock_partial_files().remove(&self.expected);
            let end = match result {
                Ok(()) => super::partial::End::Committed,
                Err(_) => super::partial::End::Abandoned,
            };
            self.store.partials().end(&self.expected, end);
        }
        result
    }

    /// fsync, rename into `fragments/` (unless held already: same name, same bytes), fsync it.
    fn persist(&self) -> Result<(), StoreError> {
        let dest = self.store.fragment_file(&self.expected);
        if super::write::exists(&dest)? {
            fs::remove_file(&self.path).map_err(io_err("remove", &self.path))?;
            return Ok(());
        }
        self.file.sync_all().map_err(io_err("fsync", &self.path))?;
        fs::rename(&self.path, &dest).map_err(io_err("rename into place", &dest))?;
        sync_dir(&self.store.root().join(FRAGMENTS))
    }
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FragmentWriter {
    /// Uncommitted: a resumable fragment saves its record and rests for the next fetch (its
    /// verified chunks are still served to peers); a temp file goes.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(log) = &self.log else {
            // Best effort: whatever is left, the next open deletes.
            let _ = fs::remove_file(&self.path);
            return;
        };
        if let Err(e) = self.save(true) {
            tracing::warn!(fragment = %self.expected.short(), error = %e, "cannot save the resume record; the next fetch starts this fragment over from its last save");
        }
        let record = log.lock().record.clone();
        self.store
            .lock_partial_files()
            .insert(self.expected, Some(record));
        self.store.partials().rest(&self.expected);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::fetch::test_support::{bytes, manifest, CS};
    use vidswarm_proto::Manifest;

    /// A data dir holding the manifest of one fragment of four chunks (the last one short).
    fn setup() -> (tempfile::TempDir, Vec<u8>, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let data = bytes(7, 3 * CS as usize + 100);
        let m = manifest(std::slice::from_ref(&data));
        let (store, _) = Store::open(dir.path()).unwrap();
        store.put_manifest(&m).unwrap();
        (dir, data, m)
    }

    fn write(w: &FragmentWriter, data: &[u8], k: u32) {
        let at = (k * CS) as usize;
        let end = (at + CS as usize).min(data.len());
        w.write_at(at as u64, &data[at..end]).unwrap();
        w.chunk_verified(k).unwrap();
    }

    fn begin(store: &Store, m: &Manifest) -> FragmentWriter {
        let f = &m.fragments[0];
        store.begin_fragment(f.blake3, f.size, CS).unwrap()
    }

    fn resumable(store: &Store, m: &Manifest) -> Option<Vec<bool>> {
        let f = &m.fragments[0];
        store.resumable(&f.blake3, f.size, CS)
    }

    fn partial_dir(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root.join("partial"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// What a crash at this moment leaves: a copy of the data dir as it is on disk now.
    fn crash_copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dest = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                crash_copy(&entry.path(), &dest);
            } else {
                fs::copy(entry.path(), dest).unwrap();
            }
        }
    }

    #[test]
    fn a_stopped_fetch_resumes_with_its_verified_chunks_after_a_restart() {
        let (dir, data, m) = setup();
        let f = &m.fragments[0];
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            let w = begin(&store, &m);
            assert_eq!(w.resumed(), vec![false; 4]);
            write(&w, &data, 0);
            write(&w, &data, 2);
            drop(w);
            assert_eq!(resumable(&store, &m), Some(vec![true, false, true, false]));
            assert!(!store.has_fragment(&f.blake3), "nothing visible yet");
        }
        let (store, report) = Store::open(dir.path()).unwrap();
        assert_eq!(report.partials, 1);
        assert!(report.dropped.is_empty(), "{:?}", report.dropped);
        assert_eq!(resumable(&store, &m), Some(vec![true, false, true, false]));
        let resting = store.partials().get(&f.blake3).expect("at rest");
        let chunk2 = &data[2 * CS as usize..3 * CS as usize];
        assert_eq!(
            resting
                .read_verified(u64::from(2 * CS), CS)
                .unwrap()
                .unwrap(),
            chunk2
        );
        assert!(resting.read_verified(u64::from(CS), CS).is_none());
        assert!(store.partials().arriving(&f.blake3).is_none());

        let w = begin(&store, &m);
        assert_eq!(w.resumed(), vec![true, false, true, false]);
        assert!(resumable(&store, &m).is_none(), "a writer has it");
        write(&w, &data, 1);
        write(&w, &data, 3);
        w.commit().unwrap();
        let path = store.fragment_path(&f.blake3).expect("committed");
        assert_eq!(fs::read(path).unwrap(), data);
        assert!(
            partial_dir(dir.path()).is_empty(),
            "{:?}",
            partial_dir(dir.path())
        );
        assert!(store.partials().get(&f.blake3).is_none());
    }

    #[test]
    fn a_crash_loses_the_chunks_since_the_last_save_and_never_claims_more() {
        let (dir, data, m) = setup();
        let (store, _) = Store::open(dir.path()).unwrap();
        let w = begin(&store, &m);
        write(&w, &data, 0);
        let crashes = tempfile::tempdir().unwrap();
        let before_any_save = crashes.path().join("a");
        crash_copy(dir.path(), &before_any_save);
        w.save(true).unwrap();
        write(&w, &data, 3);
        let after_a_save = crashes.path().join("b");
        crash_copy(dir.path(), &after_a_save);

        let (a, report) = Store::open(&before_any_save).unwrap();
        assert_eq!(resumable(&a, &m), None, "no record: nothing claimed");
        assert_eq!(report.partials, 0);
        assert!(partial_dir(&before_any_save).is_empty());
        let (b, _) = Store::open(&after_a_save).unwrap();
        assert_eq!(
            resumable(&b, &m),
            Some(vec![true, false, false, false]),
            "chunk 3 came after the save"
        );
    }

    #[test]
    fn claims_whose_bytes_changed_and_damaged_records_are_not_believed() {
        let (dir, data, m) = setup();
        let f = &m.fragments[0];
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            let w = begin(&store, &m);
            write(&w, &data, 0);
            write(&w, &data, 1);
        }
        let (data_path, record_path) = resume::paths(dir.path(), &f.blake3);
        let file = OpenOptions::new().write(true).open(&data_path).unwrap();
        file.write_all_at(b"not chunk 1", u64::from(CS)).unwrap();
        {
            let (store, report) = Store::open(dir.path()).unwrap();
            assert_eq!(report.partials, 1);
            assert_eq!(resumable(&store, &m), Some(vec![true, false, false, false]));
        }
        let mut record = fs::read(&record_path).unwrap();
        record[20] ^= 1;
        fs::write(&record_path, record).unwrap();
        let (store, report) = Store::open(dir.path()).unwrap();
        assert_eq!(resumable(&store, &m), None);
        assert_eq!(report.dropped.len(), 1, "{:?}", report.dropped);
        assert!(partial_dir(dir.path()).is_empty());
    }

    #[test]
    fn a_partial_fragment_goes_with_the_last_video_that_lists_it() {
        let (dir, data, m) = setup();
        let (store, _) = Store::open(dir.path()).unwrap();
        write(&begin(&store, &m), &data, 0);
        assert!(store.usage().unwrap() > 0, "its blocks count");
        let removed = store.remove_video(&m.video_id).unwrap().unwrap();
        assert!(removed.bytes > 0);
        assert!(partial_dir(dir.path()).is_empty());
        assert_eq!(resumable(&store, &m), None);
        assert!(store.partials().get(&m.fragments[0].blake3).is_none());
    }

    #[test]
    fn a_second_writer_of_the_same_fragment_gets_a_temp_file() {
        let (dir, data, m) = setup();
        let (store, _) = Store::open(dir.path()).unwrap();
        let first = begin(&store, &m);
        let second = begin(&store, &m);
        assert!(second.log.is_none());
        for k in 0..4 {
            write(&second, &data, k);
        }
        second.commit().unwrap();
        drop(first);
        assert!(store.has_fragment(&m.fragments[0].blake3));
    }
}
