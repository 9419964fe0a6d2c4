//! Chunk geometry and hashing. A fragment of `size` bytes is cut into chunks of `chunk_size` bytes
//! (the last one shorter); each chunk has its own BLAKE3 hash in the manifest so that any chunk,
//! from any peer, can be checked the moment it arrives.

use crate::Hash;

/// How many chunks a fragment of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Offset and length of chunk `index`, or `None` past the end.
pub fn chunk_range(size: u64, chunk_size: u32, index: u64) -> Option<(u64, u32)> {
    let chunk_size = u64::from(chunk_size.max(1));
    let offset = index.checked_mul(chunk_size)?;
    if offset >= size {
        return None;
    }
    let len = (size - offset).min(chunk_size);
    Some((offset, len as u32))
}

/// A fragment's identity as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFragment {
    pub size: u64,
    pub hash: Hash,
    pub chunks: Vec<Hash>,
}

/// Hashes a fragment in one streaming pass: the whole-fragment hash and every chunk hash, fed any
/// way the caller reads (no need to align reads to chunks).
pub struct FragmentHasher {
    chunk_size: usize,
    whole: blake3::Hasher,
    chunk: blake3::Hasher,
    in_chunk: usize,
    size: u64,
    chunks: Vec<Hash>,
}

impl FragmentHasher {
    pub fn new(chunk_size: u32) -> Self {
        Self {
            chunk_size: chunk_size.max(1) as usize,
            whole: blake3::Hasher::new(),
            chunk: blake3::Hasher::new(),
            in_chunk: 0,
            size: 0,
            chunks: Vec::new(),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (self.chunk_size - self.in_chunk).min(bytes.len());
            self.chunk.update(&bytes[..take]);
            self.in_chunk += take;
            bytes = &bytes[take..];
            if self.in_chunk == self.chunk_size {
                self.chunks.push(self.chunk.finalize().into());
                self.chunk.reset();
                self.in_chunk = 0;
            }
        }
    }

    pub fn finish(mut self) -> HashedFragment {
        if self.in_chunk > 0 {
            self.chunks.push(self.chunk.finalize().into());
        }
        HashedFragment {
            size: self.size,
            hash: self.whole.finalize().into(),
            chunks: self.chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CS: u32 = 16;

    #[test]
    fn geometry_at_the_edges() {
        // The table iroh-blobs taught us: 0, 1, chunk-1, chunk, chunk+1, several chunks.
        for (size, count) in [(0, 0), (1, 1), (15, 1), (16, 1), (17, 2), (48, 3), (49, 4)] {
            assert_eq!(chunk_count(size, CS), count, "size {size}");
            let total: u64 = (0..count)
                .map(|i| u64::from(chunk_range(size, CS, i).unwrap().1))
                .sum();
            assert_eq!(total, size);
            assert_eq!(chunk_range(size, CS, count), None);
        }
        assert_eq!(chunk_range(10, CS, u64::MAX), None);
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let h = FragmentHasher::new(CS).finish();
        assert_eq!(h.size, 0);
        assert!(h.chunks.is_empty());
        assert_eq!(h.hash, Hash::of(b""));
    }

    proptest! {
        #[test]
        fn streaming_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..200),
                                     cut in 1usize..40) {
            let mut hasher = FragmentHasher::new(CS);
            for piece in data.chunks(cut) {
                hasher.update(piece);
            }
            let h = hasher.finish();
            prop_assert_eq!(h.size, data.len() as u64);
            prop_assert_eq!(h.hash, Hash::of(&data));
            let expected: Vec<Hash> = data.chunks(CS as usize).map(Hash::of).collect();
            prop_assert_eq!(h.chunks, expected);
        }
    }
}
