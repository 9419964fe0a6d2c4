//! The splitter's output dir (`manifest.json` + `fragment_{i}.mp4`) in and out of the store.

use std::fs::{self, File};
use std::path::Path;

use vidswarm_proto::{fragment_name, FragmentInfo, Manifest, VideoId, MAX_MANIFEST_BYTES};

use super::error::{io_err, ImportReport, StoreError};
use super::verify::{copy_verified, Expected};
use super::write::{exists, sync_dir, TempFile};
use super::{read_bounded, Store};

const MANIFEST_JSON: &str = "manifest.json";

impl Store {
    /// Imports a split dir: validates `dir/manifest.json`, imports every `fragment_{i}.mp4` it
    /// lists after checking its size, BLAKE3 and chunk hashes against the manifest, and stores the
    /// manifest last, pinned (garbage collection waits meanwhile: until then the fragments are
    /// listed by nothing). Missing fragment files are listed in the report, not an error (a node may
    /// hold part of a video); a fragment that does not match is an error naming it, and is not
    /// stored.
    pub fn import_split_dir(&self, dir: &Path) -> Result<ImportReport, StoreError> {
        let bytes = read_bounded(&dir.join(MANIFEST_JSON), MAX_MANIFEST_BYTES)?;
        let m = Manifest::from_json(&bytes)?;
        let mut report = ImportReport {
            video_id: m.video_id,
            fragments: m.fragments.len(),
            imported: 0,
            already_held: 0,
            bytes: 0,
            missing: Vec::new(),
            manifest_new: false,
        };
        let _no_gc = self.hold_off_gc();
        for f in &m.fragments {
            if self.has_fragment(&f.blake3) {
                report.already_held += 1;
                continue;
            }
            // The manifest is validated, so `f.name` is this too; build it anyway, never trust it.
            let path = dir.join(fragment_name(f.index));
            if !exists(&path)? {
                report.missing.push(f.name.clone());
                continue;
            }
            let expected = Expected {
                hash: &f.blake3,
                manifest: Some((f, m.chunk_size)),
            };
            let (size, new) = self
                .ingest(&path, &expected)
                .map_err(|e| in_fragment("import", f, e))?;
            if new {
                report.imported += 1;
                report.bytes += size;
            } else {
                report.already_held += 1;
            }
        }
        self.pin(&m.video_id)?;
        report.manifest_new = self.put_manifest(&m)?;
        tracing::info!(video = %m.video_id.short(), imported = report.imported,
            missing = report.missing.len(), "imported a split dir");
        Ok(report)
    }

    /// Writes video `id` as a split dir: every fragment as `dir/fragment_{i}.mp4`, verified as it
    /// is copied, then `dir/manifest.json`, all durably. Fails before writing anything if a
    /// fragment is not held.
    pub fn export_video(&self, id: &VideoId, dir: &Path) -> Result<(), StoreError> {
        self.export_fragments(id, dir, None)
    }

    /// Like [`Store::export_video`], for only the fragments `indices` (all when `None`); the
    /// manifest is always written whole, so `vidswarm join` can tell what is missing.
    pub fn export_fragments(
        &self,
        id: &VideoId,
        dir: &Path,
        indices: Option<&[u32]>,
    ) -> Result<(), StoreError> {
        self.export(id, dir, indices, Export::Copy)
    }

    /// Like [`Store::export_fragments`], but each fragment is hard-linked from the store: written
    /// once, not read or hashed again (the store holds only content verified against its name).
    /// A fragment that cannot be linked (another filesystem) is copied and verified instead. The
    /// links share the store's files: what edits one edits the other, and the store's next open
    /// drops what no longer matches its name.
    pub fn link_fragments(
        &self,
        id: &VideoId,
        dir: &Path,
        indices: Option<&[u32]>,
    ) -> Result<(), StoreError> {
        self.export(id, dir, indices, Export::Link)
    }

    fn export(
        &self,
        id: &VideoId,
        dir: &Path,
        indices: Option<&[u32]>,
        how: Export,
    ) -> Result<(), StoreError> {
        let m = self.manifest(id).ok_or(StoreError::VideoNotFound(*id))?;
        let chosen: Vec<&FragmentInfo> = m
            .fragments
            .iter()
            .filter(|f| indices.is_none_or(|list| list.contains(&f.index)))
            .collect();
        if let Some(f) = chosen.iter().find(|f| !self.has_fragment(&f.blake3)) {
            return Err(in_fragment(
                "export",
                f,
                StoreError::FragmentNotFound(f.blake3),
            ));
        }
        if !exists(dir)? {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        for f in chosen {
            let linked = how == Export::Link && self.link_fragment(f, dir)?;
            if !linked {
                self.export_fragment(f, m.chunk_size, dir)
                    .map_err(|e| in_fragment("export", f, e))?;
            }
        }
        // Last, as the splitter does: a dir with a manifest is a complete dir.
        let mut tmp = TempFile::create(dir, ".vidswarm-")?;
        tmp.write_all(&m.to_json_pretty())?;
        tmp.persist(&dir.join(MANIFEST_JSON))
    }

    fn export_fragment(
        &self,
        f: &FragmentInfo,
        chunk_size: u32,
        dir: &Path,
    ) -> Result<(), StoreError> {
        let src = self.fragment_file(&f.blake3);
        let mut file = File::open(&src).map_err(io_err("open", &src))?;
        let mut tmp = TempFile::create(dir, ".vidswarm-")?;
        let expected = Expected {
            hash: &f.blake3,
            manifest: Some((f, chunk_size)),
        };
        // Re-verified on the way out: catches a disk that rotted since open.
        copy_verified(&mut file, &src, &mut tmp.file, &tmp.path, &expected)?;
        tmp.persist(&dir.join(fragment_name(f.index)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Copy,
    Link,
}

impl Store {
    /// Hard-links fragment `f` into `dir` under its name, durably; `false` when this filesystem
    /// cannot link it there (the caller copies instead).
    fn link_fragment(&self, f: &FragmentInfo, dir: &Path) -> Result<bool, StoreError> {
        let src = self.fragment_file(&f.blake3);
        // Linked under a fresh temp name (the temp file itself is gone once dropped), then
        // renamed over the final one: an existing file of that name is replaced atomically.
        let tmp = TempFile::create(dir, ".vidswarm-")?.path.clone();
        if fs::hard_link(&src, &tmp).is_err() {
            return Ok(false);
        }
        let dest = dir.join(fragment_name(f.index));
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("rename into place", &dest)(e));
        }
        sync_dir(dir)?;
        Ok(true)
    }
}

fn in_fragment(op: &'static str, f: &FragmentInfo, e: StoreError) -> StoreError {
    StoreError::Fragment {
        op,
        name: f.name.clone(),
        source: Box::new(e),
    }
}
