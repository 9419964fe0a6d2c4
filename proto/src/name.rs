//! Fragment names. A fragment's name is `fragment_{index}.mp4`, with the index in plain decimal;
//! names from outside are parsed strictly and never used as paths.

use crate::{VideoId, MAX_FRAGMENTS, MAX_SOURCE_NAME_BYTES};

/// The largest publisher key a name entry may carry (an ed25519 key in libp2p's protobuf
/// encoding is 36 bytes), and the largest signature (ed25519: 64 bytes).
pub const MAX_PUBLISHER_KEY_BYTES: usize = 64;
pub const MAX_NAME_SIGNATURE_BYTES: usize = 128;

/// What a name's publisher signs: that `name` means `video` as of `uploaded_at_ms`. A domain
/// prefix keeps the signature from meaning anything else signed with the same key.
pub fn name_claim(name: &str, video: &VideoId, uploaded_at_ms: u64) -> Vec<u8> {
    format!("vidswarm/name/1\n{name}\n{video}\n{uploaded_at_ms}").into_bytes()
}

/// Whether `name` is safe to keep as a file name from outside (a video's source name, an uploaded
/// fragment's name): 1..=255 bytes, no path separator, no NUL or other control character, and not
/// `.` or `..`. Names are still never used as paths; this keeps them printable and unambiguous.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SOURCE_NAME_BYTES
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name != "."
        && name != ".."
}

/// The name of fragment `index`.
pub fn fragment_name(index: u32) -> String {
    format!("fragment_{index}.mp4")
}

/// The index named by `name`, if `name` is exactly `fragment_{index}.mp4` with a canonical decimal
/// index below [`MAX_FRAGMENTS`] (so `fragment_01.mp4`, `fragment_3.mp4/..` and friends are refused).
pub fn parse_fragment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("fragment_")?.strip_suffix(".mp4")?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    let index: u32 = digits.parse().ok()?;
    (index < MAX_FRAGMENTS).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_file_names() {
        for ok in ["fragment_3.mp4", "my clip.mp4", "a", "..a", "é.mp4"] {
            assert!(is_plain_file_name(ok), "{ok:?}");
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\\b",
            "a\0b",
            "a\nb",
            long.as_str(),
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_only_canonical_names() {
        assert_eq!(parse_fragment_name("fragment_0.mp4"), Some(0));
        assert_eq!(parse_fragment_name("fragment_9.mp4"), Some(9));
        assert_eq!(parse_fragment_name("fragment_999.mp4"), Some(999));
        for bad in [
            "fragment_.mp4",
            "fragment_01.mp4",
            "fragment_1000.mp4",
            "fragment_-1.mp4",
            "fragment_+1.mp4",
            "fragment_1.mp4\0",
            "../fragment_1.mp4",
            "fragment_1.mp4/..",
            "fragment_1.MP4",
            "fragment_1",
        ] {
            assert_eq!(parse_fragment_name(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn name_round_trips(i in 0..MAX_FRAGMENTS) {
            prop_assert_eq!(parse_fragment_name(&fragment_name(i)), Some(i));
        }

        #[test]
        fn accepted_names_are_plain_file_names(s in "fragment_[0-9./\\\\]{0,6}\\.mp4") {
            if parse_fragment_name(&s).is_some() {
                prop_assert!(!s.contains('/') && !s.contains('\\') && !s.contains(".."));
            }
        }
    }
}
