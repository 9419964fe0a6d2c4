//! The store and split dirs (the splitter's output): import checks every fragment against the
//! manifest and stores the manifest last; export writes a split dir back, verified and durable.

mod common;

use std::fs;

use common::{fragments, manifest, names, open_store, tmp_is_empty, write_split_dir};
use vidswarm_node::store::StoreError;
use vidswarm_proto::{Hash, Manifest, VideoId, MAX_MANIFEST_BYTES};

#[test]
fn split_dir_import_then_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    let frags = fragments(4, 5);
    let m = write_split_dir(&split, &frags);
    let store = open_store(&dir.path().join("data"));

    let report = store.import_split_dir(&split).unwrap();
    assert_eq!(report.video_id, m.video_id);
    assert_eq!(
        (report.fragments, report.imported, report.already_held),
        (5, 5, 0)
    );
    assert_eq!(report.bytes, m.total_size());
    assert!(report.missing.is_empty() && report.manifest_new);
    assert!(
        report.to_string().contains(&m.video_id.to_string()),
        "{report}"
    );

    let again = store.import_split_dir(&split).unwrap();
    assert_eq!(
        (again.imported, again.already_held, again.manifest_new),
        (0, 5, false)
    );

    let out = dir.path().join("out/nested");
    store.export_video(&m.video_id, &out).unwrap();
    let mut expected: Vec<String> = m.fragments.iter().map(|f| f.name.clone()).collect();
    expected.push("manifest.json".into());
    expected.sort();
    assert_eq!(
        names(&out),
        expected,
        "no temp files left in the export dir"
    );
    for (f, data) in m.fragments.iter().zip(&frags) {
        assert_eq!(&fs::read(out.join(&f.name)).unwrap(), data);
    }
    let exported = Manifest::from_json(&fs::read(out.join("manifest.json")).unwrap());
    assert_eq!(exported.unwrap(), m);

    // Exporting over an earlier export replaces it; a second store can import the export.
    store.export_video(&m.video_id, &out).unwrap();
    let other = open_store(&dir.path().join("data2"));
    assert_eq!(other.import_split_dir(&out).unwrap().imported, 5);
}

#[test]
fn a_tampered_fragment_is_named_and_not_stored() {
    type Tamper = fn(&mut Vec<u8>);
    let cases: [(&str, Tamper); 3] = [
        ("flipped byte", |d| d[0] ^= 1),
        ("extra byte", |d| d.push(0)),
        ("truncated", |d| {
            d.pop();
        }),
    ];
    for (what, tamper) in cases {
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("split");
        let frags = fragments(5, 4);
        let m = write_split_dir(&split, &frags);
        let mut bad = frags[2].clone();
        tamper(&mut bad);
        fs::write(split.join("fragment_2.mp4"), &bad).unwrap();
        let store = open_store(&dir.path().join("data"));

        let err = store.import_split_dir(&split).unwrap_err();
        assert!(err.to_string().contains("fragment_2.mp4"), "{what}: {err}");
        match &err {
            StoreError::Fragment { name, source, .. } => {
                assert_eq!(name, "fragment_2.mp4");
                assert!(
                    matches!(
                        **source,
                        StoreError::HashMismatch { .. } | StoreError::SizeMismatch { .. }
                    ),
                    "{what}: {source:?}"
                );
            }
            other => panic!("{what}: expected Fragment, got {other:?}"),
        }
        assert!(!store.has_fragment(&m.fragments[2].blake3));
        assert!(!store.has_fragment(&Hash::of(&bad)), "{what}");
        assert_eq!(store.manifest(&m.video_id), None, "manifest goes in last");
        assert!(tmp_is_empty(&store));
    }
}

#[test]
fn a_manifest_whose_chunk_hashes_lie_is_refused_on_import() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    let frags = fragments(6, 2);
    write_split_dir(&split, &frags);
    // Same whole hashes, one wrong chunk hash, id recomputed: valid, but not these bytes.
    let mut m = manifest(&frags);
    m.fragments[1].chunks[0] = Hash::of(b"not this chunk");
    let m = Manifest::new(m.source, m.mode, m.chunk_size, m.fragments);
    fs::write(split.join("manifest.json"), m.to_json_pretty()).unwrap();
    let store = open_store(&dir.path().join("data"));
    let err = store.import_split_dir(&split).unwrap_err();
    match err {
        StoreError::Fragment { name, source, .. } => {
            assert_eq!(name, "fragment_1.mp4");
            assert!(
                matches!(*source, StoreError::ChunkMismatch { chunk: 0, .. }),
                "{source:?}"
            );
        }
        other => panic!("expected Fragment, got {other:?}"),
    }
}

#[test]
fn a_partial_split_dir_imports_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    let frags = fragments(7, 4);
    let m = write_split_dir(&split, &frags);
    fs::remove_file(split.join("fragment_2.mp4")).unwrap();
    let store = open_store(&dir.path().join("data"));

    let report = store.import_split_dir(&split).unwrap();
    assert_eq!(report.missing, ["fragment_2.mp4"]);
    assert_eq!((report.imported, report.fragments), (3, 4));
    assert!(
        report.to_string().contains("missing: fragment_2.mp4"),
        "{report}"
    );
    assert_eq!(store.manifest(&m.video_id).as_deref(), Some(&m));

    // Exporting needs every fragment, and writes nothing when one is absent.
    let out = dir.path().join("out");
    let err = store.export_video(&m.video_id, &out).unwrap_err();
    assert!(err.to_string().contains("fragment_2.mp4"), "{err}");
    assert!(!out.exists());
    let unknown = VideoId(Hash::of(b"nothing"));
    let err = store.export_video(&unknown, &out).unwrap_err();
    assert!(
        matches!(err, StoreError::VideoNotFound(id) if id == unknown),
        "{err:?}"
    );
}

#[test]
fn a_bad_split_manifest_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("data"));
    let split = dir.path().join("split");
    write_split_dir(&split, &fragments(8, 2));

    fs::write(split.join("manifest.json"), b"{not json").unwrap();
    let err = store.import_split_dir(&split).unwrap_err();
    assert!(matches!(err, StoreError::Manifest(_)), "{err:?}");

    // Refused by size before it is parsed (or read whole).
    fs::write(
        split.join("manifest.json"),
        vec![b' '; MAX_MANIFEST_BYTES + 1],
    )
    .unwrap();
    let err = store.import_split_dir(&split).unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");

    let err = store
        .import_split_dir(&dir.path().join("nowhere"))
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");

    assert!(store.fragment_hashes().unwrap().is_empty());
    assert!(store.manifests().is_empty());
}

#[test]
fn export_catches_a_fragment_that_rotted_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    let frags = fragments(10, 2);
    let m = write_split_dir(&split, &frags);
    let store = open_store(&dir.path().join("data"));
    store.import_split_dir(&split).unwrap();
    let path = store.fragment_path(&m.fragments[1].blake3).unwrap();
    let mut rotten = frags[1].clone();
    rotten[0] ^= 1;
    fs::write(&path, rotten).unwrap();

    let out = dir.path().join("out");
    let err = store.export_video(&m.video_id, &out).unwrap_err();
    assert!(err.to_string().contains("fragment_1.mp4"), "{err}");
    assert!(
        !out.join("manifest.json").exists(),
        "an incomplete export has no manifest"
    );
    assert!(!out.join("fragment_1.mp4").exists());
}
