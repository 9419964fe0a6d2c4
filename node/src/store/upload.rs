//! Fragments that arrive as a stream from outside (HTTP uploads): written to a temp file and
//! hashed, whole and per chunk, on the way in, so no upload is ever held whole in memory and
//! nothing is visible until it is verified and durable.

use vidswarm_proto::{FragmentHasher, FragmentInfo, HashedFragment};

use super::error::StoreError;
use super::verify::{Expected, Hashed};
use super::write::TempFile;
use super::Store;

impl Store {
    /// Starts an upload of at most `limit` bytes, hashed in chunks of `chunk_size`.
    pub fn begin_upload(&self, chunk_size: u32, limit: u64) -> Result<Upload, StoreError> {
        Ok(Upload {
            store: self.clone(),
            tmp: self.temp()?,
            hasher: FragmentHasher::new(chunk_size),
            chunk_size,
            size: 0,
            limit,
            checked_at: 0,
        })
    }
}

/// An upload in progress. Dropping it uncommitted deletes its temp file.
pub struct Upload {
    store: Store,
    tmp: TempFile,
    hasher: FragmentHasher,
    chunk_size: u32,
    size: u64,
    limit: u64,
    /// The size at the last free-space check.
    checked_at: u64,
}

/// How many bytes an upload writes between two checks of the free space left.
const CHECK_FREE_EVERY: u64 = 8 << 20;

impl Upload {
    /// Appends `bytes`; refuses (before writing anything) what would pass the limit.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let size = self.size.saturating_add(bytes.len() as u64);
        if size > self.limit {
            return Err(StoreError::UploadTooLarge { limit: self.limit });
        }
        if self.size == 0 || size - self.checked_at >= CHECK_FREE_EVERY {
            self.store.check_reserve(CHECK_FREE_EVERY)?;
            self.checked_at = self.size;
        }
        self.hasher.update(bytes);
        self.tmp.write_all(bytes)?;
        self.size = size;
        Ok(())
    }

    /// Checks what arrived (against `expected` when a manifest describes it: size, whole hash,
    /// every chunk hash). Nothing is visible until [`Verified::persist`], so the
    /// caller can still refuse it (a name conflict, say) without anything having been stored.
    pub fn finish(self, expected: Option<&FragmentInfo>) -> Result<Verified, StoreError> {
        let got = self.hasher.finish();
        match expected {
            Some(f) => {
                let expected = Expected {
                    hash: &f.blake3,
                    manifest: Some((f, self.chunk_size)),
                };
                expected.check(Hashed {
                    size: got.size,
                    hash: got.hash,
                    chunks: Some(got.chunks.clone()),
                })?;
            }
            None if got.size == 0 => return Err(StoreError::Empty),
            None => {}
        }
        Ok(Verified {
            store: self.store,
            tmp: self.tmp,
            fragment: got,
        })
    }
}

/// An upload that was checked and is on disk, not yet in the store. Dropping it deletes it.
pub struct Verified {
    store: Store,
    tmp: TempFile,
    fragment: HashedFragment,
}

impl Verified {
    pub fn fragment(&self) -> &HashedFragment {
        &self.fragment
    }

    /// Makes it a durable fragment of the store (a no-op if the store held it already).
    pub fn persist(self) -> Result<HashedFragment, StoreError> {
        self.tmp
            .persist_new(&self.store.fragment_file(&self.fragment.hash))?;
        Ok(self.fragment)
    }
}
