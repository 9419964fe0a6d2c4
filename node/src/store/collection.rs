//! The default collection: what the names of loose uploads (the original routes'
//! `/upload_fragment`) mean. Each name maps to the one-fragment video the upload became; the
//! mapping is kept durably in `ROOT/collection.json` and shared over gossip with every
//! announcement of that video. Per name, the entry with the latest `(uploaded_at_ms, video)` wins,
//! so nodes that heard the same announcements agree on what `fragment_3.mp4` means.
//!
//! A name is owned: the first entry signed for it binds it to its publisher's key, and from
//! then on only an entry signed by that key can re-point it (later, or with `replace` locally).
//! Signatures are checked by whoever hands an entry in (`node/tasks.rs`, against libp2p's key
//! types); the store keeps them, so that every node holding the video relays them. An entry
//! from a node that predates signatures binds nothing and is re-pointed as before.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::PoisonError;

use serde::{Deserialize, Serialize};
use vidswarm_proto::{
    is_plain_file_name, VideoId, MAX_NAME_SIGNATURE_BYTES, MAX_PUBLISHER_KEY_BYTES,
    MAX_SOURCE_NAME_BYTES,
};

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
/// no `\` or control characters), each with its entry, its signature (key and signature in
/// hex, at most 2 x (64 + 128) digits) and pretty-printing.
const MAX_COLLECTION_BYTES: usize = MAX_NAMES
    * (2 * MAX_SOURCE_NAME_BYTES + 2 * (MAX_PUBLISHER_KEY_BYTES + MAX_NAME_SIGNATURE_BYTES) + 256)
    + 1024;

/// What a name means. Ordered by time, then video id: the greater entry wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NamedEntry {
    pub uploaded_at_ms: u64,
    pub video: VideoId,
}

/// Who signed a name's entry: the publisher's public key (libp2p's protobuf encoding) and its
/// signature over [`vidswarm_proto::name_claim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameSignature {
    #[serde(with = "hex_bytes")]
    pub publisher: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// A name's entry as kept: what it means and, unless it predates signatures, who said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    #[serde(flatten)]
    pub entry: NamedEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<NameSignature>,
}

impl NameRecord {
    /// The key that owns the name, if a signed entry bound it.
    pub fn owner(&self) -> Option<&[u8]> {
        self.signed.as_ref().map(|s| s.publisher.as_slice())
    }
}

/// The outcome of [`Store::claim_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name now means the upload.
    Recorded(NamedEntry),
    /// The name already meant this very upload; nothing changed.
    Unchanged(NamedEntry),
    /// The name means other content; the caller did not ask to replace it.
    Conflict(NamedEntry),
    /// The name is bound to another publisher's key: only that key can re-point it.
    Owned(NameRecord),
}

#[derive(Serialize, Deserialize)]
struct CollectionFile {
    names: BTreeMap<String, NameRecord>,
}

pub(super) type Names = BTreeMap<String, NameRecord>;

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
        match serde_json::from_value::<NameRecord>(entry) {
            Ok(record) if is_plain_file_name(&name) && names.len() < MAX_NAMES => {
                names.insert(name, record);
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
        self.names().get(name).map(|r| r.entry)
    }

    /// `name`'s entry with its signature, if any.
    pub fn name_record(&self, name: &str) -> Option<NameRecord> {
        self.names().get(name).cloned()
    }

    /// Every name and what it means, sorted by name.
    pub fn collection(&self) -> Vec<(String, NamedEntry)> {
        self.names()
            .iter()
            .map(|(n, r)| (n.clone(), r.entry))
            .collect()
    }

    /// The name `video` goes by, if it is the current meaning of one.
    pub fn name_of(&self, video: &VideoId) -> Option<(String, NamedEntry)> {
        self.name_record_of(video).map(|(n, r)| (n, r.entry))
    }

    /// The name `video` goes by, with the entry's signature.
    pub fn name_record_of(&self, video: &VideoId) -> Option<(String, NameRecord)> {
        self.names()
            .iter()
            .find(|(_, r)| r.entry.video == *video)
            .map(|(n, r)| (n.clone(), r.clone()))
    }

    /// Records what a peer announced: `name` means `entry` if that is newer than what it meant,
    /// not dated more than [`MAX_AHEAD_MS`] past `now_ms` (this node's clock), and, once the
    /// name is bound to a key, signed by that key. `signed` must have been checked by the
    /// caller. Returns whether anything changed.
    pub fn observe_name(
        &self,
        name: &str,
        entry: NamedEntry,
        signed: Option<NameSignature>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut names = self.names();
        let old = names.get(name);
        let newer = old.is_none_or(|old| entry > old.entry);
        let owner_ok = match old.and_then(NameRecord::owner) {
            Some(owner) => signed.as_ref().is_some_and(|s| s.publisher == owner),
            None => true,
        };
        let plausible = entry.uploaded_at_ms <= now_ms.saturating_add(MAX_AHEAD_MS);
        if !newer || !owner_ok || !plausible || !is_plain_file_name(name) || !room_for(&names, name)
        {
            return Ok(false);
        }
        let previous = names.insert(name.to_owned(), NameRecord { entry, signed });
        self.save_names(&mut names, name, previous)?;
        Ok(true)
    }

    /// A local upload of `video` under `name`, at `now_ms`, by the publisher whose public key is
    /// `publisher`; `sign` signs the entry with that key. If the name means other content it is
    /// only taken over with `replace`, and only when no other key owns it; the new entry is then
    /// made newer than the old one even if this node's clock is behind.
    pub fn claim_name(
        &self,
        name: &str,
        video: VideoId,
        now_ms: u64,
        replace: bool,
        publisher: &[u8],
        sign: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Claim, StoreError> {
        let mut names = self.names();
        let old = names.get(name).cloned();
        match &old {
            Some(old) if old.entry.video == video => return Ok(Claim::Unchanged(old.entry)),
            Some(old) if !replace => return Ok(Claim::Conflict(old.entry)),
            Some(old) if old.owner().is_some_and(|o| o != publisher) => {
                return Ok(Claim::Owned(old.clone()))
            }
            _ => {}
        }
        if !is_plain_file_name(name) {
            return Err(StoreError::NotAPlainName(name.to_owned()));
        }
        if !room_for(&names, name) {
            return Err(StoreError::CollectionFull(MAX_NAMES));
        }
        let entry = NamedEntry {
            uploaded_at_ms: old.map_or(now_ms, |o| {
                now_ms.max(o.entry.uploaded_at_ms.saturating_add(1))
            }),
            video,
        };
        let signed = NameSignature {
            publisher: publisher.to_vec(),
            signature: sign(&vidswarm_proto::name_claim(
                name,
                &entry.video,
                entry.uploaded_at_ms,
            )),
        };
        let previous = names.insert(
            name.to_owned(),
            NameRecord {
                entry,
                signed: Some(signed),
            },
        );
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
        previous: Option<NameRecord>,
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

/// Bytes as lowercase hex in the collection file.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let hex = String::deserialize(d)?;
        if hex.len() % 2 != 0 || hex.len() > 2 * super::MAX_NAME_SIGNATURE_BYTES {
            return Err(D::Error::custom("not a hex key or signature"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect()
    }
}
