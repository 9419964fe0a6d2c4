//! `Request::decode`, what a peer reads from each transfer stream. Asserts: what decodes is
//! within the protocol's limits and re-encodes to bytes that decode to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidswarm_proto::wire::{encode, Request, MAX_REQUEST_BYTES};
use vidswarm_proto::MAX_CHUNK_SIZE;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Request::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_REQUEST_BYTES);
    if let Request::Chunk { len, .. } = req {
        assert!((1..=MAX_CHUNK_SIZE).contains(&len), "chunk length {len}");
    }
    let again = Request::decode(&encode(&req)).expect("a decoded request re-encodes and decodes");
    assert_eq!(again, req);
});
