//! 32-byte BLAKE3 digests. On the outside (JSON, paths, logs) they are 64 lowercase hex digits;
//! parsing accepts nothing else, so a hash taken from a peer or a URL is always a safe file name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A BLAKE3 digest of some bytes (a fragment, a chunk, a canonical manifest).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a hash: expected 64 lowercase hex digits, got {got:?}")]
pub struct ParseHashError {
    got: String,
}

impl Hash {
    pub const LEN: usize = 32;

    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The first 8 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseHashError {
            got: s.chars().take(80).collect(),
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(err)?;
            let lo = hex_digit(pair[1]).ok_or_else(err)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

/// Lowercase only: one spelling per hash keeps file names and comparisons canonical.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A video's identity: the hash of its manifest's canonical encoding (see [`crate::manifest`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VideoId(pub Hash);

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VideoId({})", self.0)
    }
}

impl FromStr for VideoId {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(VideoId)
    }
}

impl VideoId {
    pub fn short(&self) -> String {
        self.0.short()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_round_trip_matches_blake3() {
        let h = Hash::of(b"vidswarm");
        assert_eq!(h.to_hex(), blake3::hash(b"vidswarm").to_hex().as_str());
        assert_eq!(h.to_hex().parse::<Hash>().unwrap(), h);
    }

    #[test]
    fn rejects_anything_but_64_lowercase_hex() {
        let good = Hash::of(b"x").to_hex();
        for bad in [
            String::new(),
            good[..63].to_owned(),
            format!("{good}0"),
            good.to_uppercase(),
            format!("../{}", &good[3..]),
            format!("{}\0", &good[..63]),
            "é".repeat(32),
        ] {
            assert!(bad.parse::<Hash>().is_err(), "accepted {bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in any::<[u8; 32]>()) {
            let h = Hash::from_bytes(bytes);
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Hash>();
        }
    }
}
