//! What store operations return: the error enum and the reports of `open` and `import_split_dir`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use vidswarm_proto::{Hash, ManifestError, VideoId, MAX_CHUNK_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file system has no room left (ENOSPC, EDQUOT): said plainly, because the cause is
    /// what the operator must act on.
    #[error("cannot {op} {}: no space left on the data dir's disk", path.display())]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another `Store` (usually another process) has the data dir open.
    #[error("data dir {} is in use: another node holds its LOCK", .0.display())]
    Locked(PathBuf),
    #[error("content hashes to {actual}, expected {expected}")]
    HashMismatch { expected: Hash, actual: Hash },
    #[error("chunk {chunk} hashes to {actual}, the manifest says {expected}")]
    ChunkMismatch {
        chunk: u64,
        expected: Hash,
        actual: Hash,
    },
    #[error("content is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the upload is larger than the {limit} bytes allowed")]
    UploadTooLarge { limit: u64 },
    #[error("no room: {free} bytes free on the data dir's disk, and {reserve} must stay free (--min-free)")]
    NoRoom { free: u64, reserve: u64 },
    #[error("{} is not valid: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0:?} is not a plain file name")]
    NotAPlainName(String),
    #[error("the default collection holds {0} names, the most it keeps")]
    CollectionFull(usize),
    #[error("fragments are never empty")]
    Empty,
    #[error("fragment {0} is not in the store")]
    FragmentNotFound(Hash),
    #[error("video {0} is not in the store")]
    VideoNotFound(VideoId),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "{len} bytes at offset {offset} is out of range for fragment {hash} \
         ({size} bytes; at most {MAX_CHUNK_SIZE} bytes per read)"
    )]
    OutOfRange {
        hash: Hash,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{} is larger than the {limit} bytes allowed", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// The blocking-pool thread running a store operation panicked or was cancelled.
    #[error("a store operation failed on its worker thread: {0}")]
    Worker(String),
    /// A fragment of a split dir or an export failed; `name` is its `fragment_{i}.mp4`.
    #[error("cannot {op} {name}")]
    Fragment {
        op: &'static str,
        name: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    /// Whether the file system had no room (ENOSPC, or a quota: EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull { .. } | Self::NoRoom { .. } => true,
            Self::Fragment { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }
}

/// `map_err` helper: an I/O error with the operation and the path it was about.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| {
        let path = path.to_owned();
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            StoreError::DiskFull { op, path, source }
        } else {
            StoreError::Io { op, path, source }
        }
    }
}

/// What [`Store::open`](super::Store::open) found: what it kept and what it deleted, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Fragments kept: their content matches their name.
    pub fragments: usize,
    /// Manifests kept: valid, and stored under their own id.
    pub manifests: usize,
    /// Partial fragments kept to resume: each chunk their record claims hashed right.
    pub partials: usize,
    /// Everything deleted (left-over temp files, corrupt or misnamed entries) with the reason.
    pub dropped: Vec<(PathBuf, String)>,
    /// Fragments and manifests that could not be read to check them (a permission, an I/O
    /// error, too many open files): left in place, unchecked, for the next start to check.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// What [`Store::import_split_dir`](super::Store::import_split_dir) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub video_id: VideoId,
    /// Fragments the manifest lists.
    pub fragments: usize,
    /// Fragments written into the store by this import.
    pub imported: usize,
    /// Fragments the store held already (their files were not read).
    pub already_held: usize,
    /// Bytes written by this import.
    pub bytes: u64,
    /// Names of fragments the split dir does not have; the store holds the rest of the video.
    pub missing: Vec<String>,
    /// Whether the manifest was new to the store.
    pub manifest_new: bool,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "video {}: {} of {} fragments held ({} imported, {} bytes; {} already held)",
            self.video_id,
            self.imported + self.already_held,
            self.fragments,
            self.imported,
            self.bytes,
            self.already_held,
        )?;
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", self.missing.join(", "))?;
        }
        Ok(())
    }
}
