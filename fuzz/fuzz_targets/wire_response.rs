//! `Response::decode`, `Response::decode_owned` (the chunk fast path) and `Response::encoded_len`
//! (the length hint read from a response's head). Asserts: the fast path never accepts what the
//! generic decoder reads differently; a length hint for a message the fast path accepts is its
//! length; what decodes re-encodes, through `encode_parts` too, to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidswarm_proto::wire::{encode, Response, RESPONSE_HEAD};

fuzz_target!(|data: &[u8]| {
    let generic = Response::decode(data).ok();
    let fast = Response::decode_owned(data.to_vec()).ok();
    if let Some(fast) = &fast {
        // The fast path may refuse more (trailing bytes), never read differently.
        assert_eq!(
            generic.as_ref(),
            Some(fast),
            "decode_owned disagrees with decode"
        );
    }
    let hint = Response::encoded_len(&data[..data.len().min(RESPONSE_HEAD)]);
    if let (Some(hint), Some(Response::Chunk { .. })) = (hint, &fast) {
        assert_eq!(
            hint,
            data.len(),
            "length hint of an accepted chunk response"
        );
    }
    let Some(resp) = generic else {
        return;
    };
    let bytes = encode(&resp);
    assert_eq!(Response::decode(&bytes).ok().as_ref(), Some(&resp));
    let (head, body) = resp.clone().encode_parts();
    let parts = [head, body.unwrap_or_default()].concat();
    assert_eq!(
        parts, bytes,
        "encode_parts differs from the generic encoding"
    );
    assert_eq!(Response::decode_owned(parts).ok(), Some(resp.clone()));
    if let Response::Chunk { .. } = resp {
        let head = &bytes[..bytes.len().min(RESPONSE_HEAD)];
        assert_eq!(Response::encoded_len(head), Some(bytes.len()));
    }
});
