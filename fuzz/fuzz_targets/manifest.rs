//! The manifest parser and validator: `Manifest::from_json` on the bytes as they come (a peer's
//! manifest response, an upload, a file at start-up), and `Manifest::validate` on whatever the
//! bytes parse to with its id made to match (the fuzzer cannot forge a BLAKE3 hash, so without
//! that every structural rule would hide behind the id check), and once more with the source's
//! duration set to the input's last 8 bytes as an f64 (mutated JSON text seldom holds the
//! 17-digit floats at the edges of the range that a JSON parser can misread). Asserts: an accepted manifest
//! keeps every rule the manifest documents, checked here independently, and survives the
//! store's round trip (`to_json_pretty`, then `from_json` at the next start) with the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidswarm_proto::manifest::MANIFEST_VERSION;
use vidswarm_proto::{
    is_plain_file_name, parse_fragment_name, Manifest, SplitMode, MAX_CHUNK_SIZE, MAX_FRAGMENTS,
    MIN_CHUNK_SIZE,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        holds_its_rules(&m);
    }
    let Ok(mut m) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    m.video_id = m.computed_id();
    if m.validate().is_ok() {
        holds_its_rules(&m);
    }
    if let Some((_, bits)) = data.split_last_chunk::<8>() {
        m.source.duration = f64::from_bits(u64::from_le_bytes(*bits));
        m.video_id = m.computed_id();
        if m.validate().is_ok() {
            holds_its_rules(&m);
        }
    }
});

fn holds_its_rules(m: &Manifest) {
    assert_eq!(m.version, MANIFEST_VERSION);
    assert_eq!(m.computed_id(), m.video_id);
    assert!(is_plain_file_name(&m.source.name), "{:?}", m.source.name);
    assert!(!m.source.name.contains(['/', '\\']) && m.source.name != "..");
    assert!((MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&m.chunk_size));
    assert!((1..=MAX_FRAGMENTS as usize).contains(&m.fragments.len()));
    if m.mode == SplitMode::Upload {
        assert_eq!(m.fragments.len(), 1);
    }
    let seconds = |s: f64| s.is_finite() && s >= 0.0;
    assert!(seconds(m.source.duration));
    let mut frames: u128 = 0;
    for (i, f) in m.fragments.iter().enumerate() {
        assert_eq!(parse_fragment_name(&f.name), Some(i as u32), "{:?}", f.name);
        assert_eq!(f.index as usize, i);
        assert_eq!(m.fragment_by_name(&f.name).map(|g| g.index), Some(f.index));
        assert!(f.size > 0);
        let chunks = f.size.div_ceil(u64::from(m.chunk_size));
        assert_eq!(f.chunks.len() as u64, chunks, "fragment {i}'s chunk hashes");
        assert!(seconds(f.duration) && seconds(f.start));
        frames += u128::from(f.frame_count);
    }
    assert_eq!(frames, u128::from(m.source.frame_count), "frame counts");
    if let Some(codecs) = &m.codecs {
        assert!(!codecs.is_empty() && codecs.len() <= 256);
    }
    let _ = m.total_size();
    // What the store writes is what it reads back at the next start, under the same id.
    let stored = m.to_json_pretty();
    match Manifest::from_json(&stored) {
        Ok(again) => {
            assert_eq!(again.video_id, m.video_id);
            assert_eq!(&again, m);
        }
        Err(e) => panic!("an accepted manifest, written as the store writes it, is refused: {e}"),
    }
}
