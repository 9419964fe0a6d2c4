//! vidswarm's shared vocabulary: content hashes, video ids, fragment names, the manifest and the
//! limits every node agrees on. Serde types and pure functions only; no I/O, no runtime.
//!
//! - [`hash`]: [`Hash`] (BLAKE3, hex on the outside) and [`VideoId`].
//! - [`name`]: the `fragment_{i}.mp4` naming rule, parsed strictly.
//! - [`manifest`]: [`Manifest`], its canonical encoding, its id and its validation.
//! - [`wire`]: the transfer protocol's messages, the gossip announcement, their limits and codec.
//! - [`chunks`]: chunk geometry and the one-pass hasher that yields a fragment's hash and chunk hashes.

pub mod chunks;
pub mod hash;
pub mod manifest;
pub mod mp4;
pub mod name;
pub mod wire;

pub use chunks::{chunk_count, chunk_range, FragmentHasher, HashedFragment};
pub use hash::{Hash, ParseHashError, VideoId};
pub use manifest::{FragmentInfo, Manifest, ManifestError, SourceInfo, SplitMode};
pub use name::{
    fragment_name, is_plain_file_name, name_claim, parse_fragment_name, MAX_NAME_SIGNATURE_BYTES,
    MAX_PUBLISHER_KEY_BYTES,
};

/// Bytes per chunk in manifests this version writes: the unit of transfer and of verification.
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// Smallest and largest chunk size a manifest may declare (a peer cannot make us hash 1-byte
/// chunks nor buffer a gigabyte for one).
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
/// Most fragments one video may have.
pub const MAX_FRAGMENTS: u32 = 1000;
/// Largest manifest (JSON) anyone should parse. With 256 KiB chunks a 10 GiB video needs about
/// 40k chunk hashes of 66 bytes each, so 8 MiB leaves room.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;
/// Longest source file name kept in a manifest (bytes), as most file systems allow.
pub const MAX_SOURCE_NAME_BYTES: usize = 255;
