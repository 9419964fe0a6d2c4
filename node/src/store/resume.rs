//! The resume record of a fragment being fetched: which of its chunks are verified and on disk,
//! so that a fetch killed mid-fragment (SIGKILL, power loss, OOM) asks again only for the rest.
//!
//! ```text
//! ROOT/partial/<blake3 hex>        the fragment's bytes so far, each at its offset (sparse)
//! ROOT/partial/<blake3 hex>.have   its record: which chunks of those bytes are verified
//! ```
//!
//! Why a crash cannot make the record claim a chunk that is not there and verified:
//! 1. A chunk is marked only once its bytes hashed to the manifest's chunk hash and were written.
//! 2. A record is saved by taking the marks, then `fdatasync` of the data file, then writing the
//!    record to a temp file, `fsync`, and renaming it over the old one. Every chunk a saved
//!    record claims was durable before the record existed.
//! 3. A rename replaces the whole file: a crash leaves the old record or the new one, each true
//!    (the old one claims less). A record torn anyway (a disk that lies) fails its checksum and
//!    claims nothing.
//! 4. Opening the store hashes every claimed chunk again against a manifest held: a record can
//!    at worst cost a re-fetch, never a wrong byte served or committed.
//!
//! A crash loses at most the chunks marked since the last save: saves come every
//! `--resume-every` bytes of chunks ([`SAVE_EVERY_BYTES`] by default) or [`SAVE_EVERY`],
//! whichever is first, and when a fetch stops. While a save's fsync runs chunks go on arriving;
//! once twice `--resume-every` is unsaved, they wait for it, so a kill costs at most that.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vidswarm_proto::wire::PartialFragment;
use vidswarm_proto::{chunk_count, chunk_range, Hash, Manifest, MAX_MANIFEST_BYTES};

use super::error::{io_err, StoreError};
use super::write::TempFile;

/// The directory of partial fragments and their records, under the data dir.
pub(super) const PARTIAL: &str = "partial";
/// Saved by default after this many bytes of newly verified chunks (`--resume-every`): what
/// one kill can cost at most, on top of the chunks in flight.
pub const SAVE_EVERY_BYTES: u64 = 4 * 1024 * 1024;
/// Saved at least this often while chunks arrive (a slow fetch loses at most this much).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

const MAGIC: &[u8; 16] = b"vidswarm-resume1";
const HEADER: usize = MAGIC.len() + 32 + 8 + 4;
const CHECKSUM: usize = 32;
/// No fragment has more chunks than its manifest has room to list (64 hex digits each).
const MAX_CHUNKS: u64 = (MAX_MANIFEST_BYTES / 64) as u64;
/// The largest record file: what is read of one at most.
pub(super) const MAX_RECORD_BYTES: usize = HEADER + (MAX_CHUNKS as usize).div_ceil(8) + CHECKSUM;

/// Which chunks of a partial fragment are verified. Chunks are `chunk_size` bytes, the last
/// one shorter: the layout of the manifest the fetch was of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub hash: Hash,
    pub size: u64,
    pub chunk_size: u32,
    pub have: Vec<bool>,
}

impl Record {
    /// A record of no chunk yet; `None` for a layout no manifest can have.
    pub fn empty(hash: Hash, size: u64, chunk_size: u32) -> Option<Self> {
        let chunks = chunk_count(size, chunk_size);
        (size > 0 && chunk_size > 0 && chunks <= MAX_CHUNKS).then(|| Self {
            hash,
            size,
            chunk_size,
            have: vec![false; chunks as usize],
        })
    }

    pub fn verified(&self) -> usize {
        self.have.iter().filter(|h| **h).count()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.have.len().div_ceil(8) + CHECKSUM);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.hash.as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&PartialFragment::bitmap(&self.have));
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Parses a record; anything malformed, of an impossible layout or failing its checksum
    /// is refused whole (it then claims nothing).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER + CHECKSUM || bytes.len() > MAX_RECORD_BYTES {
            return Err(format!("{} bytes is no record's size", bytes.len()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
        if blake3::hash(body).as_bytes() != sum {
            return Err("checksum mismatch (torn or damaged)".into());
        }
        let (head, bits) = body.split_at(HEADER);
        if &head[..16] != MAGIC {
            return Err("not a vidswarm resume record".into());
        }
        let hash = Hash::from_bytes(head[16..48].try_into().expect("32 bytes"));
        let size = u64::from_le_bytes(head[48..56].try_into().expect("8 bytes"));
        let chunk_size = u32::from_le_bytes(head[56..60].try_into().expect("4 bytes"));
        let mut record = Self::empty(hash, size, chunk_size)
            .ok_or_else(|| format!("impossible layout: {size} bytes in chunks of {chunk_size}"))?;
        if bits.len() != record.have.len().div_ceil(8) {
            return Err(format!(
                "{} bitmap bytes for {} chunks",
                bits.len(),
                record.have.len()
            ));
        }
        for (k, have) in record.have.iter_mut().enumerate() {
            *have = PartialFragment::bit(bits, k as u32);
        }
        Ok(record)
    }

    /// Drops every claim whose bytes in `data` do not hash to `chunks` (the manifest's chunk
    /// hashes); returns how many were dropped.
    pub fn recheck(&mut self, data: &File, chunks: &[Hash]) -> usize {
        let mut dropped = 0;
        let mut buf = Vec::new();
        for (k, have) in self.have.iter_mut().enumerate() {
            if !*have {
                continue;
            }
            let good =
                chunk_range(self.size, self.chunk_size, k as u64).is_some_and(|(at, len)| {
                    buf.resize(len as usize, 0);
                    data.read_exact_at(&mut buf, at).is_ok()
                        && chunks.get(k) == Some(&Hash::of(&buf))
                });
            if !good {
                *have = false;
                dropped += 1;
            }
        }
        dropped
    }

    /// Writes the record durably at `dest` (temp file in `tmp`, fsync, rename). The caller has
    /// made every claimed chunk durable first.
    pub(super) fn save(&self, tmp: &Path, dest: &Path) -> Result<(), StoreError> {
        let mut file = TempFile::create(tmp, "have-")?;
        file.write_all(&self.encode())?;
        file.persist(dest)
    }
}

/// The chunk hashes of fragment `hash` in a manifest of chunk size `chunk_size`, if one is held.
pub(super) fn chunks_of<'m>(
    manifests: impl IntoIterator<Item = &'m Manifest>,
    hash: &Hash,
    chunk_size: u32,
) -> Option<Vec<Hash>> {
    manifests
        .into_iter()
        .filter(|m| m.chunk_size == chunk_size)
        .flat_map(|m| m.fragments.iter())
        .find(|f| f.blake3 == *hash)
        .map(|f| f.chunks.clone())
}

/// `ROOT/partial/<hash>` and its record.
pub(super) fn paths(root: &Path, hash: &Hash) -> (PathBuf, PathBuf) {
    let dir = root.join(PARTIAL);
    (dir.join(hash.to_string()), dir.join(format!("{hash}.have")))
}

/// Reads the record at `path`, bounded.
pub(super) fn read(path: &Path) -> Result<Record, StoreError> {
    let bytes = super::read_bounded(path, MAX_RECORD_BYTES)?;
    Record::decode(&bytes).map_err(|reason| StoreError::Corrupt {
        path: path.to_owned(),
        reason,
    })
}

/// Removes a partial fragment and its record, if there.
pub(super) fn remove(root: &Path, hash: &Hash) -> Result<(), StoreError> {
    let (data, record) = paths(root, hash);
    for path in [record, data] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut r = Record::empty(Hash::of(b"f"), 10, 4).unwrap();
        r.have[2] = true;
        r
    }

    #[test]
    fn a_record_round_trips() {
        let r = record();
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.verified(), 1);
    }

    #[test]
    fn any_damage_makes_it_claim_nothing() {
        let bytes = record().encode();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(Record::decode(&bad).is_err(), "a flip at {at} was accepted");
        }
        for len in 0..bytes.len() {
            assert!(Record::decode(&bytes[..len]).is_err(), "torn at {len}");
        }
        let mut zeros = bytes.clone();
        zeros.iter_mut().for_each(|b| *b = 0);
        assert!(Record::decode(&zeros).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_to_a_record_or_an_error(bytes in proptest::collection::vec(0u8.., 0..200)) {
            let _ = Record::decode(&bytes);
        }

        #[test]
        fn every_record_round_trips(have in proptest::collection::vec(proptest::bool::ANY, 1..100), last in 1u32..=4) {
            let size = (have.len() as u64 - 1) * 4 + u64::from(last);
            let mut r = Record::empty(Hash::of(b"f"), size, 4).unwrap();
            r.have = have;
            proptest::prop_assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn impossible_layouts_are_refused() {
        assert!(Record::empty(Hash::of(b"f"), 0, 4).is_none());
        assert!(Record::empty(Hash::of(b"f"), 10, 0).is_none());
        assert!(Record::empty(Hash::of(b"f"), MAX_CHUNKS + 1, 1).is_none());
        assert!(Record::empty(Hash::of(b"f"), MAX_CHUNKS, 1).is_some());
        assert!(Record::decode(&vec![0; MAX_RECORD_BYTES + 1]).is_err());
    }

    #[test]
    fn a_recheck_drops_the_claims_whose_bytes_are_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, b"aaaabbbbcc").unwrap();
        let chunks = [Hash::of(b"aaaa"), Hash::of(b"bbbb"), Hash::of(b"cc")];
        let mut r = Record::empty(Hash::of(b"aaaabbbbcc"), 10, 4).unwrap();
        r.have = vec![true, true, true];
        let file = File::open(&path).unwrap();
        assert_eq!(r.recheck(&file, &chunks), 0);
        std::fs::write(&path, b"aaaaXbbbcc").unwrap();
        assert_eq!(r.recheck(&file, &chunks), 1);
        assert_eq!(r.have, vec![true, false, true]);
        std::fs::write(&path, b"aaaa").unwrap(); // shorter: the rest cannot be read
        assert_eq!(r.recheck(&file, &chunks), 1);
        assert_eq!(r.have, vec![true, false, false]);
    }
}
