//! Helpers shared by the node's integration tests: fragment bytes, manifests, split dirs, trees.
#![allow(dead_code)] // each test binary uses its own subset

pub mod gossip;
pub mod http;
pub mod procs;
pub mod raw;
pub mod swarm;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use vidswarm_node::store::Store;
use vidswarm_proto::{
    fragment_name, FragmentHasher, FragmentInfo, Manifest, SourceInfo, SplitMode, MIN_CHUNK_SIZE,
};

/// Whether ffmpeg can run. Outside CI a missing ffmpeg skips the test, loudly; in CI it fails.
pub fn have_ffmpeg() -> bool {
    let ok = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "ffmpeg missing in CI");
        eprintln!("SKIPPED: ffmpeg/ffprobe not installed (sudo apt-get install -y ffmpeg)");
    }
    ok
}

/// The demo video shipped in `assets/`.
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/demo.mp4");

/// Runs the `vidswarm` binary with `args` in `dir`, as a user would, and waits for it.
pub fn vidswarm(args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vidswarm"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("vidswarm runs")
}

/// The smallest chunk size a manifest may declare: keeps the size tables small.
pub const CS: u32 = MIN_CHUNK_SIZE;

/// Fragment sizes at the chunk edges (fragments are never empty, so no 0).
pub fn edge_sizes() -> [usize; 5] {
    let cs = CS as usize;
    [1, cs - 1, cs, cs + 1, 3 * cs + 7]
}

/// Deterministic, incompressible-looking bytes (xorshift64), different per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn info(index: u32, data: &[u8], chunk_size: u32) -> FragmentInfo {
    let mut h = FragmentHasher::new(chunk_size);
    h.update(data);
    let h = h.finish();
    FragmentInfo {
        index,
        name: fragment_name(index),
        size: h.size,
        duration: 1.0,
        start: f64::from(index),
        frame_count: 25,
        blake3: h.hash,
        chunks: h.chunks,
    }
}

/// A valid manifest describing `fragments`.
pub fn manifest(fragments: &[Vec<u8>]) -> Manifest {
    manifest_in_chunks_of(fragments, CS)
}

/// A valid manifest describing `fragments`, in chunks of `chunk_size`.
pub fn manifest_in_chunks_of(fragments: &[Vec<u8>], chunk_size: u32) -> Manifest {
    let infos: Vec<FragmentInfo> = (0u32..)
        .zip(fragments)
        .map(|(i, f)| info(i, f, chunk_size))
        .collect();
    let source = SourceInfo {
        name: "test.mp4".into(),
        size: fragments.iter().map(|f| f.len() as u64).sum(),
        duration: fragments.len() as f64,
        frame_count: 25 * fragments.len() as u64,
    };
    Manifest::new(source, SplitMode::Copy, chunk_size, infos)
}

/// A few fragments of assorted sizes, different per seed.
pub fn fragments(seed: u64, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| bytes(seed * 100 + i as u64, edge_sizes()[i % 5]))
        .collect()
}

/// Writes a split dir as the splitter would: fragments, then `manifest.json`.
pub fn write_split_dir(dir: &Path, fragments: &[Vec<u8>]) -> Manifest {
    write_split_dir_in_chunks_of(dir, fragments, CS)
}

/// [`write_split_dir`] with a manifest in chunks of `chunk_size`.
pub fn write_split_dir_in_chunks_of(
    dir: &Path,
    fragments: &[Vec<u8>],
    chunk_size: u32,
) -> Manifest {
    std::fs::create_dir_all(dir).unwrap();
    for (i, f) in fragments.iter().enumerate() {
        std::fs::write(dir.join(fragment_name(i as u32)), f).unwrap();
    }
    let m = manifest_in_chunks_of(fragments, chunk_size);
    std::fs::write(dir.join("manifest.json"), m.to_json_pretty()).unwrap();
    m
}

/// Every path under `dir` (files, dirs, symlinks), relative to it.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                todo.push(path.clone());
            }
            out.insert(path.strip_prefix(dir).unwrap().to_owned());
        }
    }
    out
}

/// Names of the entries of `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Opens a store that is expected to be clean (nothing dropped).
pub fn open_store(root: &Path) -> Store {
    let (store, report) = Store::open(root).unwrap();
    assert!(report.dropped.is_empty(), "{report:?}");
    store
}

pub fn tmp_is_empty(store: &Store) -> bool {
    names(&store.root().join("tmp")).is_empty()
}

/// `peer`'s progress-only announcement of `video`: fragment `index` (`hash`) with the chunks
/// `verified` says, as a fetch tells it.
pub fn progress_announcement(
    peer: libp2p::PeerId,
    video: vidswarm_proto::VideoId,
    index: u32,
    hash: vidswarm_proto::Hash,
    verified: &[bool],
) -> vidswarm_proto::wire::Announcement {
    use vidswarm_proto::wire::{Announcement, PartialFragment};
    Announcement {
        video,
        peer: peer.to_string(),
        manifest: true,
        fragments: vec![],
        named: None,
        leaving: false,
        partial: vec![PartialFragment {
            index,
            hash,
            have: PartialFragment::bitmap(verified),
        }],
        withdrawn: None,
    }
}
