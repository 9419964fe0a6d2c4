//! The manifest: a video's table of contents and its identity.
//!
//! `video_id` is the BLAKE3 hash of the manifest's *canonical encoding*: the manifest as JSON
//! without the `video_id` field, object keys sorted by byte order, no white space, numbers and
//! strings as `serde_json` writes them. Any tool can recompute it, e.g. in Python:
//! `blake3(json.dumps(m_without_id, sort_keys=True, separators=(",", ":")).encode())`.
//! Times are seconds rounded to microseconds, so the shortest round-trip form of each float is
//! short and the same in every mainstream JSON library.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    chunk_count, fragment_name, is_plain_file_name, Hash, VideoId, MAX_CHUNK_SIZE, MAX_FRAGMENTS,
    MAX_MANIFEST_BYTES, MIN_CHUNK_SIZE,
};

/// The manifest format this version writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// How the splitter cut the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// Lossless stream copy, cut at the source's own keyframes.
    Copy,
    /// Re-encoded with keyframes forced at the cut points.
    Reencode,
    /// One loose fragment uploaded as it was (the original routes' `/upload_fragment`): not cut by
    /// vidswarm, so its durations and frame counts are unknown and recorded as 0.
    Upload,
}

impl std::fmt::Display for SplitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitMode::Copy => "copy",
            SplitMode::Reencode => "reencode",
            SplitMode::Upload => "upload",
        })
    }
}

/// What the video was split from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// File name only, never a path.
    pub name: String,
    pub size: u64,
    /// Seconds.
    pub duration: f64,
    /// Video frames in the source; the fragments' frame counts add up to this.
    pub frame_count: u64,
}

/// One fragment: a stand-alone playable MP4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragmentInfo {
    pub index: u32,
    /// Always `fragment_{index}.mp4`.
    pub name: String,
    pub size: u64,
    /// Seconds.
    pub duration: f64,
    /// Seconds from the start of the source.
    pub start: f64,
    pub frame_count: u64,
    /// BLAKE3 of the whole fragment.
    pub blake3: Hash,
    /// BLAKE3 of each `chunk_size` slice, in order.
    pub chunks: Vec<Hash>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub video_id: VideoId,
    pub source: SourceInfo,
    pub mode: SplitMode,
    /// Bytes per chunk for every fragment of this video.
    pub chunk_size: u32,
    pub fragments: Vec<FragmentInfo>,
    /// The RFC 6381 codec string of the fragments' tracks (`avc1.64001f,mp4a.40.2`) when they are
    /// fragmented MP4 a browser can be asked to play (`MediaSource.isTypeSupported`). Absent
    /// from manifests of splits that predate it, and of uploads: those are not played through
    /// Media Source Extensions. Absent means absent from the canonical form too, so older
    /// manifests keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} allowed")]
    TooLarge(usize),
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("manifest version {0} is not supported (this build reads version {MANIFEST_VERSION})")]
    Version(u32),
    #[error("video_id {claimed} does not match the manifest's content (which hashes to {actual})")]
    IdMismatch { claimed: VideoId, actual: VideoId },
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Builds a manifest and computes its id.
    pub fn new(
        source: SourceInfo,
        mode: SplitMode,
        chunk_size: u32,
        fragments: Vec<FragmentInfo>,
    ) -> Self {
        let mut m = Self {
            version: MANIFEST_VERSION,
            video_id: VideoId(Hash::from_bytes([0; 32])),
            source,
            mode,
            chunk_size,
            fragments,
            codecs: None,
        };
        m.video_id = m.computed_id();
        m
    }

    /// The same manifest with its fragments' codec string (and so another id).
    pub fn with_codecs(mut self, codecs: Option<String>) -> Self {
        self.codecs = codecs;
        self.video_id = self.computed_id();
        self
    }

    /// Parses and fully validates a manifest from untrusted bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Pretty JSON for `manifest.json`.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serialises");
        out.push(b'\n');
        out
    }

    /// The bytes `video_id` is the hash of.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("manifest serialises");
        if let Value::Object(map) = &mut value {
            map.remove("video_id");
        }
        let mut out = Vec::with_capacity(1024);
        write_canonical(&value, &mut out);
        out
    }

    pub fn computed_id(&self) -> VideoId {
        VideoId(Hash::of(&self.canonical_bytes()))
    }

    pub fn fragment(&self, index: u32) -> Option<&FragmentInfo> {
        self.fragments.get(index as usize)
    }

    /// The fragment called `name` in this manifest.
    pub fn fragment_by_name(&self, name: &str) -> Option<&FragmentInfo> {
        self.fragments.iter().find(|f| f.name == name)
    }

    pub fn total_size(&self) -> u64 {
        self.fragments.iter().map(|f| f.size).sum()
    }

    /// Every rule a manifest from outside must pass before anything trusts it.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |msg: String| Err(ManifestError::Invalid(msg));
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(self.version));
        }
        let actual = self.computed_id();
        if actual != self.video_id {
            return Err(ManifestError::IdMismatch {
                claimed: self.video_id,
                actual,
            });
        }
        let name = &self.source.name;
        if !is_plain_file_name(name) {
            return invalid(format!("source name {name:?} is not a plain file name"));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return invalid(format!(
                "chunk_size {} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                self.chunk_size
            ));
        }
        if let Some(codecs) = &self.codecs {
            let fine = |c: char| c.is_ascii_alphanumeric() || ".,+-_ ".contains(c);
            if codecs.is_empty() || codecs.len() > 256 || !codecs.chars().all(fine) {
                return invalid("codecs is not an RFC 6381 codec list".into());
            }
        }
        let n = self.fragments.len();
        if n == 0 || n > MAX_FRAGMENTS as usize {
            return invalid(format!("{n} fragments; a manifest has 1..={MAX_FRAGMENTS}"));
        }
        if self.mode == SplitMode::Upload && n != 1 {
            return invalid(format!("an upload is one fragment, not {n}"));
        }
        if !valid_seconds(self.source.duration) {
            return invalid("source duration is not a finite, non-negative number".into());
        }
        let mut frames = 0u64;
        for (i, f) in self.fragments.iter().enumerate() {
            if f.index as usize != i {
                return invalid(format!("fragment {i} claims index {}", f.index));
            }
            if f.name != fragment_name(f.index) {
                return invalid(format!("fragment {i} is named {:?}", f.name));
            }
            if f.size == 0 {
                return invalid(format!("fragment {i} is empty"));
            }
            if chunk_count(f.size, self.chunk_size) != f.chunks.len() as u64 {
                return invalid(format!(
                    "fragment {i} has {} chunk hashes, its size needs {}",
                    f.chunks.len(),
                    chunk_count(f.size, self.chunk_size)
                ));
            }
            if !valid_seconds(f.duration) || !valid_seconds(f.start) {
                return invalid(format!("fragment {i} has an invalid start or duration"));
            }
            let Some(sum) = frames.checked_add(f.frame_count) else {
                return invalid(format!("fragment {i}'s frame count overflows the total"));
            };
            frames = sum;
        }
        if frames != self.source.frame_count {
            return invalid(format!(
                "fragments hold {frames} frames, the source {}",
                self.source.frame_count
            ));
        }
        Ok(())
    }
}

fn valid_seconds(s: f64) -> bool {
    s.is_finite() && s >= 0.0
}

/// Rounds seconds to microseconds, the precision manifests keep.
pub fn round_seconds(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

/// Writes `v` with object keys in byte order and no white space. Explicit sorting keeps the encoding
/// independent of serde_json's `preserve_order` feature, which another crate could switch on.
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("string serialises");
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("scalar serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FragmentHasher, DEFAULT_CHUNK_SIZE};

    pub(crate) fn sample() -> Manifest {
        let fragments = (0..3u32)
            .map(|i| {
                let bytes = vec![i as u8; 300_000 + i as usize];
                let mut h = FragmentHasher::new(DEFAULT_CHUNK_SIZE);
                h.update(&bytes);
                let h = h.finish();
                FragmentInfo {
                    index: i,
                    name: fragment_name(i),
                    size: h.size,
                    duration: 2.0,
                    start: f64::from(i) * 2.0,
                    frame_count: 50,
                    blake3: h.hash,
                    chunks: h.chunks,
                }
            })
            .collect();
        let source = SourceInfo {
            name: "demo.mp4".into(),
            size: 1_000_000,
            duration: 6.0,
            frame_count: 150,
        };
        Manifest::new(source, SplitMode::Reencode, DEFAULT_CHUNK_SIZE, fragments)
    }

    #[test]
    fn round_trips_through_json_and_validates() {
        let m = sample();
        let parsed = Manifest::from_json(&m.to_json_pretty()).unwrap();
        assert_eq!(parsed, m);
        assert_eq!(parsed.fragments[1].chunks.len(), 2);
    }

    #[test]
    fn id_is_the_hash_of_sorted_compact_json_without_the_id() {
        let m = sample();
        let text = String::from_utf8(m.canonical_bytes()).unwrap();
        assert!(text.starts_with(r#"{"chunk_size":262144,"fragments":[{"blake3":""#));
        assert!(!text.contains("video_id") && !text.contains(' '));
        assert_eq!(m.video_id, VideoId(Hash::of(text.as_bytes())));
    }

    #[test]
    fn any_edit_changes_the_id_and_is_caught() {
        let mut m = sample();
        m.fragments[2].blake3 = Hash::of(b"other bytes");
        match Manifest::from_json(&m.to_json_pretty()) {
            Err(ManifestError::IdMismatch { claimed, .. }) => {
                assert_eq!(claimed, sample().video_id)
            }
            other => panic!("expected IdMismatch, got {other:?}"),
        }
    }

    #[test]
    fn rejects_structurally_bad_manifests_even_with_a_matching_id() {
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "path in source name",
                Box::new(|m| m.source.name = "../etc/passwd".into()),
            ),
            (
                "wrong fragment name",
                Box::new(|m| m.fragments[0].name = "../x".into()),
            ),
            ("index gap", Box::new(|m| m.fragments[1].index = 7)),
            (
                "chunk count",
                Box::new(|m| {
                    m.fragments[0].chunks.pop();
                }),
            ),
            ("tiny chunks", Box::new(|m| m.chunk_size = 1)),
            ("frame sum", Box::new(|m| m.source.frame_count += 1)),
            ("no fragments", Box::new(|m| m.fragments.clear())),
            ("negative start", Box::new(|m| m.fragments[0].start = -1.0)),
        ];
        for (what, edit) in cases {
            let mut m = sample();
            edit(&mut m);
            m.video_id = m.computed_id();
            assert!(
                matches!(
                    Manifest::from_json(&m.to_json_pretty()),
                    Err(ManifestError::Invalid(_))
                ),
                "{what} accepted"
            );
        }
    }

    #[test]
    fn rejects_oversized_and_malformed_input() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::from_json(&big),
            Err(ManifestError::TooLarge(_))
        ));
        assert!(matches!(
            Manifest::from_json(b"{\"version\":1}"),
            Err(ManifestError::Malformed(_))
        ));
        assert!(matches!(
            Manifest::from_json(b"\xff\xfe"),
            Err(ManifestError::Malformed(_))
        ));
    }

    /// The fuzz target's frame-count rule, on a hand-made input: the sum saturated at u64::MAX,
    /// so fragments of u64::MAX frames each "added up" to a source of u64::MAX frames.
    #[test]
    fn frame_counts_that_overflow_do_not_add_up_to_the_source() {
        let mut m = sample();
        for f in &mut m.fragments[..2] {
            f.frame_count = u64::MAX;
        }
        m.source.frame_count = u64::MAX;
        m.video_id = m.computed_id();
        assert!(matches!(m.validate(), Err(ManifestError::Invalid(_))));
    }

    /// Found by `fuzz/fuzz_targets/manifest.rs`: serde_json's default float parser misread this
    /// duration (a last-digit error), so a manifest holding it, as a node's store writes it, hashed
    /// to another id when read back: refused at the next start, and by every peer fetching it.
    #[test]
    fn a_manifest_keeps_its_id_through_a_float_the_default_json_parser_misreads() {
        let duration = 3.777526950291629e-258;
        let text = br#"{"version":1,"video_id":"9bb9dbf1cd17bfaebaa8b2f7b5d2bb09e37c97b311a276ccfffd9b8c2ffc36d3","source":{"name":"frag","size":10,"duration":3.777526950291629e-258,"frame_count":0},"mode":"upload","chunk_size":262144,"fragments":[{"index":0,"name":"fragment_0.mp4","size":10,"duration":0.0,"start":0.0,"frame_count":0,"blake3":"7e52aeb0d161c90714aca8a001c01e65c6ecdaf288681e4ba3d98f418259c175","chunks":["7e52aeb0d161c90714aca8a001c01e65c6ecdaf288681e4ba3d98f418259c175"]}]}"#;
        let mut m: Manifest = serde_json::from_slice(text).unwrap();
        assert_eq!(m.source.duration.to_bits(), f64::to_bits(duration));
        m.video_id = m.computed_id();
        m.validate().unwrap();
        let stored = m.to_json_pretty();
        let again = Manifest::from_json(&stored).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn canonical_form_ignores_key_order_and_whitespace_of_the_file() {
        let m = sample();
        let mut v = serde_json::to_value(&m).unwrap();
        // Re-serialise through a differently ordered, indented document.
        let reordered = serde_json::to_string_pretty(&v.as_object_mut().unwrap().clone()).unwrap();
        let parsed = Manifest::from_json(reordered.as_bytes()).unwrap();
        assert_eq!(parsed.computed_id(), m.video_id);
    }
}
