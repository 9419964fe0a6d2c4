//! The default collection: what the names of loose uploads (the original routes'
//! `/upload_fragment`) mean. Each name maps to the one-fragment video the upload became; the
//! mapping is kept durably in `ROOT/collection.json` and shared over gossip with every
//! announcement of that video. Per name, the entry with the latest `(uploaded_at_ms, video)` wins,
//! so nodes that heard the same announcements agree on what `fragment_3.mp4` means.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::PoisonError;

use serde::{Deserialize, Serialize};
use vidswarm_proto::{is_plain_file_name, VideoId, MAX_SOURCE_NAME_BYTES};

use super::error::StoreError;
use super::{read_bounded, Store};

pub(super) const COLLECTION: &str = "collection.json";
/// Names kept at most: a swarm cannot grow a node's table (or its file) without bound.
pub const MAX_NAMES: usize = 10_000;
/// How far ahead of this node's clock a peer's name entry may be dated: clocks drift, but an
/// entry dated far ahead (up to `u64::MAX`) would win over every later upload of that name.
pub const MAX_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;
/// The collection file's read limit, above the largest file the store can write: `MAX_NAMES`
/// names of `MAX_SOURCE_NAME_BYTES` bytes that all need escaping (`"` becomes `\"`; names hold
/// no `\` or control characters), each with its entry and pretty-printing.
const MAX_COLLECTION_BYTES: usize = MAX_NAMES * (2 * MAX_SOURCE_NAME_BYTES + 256) + 1024;

/// What a name means. Ordered by time, then video id: the greater entry wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NamedEntry {
    pub uploaded_at_ms: u64,
    pub video: VideoId,
}

/// The outcome of [`Store::claim_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The name now means the upload.
    Recorded(NamedEntry),
    /// The name already meant this very upload; nothing changed.
    Unchanged(NamedEntry),
    /// The name means other content; the caller did not ask to replace it.
    Conflict(NamedEntry),
}

#[derive(Serialize, Deserialize)]
struct CollectionFile {
    names: BTreeMap<String, NamedEntry>,
}

pub(super) type Names = BTreeMap<String, NamedEntry>;

/// What `ROOT/collection.json` held: the good names, and what was wrong with the rest.
pub(super) struct Loaded {
    pub names: Names,
    /// Why some entries were left out (their file should be kept aside), if any were.
    pub damage: Option<String>,
}

/// Reads `ROOT/collection.json`; a missing file is an empty collection. An entry that does not
/// parse, or whose name is not a plain file name, is left out and the others kept: damage to
/// one entry never costs the node the rest of its names.
pub(super) fn load(root: &Path) -> Result<Loaded, StoreError> {
    let path = root.join(COLLECTION);
    if !super::write::exists(&path)? {
        return Ok(Loaded {
            names: Names::new(),
            damage: None,
        });
    }
    let bytes = read_bounded(&path, MAX_COLLECTION_BYTES)?;
    let file: LenientFile = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut names = Names::new();
    let mut bad = 0;
    for (name, entry) in file.names {
        match serde_json::from_value::<NamedEntry>(entry) {
            Ok(entry) if is_plain_file_name(&name) && names.len() < MAX_NAMES => {
                names.insert(name, entry);
            }
            _ => bad += 1,
        }
    }
    let damage = (bad > 0).then(|| format!("{bad} entries are not valid names"));
    Ok(Loaded { names, damage })
}

/// The file's shape, with each entry still unparsed.
#[derive(Deserialize)]
struct LenientFile {
    names: BTreeMap<String, serde_json::Value>,
}

/// Writes `names` as `ROOT/collection.json`, durably (through a temp file in `tmp`).
pub(super) fn write_file(root: &Path, tmp: &Path, names: &Names) -> Result<(), StoreError> {
    let json = serde_json::to_vec_pretty(&CollectionFile {
        names: names.clone(),
    })
    .expect("the collection serialises");
    let mut file = super::write::TempFile::create(tmp, "collection-")?;
    file.write_all(&json)?;
    file.persist(&root.join(COLLECTION))
}

impl Store {
    /// What `name` means, if anything.
    pub fn named(&self, name: &str) -> Option<NamedEntry> {
        self.names().get(name).copied()
    }

    /// Every name and what it means, sorted by name.
    pub fn collection(&self) -> Vec<(String, NamedEntry)> {
        self.names().iter().map(|(n, e)| (n.clone(), *e)).collect()
    }

    /// The name `video` goes by, if it is the current meaning of one.
    pub fn name_of(&self, video: &VideoId) -> Option<(String, NamedEntry)> {
        self.names()
            .iter()
            .find(|(_, e)| e.video == *video)
            .map(|(n, e)| (n.clone(), *e))
    }

    /// Records what a peer announced: `name` means `entry` if that is newer than what it meant,
    /// and not dated more than [`MAX_AHEAD_MS`] past `now_ms` (this node's clock). Returns
    /// whether anything changed.
    pub fn observe_name(
        &self,
        name: &str,
        entry: NamedEntry,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut names = self.names();
        let newer = names.get(name).is_none_or(|old| entry > *old);
        let plausible = entry.uploaded_at_ms <= now_ms.saturating_add(MAX_AHEAD_MS);
        if !newer || !plausible || !is_plain_file_name(name) || !room_for(&names, name) {
            return Ok(false);
        }
        let previous = names.insert(name.to_owned(), entry);
        self.save_names(&mut names, name, previous)?;
        Ok(true)
    }

    /// A local upload of `video` under `name`, at `now_ms`. If the name means other content it
    /// is only taken over with `replace`; the new entry is then made newer than the old one even
    /// if this node's clock is behind.
    pub fn claim_name(
        &self,
        name: &str,
        video: VideoId,
        now_ms: u64,
        replace: bool,
    ) -> Result<Claim, StoreError> {
        let mut names = self.names();
        let old = names.get(name).copied();
        match old {
            Some(old) if old.video == video => return Ok(Claim::Unchanged(old)),
            Some(old) if !replace => return Ok(Claim::Conflict(old)),
            _ => {}
        }
        if !is_plain_file_name(name) {
            return Err(StoreError::NotAPlainName(name.to_owned()));
        }
        if !room_for(&names, name) {
            return Err(StoreError::CollectionFull(MAX_NAMES));
        }
        let entry = NamedEntry {
            uploaded_at_ms: old.map_or(now_ms, |o| now_ms.max(o.uploaded_at_ms.saturating_add(1))),
            video,
        };
        let previous = names.insert(name.to_owned(), entry);
        self.save_names(&mut names, name, previous)?;
        Ok(Claim::Recorded(entry))
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.inner
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the whole table durably; on failure the in-memory change is undone, so memory never
    /// claims what the disk does not hold.
    fn save_names(
        &self,
        names: &mut Names,
        name: &str,
        previous: Option<NamedEntry>,
    ) -> Result<(), StoreError> {
        let written = write_file(&self.inner.root, &self.tmp_dir(), names);
        if written.is_err() {
            match previous {
                Some(old) => names.insert(name.to_owned(), old),
                None => names.remove(name),
            };
        }
        written
    }
}

fn room_for(names: &Names, name: &str) -> bool {
    names.len() < MAX_NAMES || names.contains_key(name)
}
