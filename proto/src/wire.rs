//! The wire: the transfer protocol and the gossip announcement. Encoded as CBOR (cbor4ii, the
//! maintained encoder libp2p itself uses; serde_cbor is unmaintained, RUSTSEC-2021-0127), with byte
//! payloads as CBOR byte strings, never arrays of integers.
//!
//! ## `/vidswarm/fragment/1` (request-response, one request per stream)
//!
//! | request | response |
//! |---|---|
//! | `Manifest { video }` | `Manifest { json }`: the manifest's bytes; the asker checks them against `video` |
//! | `Chunk { fragment, offset, len, may_decline }` | `Chunk { data }`: exactly `len` bytes of the fragment from `offset`; or, only when `may_decline` is set, `Error { code: Declined, also_declined }` (the offsets of other chunks it would decline now) |
//! | anything the peer cannot serve | `Error { code, message }` |
//!
//! Requests are at most [`MAX_REQUEST_BYTES`], responses at most [`MAX_RESPONSE_BYTES`]; a chunk is
//! at most [`crate::MAX_CHUNK_SIZE`]. Both sides enforce the limits before decoding anything.
//! New variants go at the end. A request a peer cannot decode (an unknown variant, bad CBOR, over
//! the limit) fails that stream: the asker sees a failed request, and the connection carries on.
//!
//! ## Gossip topic [`ANNOUNCE_TOPIC`]
//!
//! An [`Announcement`] says which fragments of a video a peer holds, at most
//! [`MAX_ANNOUNCEMENT_BYTES`] encoded; with `leaving` set, it says goodbye to them instead. While a
//! peer fetches, its announcements also carry `partial`: the fragments it is downloading, each with
//! a bitmap of the chunks it has verified and serves already (BitTorrent's HAVE, batched), so peers
//! can trade chunks long before a whole fragment is held. After a fetch's first progress, the
//! rest goes straight to each connected peer on [`HAVE_PROTOCOL`] instead: the connection
//! authenticates the sender, so no signature, no forwarding and no duplicates.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{Hash, VideoId, MAX_CHUNK_SIZE, MAX_FRAGMENTS, MAX_MANIFEST_BYTES};

/// The transfer protocol's name.
pub const TRANSFER_PROTOCOL: &str = "/vidswarm/fragment/1";
/// The per-peer progress stream: one long-lived stream each way per connected peer, carrying
/// progress-only [`Announcement`]s, each a big-endian `u32` length then its CBOR (at most
/// [`MAX_ANNOUNCEMENT_BYTES`]).
pub const HAVE_PROTOCOL: &str = "/vidswarm/have/1";
/// The gossipsub topic of announcements.
pub const ANNOUNCE_TOPIC: &str = "vidswarm/announce/1";
/// Largest encoded request.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// Largest encoded response: a full manifest or a largest chunk, plus framing.
/// The most chunk offsets a `Declined` answer names beside the one asked for (2.3 KB of CBOR).
pub const MAX_ALSO_DECLINED: usize = 256;
pub const MAX_RESPONSE_BYTES: usize = max(MAX_MANIFEST_BYTES, MAX_CHUNK_SIZE as usize) + 1024;
/// Largest encoded announcement.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 128 * 1024;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Manifest {
        video: VideoId,
    },
    Chunk {
        fragment: Hash,
        offset: u64,
        len: u32,
        /// The asker can get this chunk elsewhere too: a peer whose upload is busy may answer
        /// `Declined` when it sent the chunk to another peer a moment ago, so its upload goes
        /// to chunks the swarm does not have yet. Absent from (and ignored by) older nodes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        may_decline: bool,
    },
    /// "I am stopping; tell me when this arrived." A stopping node sends it to each connected
    /// peer after its goodbyes: it travels on the same connection behind them, so the answer
    /// ([`Response::Bye`]) means they arrived and the node can close now, instead of waiting a
    /// fixed time for gossip that has no "sent" signal. Older nodes cannot decode it and reset
    /// the stream, which tells the same.
    Leaving,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Manifest {
        json: ByteBuf,
    },
    Chunk {
        data: ByteBuf,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// With [`ErrorCode::Declined`]: the offsets of the fragment's other chunks this peer
        /// would decline to the asker now too (sent to other peers a moment ago), at most
        /// [`MAX_ALSO_DECLINED`], so the asker does not spend a request on each of them.
        /// Absent from (and ignored by) older nodes.
        #[serde(
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "at_most_also_declined"
        )]
        also_declined: Vec<u64>,
    },
    /// The answer to [`Request::Leaving`].
    Bye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The peer does not hold what was asked for.
    NotFound,
    /// The request was malformed or out of range.
    BadRequest,
    /// The peer is serving too much right now; ask someone else or later.
    Busy,
    /// The peer failed to read its own store.
    Internal,
    /// The chunk went to another peer a moment ago and this peer's upload is busy: get it from
    /// the peers that have it now. Only sent to requests that allow it (`may_decline`).
    Declined,
}

/// Reads `also_declined`, refusing more than [`MAX_ALSO_DECLINED`] offsets as they come: a
/// response may be megabytes, and a one-byte CBOR integer would otherwise become eight bytes here.
fn at_most_also_declined<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    struct Offsets;
    impl<'de> serde::de::Visitor<'de> for Offsets {
        type Value = Vec<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {MAX_ALSO_DECLINED} chunk offsets")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
            let mut offsets = Vec::new();
            while let Some(offset) = seq.next_element()? {
                if offsets.len() == MAX_ALSO_DECLINED {
                    return Err(serde::de::Error::invalid_length(offsets.len() + 1, &self));
                }
                offsets.push(offset);
            }
            Ok(offsets)
        }
    }
    d.deserialize_seq(Offsets)
}

/// "I hold these fragments of this video" (gossiped on [`ANNOUNCE_TOPIC`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub video: VideoId,
    /// The announcing node's peer id, as text. Receivers check it against the message's signed
    /// source and ignore announcements where they differ.
    pub peer: String,
    /// Whether the peer serves the manifest (it always does when it holds any fragment).
    pub manifest: bool,
    pub fragments: Vec<AnnouncedFragment>,
    /// Set when the video is a loose upload of the default collection: the name it is uploaded
    /// under and when. Absent from (and ignored by) nodes that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<NamedUpload>,
    /// A goodbye: the peer is leaving and no longer serves `fragments` (nor the manifest).
    /// Receivers forget its availability and its provider records for them. Older nodes ignore
    /// the field and see an announcement that adds nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// Fragments being downloaded, with the chunks already verified (served as any held chunk).
    /// Absent from (and ignored by) nodes that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial: Vec<PartialFragment>,
    /// Set when the peer no longer holds the video (deleted or evicted there) but stays in the
    /// swarm: receivers forget its availability of the video and its provider records for the
    /// manifest and for these fragments (the ones it holds for no other video). Sent with no
    /// `fragments`, so nodes that predate the field learn nothing wrong from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<Vec<Hash>>,
}

/// A fragment partly held: bit `k` of `have` (byte `k / 8`, bit `k % 8`, least significant
/// first) is set when chunk `k` is verified and can be asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialFragment {
    pub index: u32,
    pub hash: Hash,
    pub have: ByteBuf,
}

impl PartialFragment {
    /// The bitmap of `verified`, one bit per chunk.
    pub fn bitmap(verified: &[bool]) -> ByteBuf {
        let mut bits = vec![0u8; verified.len().div_ceil(8)];
        for (k, _) in verified.iter().enumerate().filter(|(_, v)| **v) {
            bits[k / 8] |= 1 << (k % 8);
        }
        ByteBuf::from(bits)
    }

    /// Whether chunk `k` is set.
    pub fn has(&self, k: u32) -> bool {
        Self::bit(&self.have, k)
    }

    /// Whether bit `k` of a `have` bitmap is set (false past its end).
    pub fn bit(have: &[u8], k: u32) -> bool {
        let k = k as usize;
        have.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0)
    }
}

/// A default-collection entry: `name` (a plain file name, e.g. `fragment_3.mp4`) means the video
/// announced with it. Every node keeps, per name, the entry with the latest `(uploaded_at_ms,
/// video)`, so all nodes that heard the same announcements agree on what a name means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUpload {
    pub name: String,
    /// Milliseconds since the Unix epoch, on the clock of the node that took the upload.
    pub uploaded_at_ms: u64,
    /// The key of the name's publisher (libp2p's protobuf encoding of a public key), and its
    /// signature over [`name_claim`](crate::name_claim): a name is bound to the first key that
    /// signs it, and only that key can re-point it. Absent from nodes that predate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ByteBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncedFragment {
    pub index: u32,
    pub hash: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// Encodes any wire value as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), value).expect("wire types always encode")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    cbor4ii::serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

impl Request {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let req: Self = decode(bytes, MAX_REQUEST_BYTES)?;
        if let Request::Chunk { len, .. } = req {
            if len == 0 || len > MAX_CHUNK_SIZE {
                return Err(WireError::Invalid(format!(
                    "chunk length {len} outside 1..={MAX_CHUNK_SIZE}"
                )));
            }
        }
        Ok(req)
    }
}

/// CBOR of `Response::Chunk { data }` up to the byte string's length: a one-entry map
/// `{"Chunk": {"data": <bytes>}}`, as serde's externally tagged enum encodes it.
const CHUNK_PREFIX: &[u8] = b"\xa1\x65Chunk\xa1\x64data";

/// The CBOR header of a byte string of `len` bytes (major type 2).
fn byte_string_header(len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![0x40 | len as u8],
        24..=0xff => vec![0x58, len as u8],
        0x100..=0xffff => [&[0x59][..], &(len as u16).to_be_bytes()].concat(),
        _ => [&[0x5a][..], &(len as u32).to_be_bytes()].concat(),
    }
}

/// The length a CBOR byte string header at the start of `rest` declares, and the header's own
/// length; `None` if `rest` does not start with a whole one.
fn byte_string_len(rest: &[u8]) -> Option<(usize, usize)> {
    match *rest {
        [b, ..] if (0x40..=0x57).contains(&b) => Some((usize::from(b - 0x40), 1)),
        [0x58, n, ..] => Some((usize::from(n), 2)),
        [0x59, a, b, ..] => Some((usize::from(u16::from_be_bytes([a, b])), 3)),
        [0x5a, a, b, c, d, ..] => Some((u32::from_be_bytes([a, b, c, d]) as usize, 5)),
        _ => None,
    }
}

/// How many bytes [`Response::encoded_len`] needs to see.
pub const RESPONSE_HEAD: usize = CHUNK_PREFIX.len() + 5;

impl Response {
    /// The whole message's length, when its first bytes (up to [`RESPONSE_HEAD`]) start a chunk
    /// response: a reader can then allocate once, and only when the chunk begins to arrive.
    /// Only a hint: the length a peer declares is checked against the bytes that come.
    pub fn encoded_len(head: &[u8]) -> Option<usize> {
        let rest = head.strip_prefix(CHUNK_PREFIX)?;
        let (len, header) = byte_string_len(rest)?;
        Some(CHUNK_PREFIX.len() + header + len)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode(bytes, MAX_RESPONSE_BYTES)
    }

    /// Decodes, taking ownership so a chunk's bytes are moved, not copied: the hot path of a
    /// transfer. Same result as [`Response::decode`].
    pub fn decode_owned(mut bytes: Vec<u8>) -> Result<Self, WireError> {
        if let Some(rest) = bytes.strip_prefix(CHUNK_PREFIX) {
            let Some((len, header)) = byte_string_len(rest) else {
                return Self::decode(&bytes);
            };
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(WireError::TooLarge {
                    size: bytes.len(),
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            if rest.len() != header + len {
                return Err(WireError::Malformed(format!(
                    "chunk claims {len} bytes, the message holds {}",
                    rest.len().saturating_sub(header)
                )));
            }
            bytes.drain(..CHUNK_PREFIX.len() + header);
            return Ok(Response::Chunk {
                data: ByteBuf::from(bytes),
            });
        }
        Self::decode(&bytes)
    }

    /// Encodes into the pieces to write one after the other: for a chunk, a short header and the
    /// data itself (no copy of the data); for anything else, one CBOR buffer.
    pub fn encode_parts(self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            Response::Chunk { data } => {
                let data = data.into_vec();
                let mut header = CHUNK_PREFIX.to_vec();
                header.extend(byte_string_header(data.len()));
                (header, Some(data))
            }
            other => (encode(&other), None),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            also_declined: Vec::new(),
        }
    }

    /// A [`ErrorCode::Declined`] answer that names the other chunks the asker would be declined
    /// now (the first [`MAX_ALSO_DECLINED`] of them).
    pub fn declined(message: impl Into<String>, mut also: Vec<u64>) -> Self {
        also.truncate(MAX_ALSO_DECLINED);
        Self::Error {
            code: ErrorCode::Declined,
            message: message.into(),
            also_declined: also,
        }
    }
}

impl Announcement {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let a: Self = decode(bytes, MAX_ANNOUNCEMENT_BYTES)?;
        if a.fragments.len() > MAX_FRAGMENTS as usize {
            return Err(WireError::Invalid(format!(
                "{} fragments announced",
                a.fragments.len()
            )));
        }
        if a.peer.len() > 128 {
            return Err(WireError::Invalid("peer id too long".into()));
        }
        if a.partial.len() > MAX_FRAGMENTS as usize {
            return Err(WireError::Invalid(format!(
                "{} partial fragments announced",
                a.partial.len()
            )));
        }
        if a.withdrawn
            .as_ref()
            .is_some_and(|w| w.len() > MAX_FRAGMENTS as usize)
        {
            return Err(WireError::Invalid("too many fragments withdrawn".into()));
        }
        if a.fragments
            .iter()
            .map(|f| f.index)
            .chain(a.partial.iter().map(|f| f.index))
            .any(|i| i >= MAX_FRAGMENTS)
        {
            return Err(WireError::Invalid("fragment index out of range".into()));
        }
        if let Some(named) = &a.named {
            if !crate::is_plain_file_name(&named.name) {
                return Err(WireError::Invalid(
                    "upload name is not a plain file name".into(),
                ));
            }
            let too_long = |b: &Option<ByteBuf>, max| b.as_ref().is_some_and(|b| b.len() > max);
            if too_long(&named.publisher, crate::MAX_PUBLISHER_KEY_BYTES)
                || too_long(&named.signature, crate::MAX_NAME_SIGNATURE_BYTES)
            {
                return Err(WireError::Invalid(
                    "name publisher key or signature too long".into(),
                ));
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_partial_fragment_bitmap_says_which_chunks_are_verified() {
        let verified = [true, false, false, true, false, false, false, false, true];
        let p = PartialFragment {
            index: 2,
            hash: Hash::of(b"f"),
            have: PartialFragment::bitmap(&verified),
        };
        assert_eq!(p.have.as_slice(), &[0b0000_1001, 0b0000_0001]);
        for (k, v) in verified.iter().enumerate() {
            assert_eq!(p.has(k as u32), *v, "chunk {k}");
        }
        assert!(!p.has(9) && !p.has(u32::MAX), "past the bitmap: not held");
        let ann = Announcement {
            video: VideoId(Hash::of(b"v")),
            peer: "p".into(),
            manifest: true,
            fragments: vec![],
            named: None,
            leaving: false,
            partial: vec![p],
            withdrawn: None,
        };
        assert_eq!(Announcement::decode(&encode(&ann)).unwrap(), ann);
        let out_of_range = Announcement {
            partial: vec![PartialFragment {
                index: MAX_FRAGMENTS,
                ..ann.partial[0].clone()
            }],
            ..ann.clone()
        };
        assert!(Announcement::decode(&encode(&out_of_range)).is_err());
    }

    /// What a node from before `Request::Leaving` decodes: the variant is refused (its stream
    /// is reset), so a stopping node's wait for the answer ends on older peers too.
    #[test]
    fn older_nodes_refuse_leaving_rather_than_misread_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum OldRequest {
            Manifest {
                video: VideoId,
            },
            Chunk {
                fragment: Hash,
                offset: u64,
                len: u32,
            },
        }
        let bytes = encode(&Request::Leaving);
        assert!(cbor4ii::serde::from_slice::<OldRequest>(&bytes).is_err());
        let manifest = encode(&Request::Manifest {
            video: VideoId(Hash::of(b"v")),
        });
        assert!(cbor4ii::serde::from_slice::<OldRequest>(&manifest).is_ok());
    }

    #[test]
    fn a_decline_names_other_chunks_and_older_nodes_still_read_it() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        enum OldResponse {
            Error { code: ErrorCode, message: String },
        }
        let declined = Response::declined("sent", (0..1000).map(|k| k * 262_144).collect());
        let Response::Error { also_declined, .. } = &declined else {
            panic!("an error");
        };
        assert_eq!(also_declined.len(), MAX_ALSO_DECLINED, "truncated");
        let bytes = encode(&declined);
        assert_eq!(Response::decode(&bytes).unwrap(), declined);
        assert_eq!(
            cbor4ii::serde::from_slice::<OldResponse>(&bytes).unwrap(),
            OldResponse::Error {
                code: ErrorCode::Declined,
                message: "sent".into()
            }
        );
        // More than the most is refused, not read into memory.
        let too_many = encode(&Response::Error {
            code: ErrorCode::Declined,
            message: String::new(),
            also_declined: vec![0; MAX_ALSO_DECLINED + 1],
        });
        assert!(Response::decode(&too_many).is_err());
        // And what older nodes send reads as a decline that names nothing else.
        let old = encode(&OldResponse::Error {
            code: ErrorCode::Declined,
            message: "sent".into(),
        });
        assert_eq!(
            Response::decode(&old).unwrap(),
            Response::error(ErrorCode::Declined, "sent")
        );
    }

    #[test]
    fn round_trips_and_carries_bytes_as_a_byte_string() {
        let data = vec![7u8; 1000];
        let resp = Response::Chunk {
            data: ByteBuf::from(data.clone()),
        };
        let bytes = encode(&resp);
        // A byte string costs a few bytes of header; an integer array would cost ~2000.
        assert!(bytes.len() < 1020, "{} bytes", bytes.len());
        assert_eq!(Response::decode(&bytes).unwrap(), resp);

        let req = Request::Chunk {
            fragment: Hash::of(b"f"),
            offset: 262_144,
            len: 262_144,
            may_decline: false,
        };
        assert_eq!(Request::decode(&encode(&req)).unwrap(), req);
        // Without `may_decline` the encoding is what older nodes send and read.
        assert!(!String::from_utf8_lossy(&encode(&req)).contains("may_decline"));
        let trading = Request::Chunk {
            fragment: Hash::of(b"f"),
            offset: 0,
            len: 16_384,
            may_decline: true,
        };
        assert_eq!(Request::decode(&encode(&trading)).unwrap(), trading);
        let declined = Response::error(ErrorCode::Declined, "sent a moment ago");
        assert_eq!(Response::decode(&encode(&declined)).unwrap(), declined);
        assert_eq!(
            Request::decode(&encode(&Request::Leaving)).unwrap(),
            Request::Leaving
        );
        assert_eq!(
            Response::decode(&encode(&Response::Bye)).unwrap(),
            Response::Bye
        );
        let ann = Announcement {
            video: VideoId(Hash::of(b"v")),
            peer: "12D3KooW".into(),
            manifest: true,
            fragments: vec![AnnouncedFragment {
                index: 3,
                hash: Hash::of(b"x"),
            }],
            named: None,
            leaving: false,
            partial: vec![],
            withdrawn: None,
        };
        assert_eq!(Announcement::decode(&encode(&ann)).unwrap(), ann);
        let goodbye = Announcement {
            leaving: true,
            ..ann.clone()
        };
        assert_eq!(Announcement::decode(&encode(&goodbye)).unwrap(), goodbye);
        let withdrawn = Announcement {
            fragments: vec![],
            withdrawn: Some(vec![Hash::of(b"x")]),
            ..ann.clone()
        };
        assert_eq!(
            Announcement::decode(&encode(&withdrawn)).unwrap(),
            withdrawn
        );
        assert!(!String::from_utf8_lossy(&encode(&ann)).contains("withdrawn"));
        // A plain announcement's encoding is unchanged (no `leaving` key), so older nodes read it.
        assert!(!String::from_utf8_lossy(&encode(&ann)).contains("leaving"));
        let named = Announcement {
            named: Some(NamedUpload {
                name: "fragment_3.mp4".into(),
                uploaded_at_ms: 1_700_000_000_000,
                publisher: Some(ByteBuf::from(vec![1; 36])),
                signature: Some(ByteBuf::from(vec![2; 64])),
            }),
            ..ann.clone()
        };
        assert_eq!(Announcement::decode(&encode(&named)).unwrap(), named);
        let long_signature = Announcement {
            named: named.named.clone().map(|n| NamedUpload {
                signature: Some(ByteBuf::from(vec![0; crate::MAX_NAME_SIGNATURE_BYTES + 1])),
                ..n
            }),
            ..named.clone()
        };
        assert!(Announcement::decode(&encode(&long_signature)).is_err());
        let hostile = Announcement {
            named: Some(NamedUpload {
                name: "../../etc/passwd".into(),
                uploaded_at_ms: 0,
                publisher: None,
                signature: None,
            }),
            ..ann
        };
        assert!(matches!(
            Announcement::decode(&encode(&hostile)),
            Err(WireError::Invalid(_))
        ));
    }

    #[test]
    fn limits_are_enforced_before_decoding() {
        let big = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            Request::decode(&big),
            Err(WireError::TooLarge { .. })
        ));
        let zero = Request::Chunk {
            fragment: Hash::of(b"f"),
            offset: 0,
            len: 0,
            may_decline: false,
        };
        assert!(matches!(
            Request::decode(&encode(&zero)),
            Err(WireError::Invalid(_))
        ));
        let huge = Request::Chunk {
            fragment: Hash::of(b"f"),
            offset: 0,
            len: MAX_CHUNK_SIZE + 1,
            may_decline: false,
        };
        assert!(Request::decode(&encode(&huge)).is_err());
        let many = Announcement {
            video: VideoId(Hash::of(b"v")),
            peer: "p".into(),
            manifest: true,
            named: None,
            leaving: false,
            partial: vec![],
            withdrawn: None,
            fragments: (0..MAX_FRAGMENTS + 1)
                .map(|index| AnnouncedFragment {
                    index,
                    hash: Hash::of(b"x"),
                })
                .collect(),
        };
        assert!(Announcement::decode(&encode(&many)).is_err());
    }

    #[test]
    fn chunk_fast_path_matches_the_generic_encoding() {
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, 262_144] {
            let resp = Response::Chunk {
                data: ByteBuf::from(vec![9u8; len]),
            };
            let generic = encode(&resp);
            let (head, data) = resp.clone().encode_parts();
            let fast = [head, data.unwrap()].concat();
            assert_eq!(fast, generic, "len {len}");
            assert_eq!(Response::decode_owned(generic).unwrap(), resp);
        }
        let other = Response::error(ErrorCode::Busy, "busy");
        assert_eq!(Response::decode_owned(encode(&other)).unwrap(), other);
        // A chunk whose length header lies is refused, not read past.
        let mut lying = encode(&Response::Chunk {
            data: ByteBuf::from(vec![1u8; 300]),
        });
        lying.truncate(lying.len() - 10);
        assert!(Response::decode_owned(lying).is_err());
    }

    proptest! {
        #[test]
        fn encoded_len_tells_a_chunk_response_length_from_its_head(len in 0usize..70_000) {
            let bytes = encode(&Response::Chunk { data: ByteBuf::from(vec![1u8; len]) });
            let head = &bytes[..bytes.len().min(RESPONSE_HEAD)];
            prop_assert_eq!(Response::encoded_len(head), Some(bytes.len()));
            let other = encode(&Response::error(ErrorCode::Busy, "x".repeat(len % 64)));
            prop_assert_eq!(Response::encoded_len(&other[..other.len().min(RESPONSE_HEAD)]), None);
        }

        #[test]
        // The fast path may refuse more (trailing bytes, which cbor4ii ignores), never accept
        // anything the generic decoder would read differently.
        fn decode_owned_never_disagrees_with_decode(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut with_prefix = CHUNK_PREFIX.to_vec();
            with_prefix.extend(&bytes);
            for input in [bytes.clone(), with_prefix] {
                if let Ok(fast) = Response::decode_owned(input.clone()) {
                    prop_assert_eq!(Response::decode(&input).ok(), Some(fast));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = Announcement::decode(&bytes);
        }
    }
}
