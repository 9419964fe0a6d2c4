//! The names of loose uploads: `POST /upload_fragment` with a multipart form, through the node's
//! router (axum's multipart parser, the handler, the store) on a service with no swarm. The input
//! is a flags byte (bit 0: `?replace=true`) and the form's body. Asserts: the answer is one of the
//! statuses the route documents; the name of a stored upload is the plain file name it was sent
//! as; no name the default collection holds is a path, `.` or `..`, or holds a control character.
//! The same properties are checked on the form's bytes as a name, for `is_plain_file_name` and
//! `parse_fragment_name` themselves.
#![no_main]

use std::path::{Component, Path};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use vidswarm_node::fuzz_api::Uploads;
use vidswarm_proto::{fragment_name, is_plain_file_name, parse_fragment_name, MAX_FRAGMENTS};

/// The largest upload taken: small, the fuzzer explores names, not sizes.
const MAX_UPLOAD: u64 = 4096;
/// Names kept, and uploads posted, before the data dir starts afresh: each upload then rewrites a
/// small collection, and replaced uploads do not pile up in the store.
const NAMES_PER_DIR: usize = 256;
const POSTS_PER_DIR: usize = 1000;

static UPLOADS: Mutex<Option<(Uploads, usize)>> = Mutex::new(None);

fn plain(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    let one_normal =
        matches!(parts.next(), Some(Component::Normal(c)) if c == name) && parts.next().is_none();
    one_normal
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && (1..=255).contains(&name.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, form)) = data.split_first() else {
        return;
    };
    if let Ok(name) = std::str::from_utf8(form) {
        if is_plain_file_name(name) {
            assert!(plain(name), "is_plain_file_name accepted {name:?}");
        }
        if let Some(i) = parse_fragment_name(name) {
            assert!(i < MAX_FRAGMENTS && fragment_name(i) == name, "{name:?}");
        }
    }
    let mut guard = UPLOADS.lock().unwrap_or_else(|e| e.into_inner());
    let (uploads, posts) =
        guard.get_or_insert_with(|| (Uploads::new(MAX_UPLOAD).expect("a router"), 0));
    *posts += 1;
    let answer = uploads.post(form, flags & 1 == 1);
    let fresh = answer.names.len() >= NAMES_PER_DIR || *posts >= POSTS_PER_DIR;
    assert!(
        matches!(answer.status, 200 | 400 | 409 | 413 | 503),
        "status {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    if answer.status == 200 {
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
        let name = body["name"].as_str().expect("a name");
        assert!(plain(name), "stored under {name:?}");
        assert!(
            answer.names.iter().any(|n| n == name),
            "{name:?} not in the collection"
        );
    }
    for name in &answer.names {
        assert!(plain(name), "the collection holds {name:?}");
    }
    if fresh {
        *guard = None;
    }
});
