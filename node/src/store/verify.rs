//! Streaming hashing: every byte the store keeps is hashed on its way in (and again on open),
//! in fixed-size reads, so no fragment is ever held whole in memory.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use vidswarm_proto::{FragmentHasher, FragmentInfo, Hash};

use super::error::{io_err, StoreError};

/// Large enough for BLAKE3's SIMD paths, small enough to allocate per stream.
const BUF: usize = 64 * 1024;

/// What some content must be: its hash, and when a manifest describes it, its size and chunks.
pub(crate) struct Expected<'a> {
    pub hash: &'a Hash,
    pub manifest: Option<(&'a FragmentInfo, u32)>,
}

impl Expected<'_> {
    fn size(&self) -> Option<u64> {
        self.manifest.map(|(f, _)| f.size)
    }

    /// Checks what was hashed against what was expected: size, whole hash, then chunk hashes
    /// (a manifest whose chunks disagree with its own whole hash would poison chunked fetches).
    pub(crate) fn check(&self, got: Hashed) -> Result<u64, StoreError> {
        if let Some(expected) = self.size() {
            if got.size != expected {
                return Err(StoreError::SizeMismatch {
                    expected,
                    actual: got.size,
                });
            }
        }
        if got.size == 0 {
            return Err(StoreError::Empty);
        }
        if got.hash != *self.hash {
            return Err(StoreError::HashMismatch {
                expected: *self.hash,
                actual: got.hash,
            });
        }
        if let (Some((info, _)), Some(chunks)) = (self.manifest, got.chunks) {
            let wrong = info.chunks.iter().zip(&chunks).enumerate();
            for (i, (expected, actual)) in wrong {
                if expected != actual {
                    return Err(StoreError::ChunkMismatch {
                        chunk: i as u64,
                        expected: *expected,
                        actual: *actual,
                    });
                }
            }
        }
        Ok(got.size)
    }
}

pub(crate) struct Hashed {
    pub size: u64,
    pub hash: Hash,
    pub chunks: Option<Vec<Hash>>,
}

// One per stream, short-lived: the variants' size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Hasher {
    Whole(blake3::Hasher, u64),
    Chunked(FragmentHasher),
}

impl Hasher {
    fn new(expected: &Expected<'_>) -> Self {
        match expected.manifest {
            Some((_, chunk_size)) => Hasher::Chunked(FragmentHasher::new(chunk_size)),
            None => Hasher::Whole(blake3::Hasher::new(), 0),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Whole(h, n) => {
                h.update(bytes);
                *n += bytes.len() as u64;
            }
            Hasher::Chunked(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Hashed {
        match self {
            Hasher::Whole(h, size) => Hashed {
                size,
                hash: h.finalize().into(),
                chunks: None,
            },
            Hasher::Chunked(h) => {
                let h = h.finish();
                Hashed {
                    size: h.size,
                    hash: h.hash,
                    chunks: Some(h.chunks),
                }
            }
        }
    }
}

/// Copies `src` (read from `src_path`) into `dst` (written at `dst_path`) while hashing it, then
/// checks the result. Reads at most one byte past an expected size, so an oversized source cannot
/// fill the disk. Returns the size.
pub(crate) fn copy_verified(
    src: &mut impl Read,
    src_path: &Path,
    dst: &mut impl Write,
    dst_path: &Path,
    expected: &Expected<'_>,
) -> Result<u64, StoreError> {
    let limit = expected.size().map_or(u64::MAX, |s| s.saturating_add(1));
    let mut src = src.take(limit);
    let mut hasher = Hasher::new(expected);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", src_path)(e)),
        };
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(io_err("write", dst_path))?;
    }
    expected.check(hasher.finish())
}

/// Checks content already on disk (or in a temp file) against a bare hash; returns its size.
pub(crate) fn verify_reader(
    src: &mut impl Read,
    path: &Path,
    expected: &Hash,
) -> Result<u64, StoreError> {
    let expected = Expected {
        hash: expected,
        manifest: None,
    };
    copy_verified(src, path, &mut std::io::sink(), path, &expected)
}
