//! What the service's operations return, and the kind of each failure: whose fault it is and
//! whether retrying helps. Transports map kinds to their own codes (HTTP statuses in
//! `http/error.rs`); they need not know the errors underneath.

use vidswarm_proto::VideoId;

use crate::fetch::FetchError;
use crate::net::NetError;
use crate::store::StoreError;

/// Whose fault a failure is, and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What the caller sent is wrong; sending it again will not help.
    Invalid,
    /// What the caller asked for is not here.
    NotFound,
    /// It conflicts with what is here or running now.
    Conflict,
    /// Larger than allowed.
    TooLarge,
    /// Not possible now (the swarm is down, no peer has it, a limit is reached): retry later.
    Unavailable,
    /// The disk has no room for it (free space below the reserve, or the file system full).
    NoSpace,
    /// This node failed (its disk, a bug): not the caller's fault, and retrying will not help.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("this node holds no manifest {0}")]
    NoManifest(VideoId),
    #[error("video {video} has no fragment {index}")]
    NoFragment { video: VideoId, index: u32 },
    #[error("{0}")]
    NotHeld(String),
    #[error("a fetch of {0} is running; follow it at /api/v1/videos/{0}/fetch")]
    FetchRunning(VideoId),
    #[error(
        "{name} already names other content (video {old}); upload with ?replace=true to replace it"
    )]
    NameTaken { name: String, old: VideoId },
    #[error("that name does not mean a loose upload")]
    NotAnUpload,
    #[error("{name} belongs to publisher {owner}: only that key can re-point it (start the node that holds it with --publisher-key)")]
    NameOwned { name: String, owner: String },
    #[error("{0} could not be fetched")]
    NotFetched(String),
    #[error(transparent)]
    NoRoom(#[from] NoRoom),
}

/// Why there is no room for `needed` more bytes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("no room for {needed} more bytes: {why}")]
pub struct NoRoom {
    pub needed: u64,
    pub why: String,
}

impl ServiceError {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Store(e) => store_kind(e),
            Self::Net(_) | Self::NotFetched(_) => Kind::Unavailable,
            Self::Fetch(e) => fetch_kind(e),
            Self::NoManifest(_)
            | Self::NoFragment { .. }
            | Self::NotHeld(_)
            | Self::NotAnUpload => Kind::NotFound,
            Self::FetchRunning(_) | Self::NameTaken { .. } | Self::NameOwned { .. } => {
                Kind::Conflict
            }
            Self::NoRoom(_) => Kind::NoSpace,
        }
    }
}

pub fn store_kind(e: &StoreError) -> Kind {
    use StoreError as E;
    match e {
        // What a client sent that does not match what it claims.
        E::HashMismatch { .. }
        | E::ChunkMismatch { .. }
        | E::SizeMismatch { .. }
        | E::Empty
        | E::NotAPlainName(_)
        | E::Manifest(_) => Kind::Invalid,
        E::UploadTooLarge { .. } => Kind::TooLarge,
        E::CollectionFull(_) => Kind::Unavailable,
        E::FragmentNotFound(_) | E::VideoNotFound(_) => Kind::NotFound,
        _ if e.is_disk_full() => Kind::NoSpace,
        _ => Kind::Internal,
    }
}

fn fetch_kind(e: &FetchError) -> Kind {
    match e {
        FetchError::Store(e) => store_kind(e),
        FetchError::NoRoom(_) => Kind::NoSpace,
        FetchError::NoSuchFragment { .. } => Kind::NotFound,
        FetchError::ManifestUnavailable { .. }
        | FetchError::Stalled { .. }
        | FetchError::Net(_) => Kind::Unavailable,
    }
}
