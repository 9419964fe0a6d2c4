//! The HTTP Range parser of fragment downloads (`http::range::requested`). The input is the
//! file's length (8 bytes, little-endian) and the header's value. Asserts: a range it answers
//! lies within `0..len`, is not empty and is what a single-range header of that form means; an
//! error is a 400 or a 416.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidswarm_node::fuzz_api;

fuzz_target!(|data: &[u8]| {
    let Some((len, value)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len);
    let Some(answer) = fuzz_api::range(value, len) else {
        return;
    };
    match answer {
        Ok(Some((start, end))) => {
            assert!(start <= end && end < len, "{start}-{end} of {len}");
            let spec = std::str::from_utf8(value).expect("an accepted header is text");
            let spec = spec.trim().strip_prefix("bytes=").expect("a bytes= range");
            let (first, last) = spec.split_once('-').expect("a-b, a- or -n");
            let number = |s: &str| s.trim().parse::<u64>().ok();
            match (number(first), number(last)) {
                (Some(a), Some(b)) => assert_eq!((start, end), (a, b.min(len - 1))),
                (Some(a), None) => assert_eq!((start, end), (a, len - 1)),
                (None, Some(n)) => assert_eq!((start, end), (len.saturating_sub(n), len - 1)),
                (None, None) => panic!("accepted {spec:?}"),
            }
        }
        Ok(None) => panic!("a Range header present was answered with the whole file"),
        Err(status) => assert!(matches!(status, 400 | 416), "status {status}"),
    }
});
