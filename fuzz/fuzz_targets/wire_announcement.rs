//! `Announcement::decode`, what a node reads from every gossip message. Asserts: what decodes
//! keeps the announcement limits (fragment counts, indices, peer id length, a plain upload name
//! with a bounded key and signature) and round-trips through its encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidswarm_proto::wire::{encode, Announcement, MAX_ANNOUNCEMENT_BYTES};
use vidswarm_proto::{
    is_plain_file_name, MAX_FRAGMENTS, MAX_NAME_SIGNATURE_BYTES, MAX_PUBLISHER_KEY_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Announcement::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_ANNOUNCEMENT_BYTES);
    assert!(a.fragments.len() <= MAX_FRAGMENTS as usize);
    assert!(a.partial.len() <= MAX_FRAGMENTS as usize);
    assert!(a.peer.len() <= 128);
    assert!(a
        .withdrawn
        .as_ref()
        .is_none_or(|w| w.len() <= MAX_FRAGMENTS as usize));
    let indices = a.fragments.iter().map(|f| f.index);
    assert!(indices
        .chain(a.partial.iter().map(|p| p.index))
        .all(|i| i < MAX_FRAGMENTS));
    if let Some(named) = &a.named {
        assert!(is_plain_file_name(&named.name), "{:?}", named.name);
        assert!(!named.name.contains(['/', '\\']) && named.name != "..");
        let publisher = named.publisher.as_ref().map_or(0, |b| b.len());
        let signature = named.signature.as_ref().map_or(0, |b| b.len());
        assert!(publisher <= MAX_PUBLISHER_KEY_BYTES && signature <= MAX_NAME_SIGNATURE_BYTES);
    }
    let again = Announcement::decode(&encode(&a)).expect("a decoded announcement re-decodes");
    assert_eq!(again, a);
});
