//! The collection file loader: a data dir whose `collection.json` holds the input, opened as a
//! node's start-up opens it (`Store::open`), which keeps the good entries and puts a damaged
//! file aside. Asserts: every name kept is a plain file name and every entry kept is the input's
//! own; the good entries of a readable file are all kept; a damaged file is kept aside whole; and
//! what the open left opens again to the same names, with no damage.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vidswarm_node::fuzz_api::DataDir;
use vidswarm_node::store::{NamedEntry, MAX_NAMES};
use vidswarm_proto::is_plain_file_name;

#[derive(serde::Deserialize)]
struct File {
    names: BTreeMap<String, serde_json::Value>,
}

fn dir() -> &'static DataDir {
    static DIR: OnceLock<DataDir> = OnceLock::new();
    DIR.get_or_init(|| DataDir::new().expect("a temp dir"))
}

fuzz_target!(|data: &[u8]| {
    let opened = dir()
        .open_with(data)
        .expect("a damaged collection never stops a store from opening");
    assert!(opened.names.len() <= MAX_NAMES);
    for (name, _) in &opened.names {
        assert!(is_plain_file_name(name), "kept {name:?}");
        assert!(!name.contains(['/', '\\']) && name != "." && name != "..");
    }
    // The entries, each read on its own: the file's shape is a `names` map of entries.
    if let Ok(File { names: input }) = serde_json::from_slice::<File>(data) {
        let good: BTreeMap<&String, NamedEntry> = input
            .iter()
            .filter(|(name, _)| is_plain_file_name(name))
            .filter_map(|(name, v)| Some((name, serde_json::from_value(v.clone()).ok()?)))
            .collect();
        for (name, entry) in &opened.names {
            assert_eq!(good.get(name), Some(entry), "{name:?} is not the input's");
        }
        if good.len() <= MAX_NAMES {
            assert_eq!(opened.names.len(), good.len(), "good entries lost");
        }
        if good.len() == input.len() && good.len() <= MAX_NAMES {
            assert!(!opened.damaged, "a sound file was reported damaged");
        }
    }
    if opened.damaged {
        assert_eq!(
            opened.kept_aside.as_deref(),
            Some(data),
            "the damaged file, kept aside"
        );
    }
    let again = dir().reopen().expect("opens again");
    assert!(!again.damaged, "what the open wrote back is damaged");
    assert_eq!(again.names, opened.names);
});
