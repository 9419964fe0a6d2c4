//! The fragment store against real temp dirs: round trips, the durable-write shape, what a reopen
//! drops after a crash, path safety, range checks and locking. Split dirs: `store_split_dir.rs`.

mod common;

use std::fs;

use common::{bytes, edge_sizes, fragments, manifest, names, open_store, tmp_is_empty, CS};
use vidswarm_node::store::{Store, StoreError};
use vidswarm_proto::{chunk_count, chunk_range, Hash, Manifest, VideoId, MAX_CHUNK_SIZE};

#[test]
fn fragment_bytes_round_trip_at_chunk_edges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut held = Vec::new();
    for (seed, size) in edge_sizes().into_iter().enumerate() {
        let data = bytes(seed as u64, size);
        let h = store.put_fragment_bytes(&data, None).unwrap();
        assert_eq!(h, Hash::of(&data));
        assert!(store.has_fragment(&h));
        assert_eq!(fs::read(store.fragment_path(&h).unwrap()).unwrap(), data);
        for i in 0..chunk_count(size as u64, CS) {
            let (offset, len) = chunk_range(size as u64, CS, i).unwrap();
            let chunk = store.read_chunk(&h, offset, len).unwrap();
            assert_eq!(
                chunk,
                data[offset as usize..][..len as usize],
                "size {size} chunk {i}"
            );
        }
        held.push(h);
    }
    held.sort();
    assert_eq!(store.fragment_hashes().unwrap(), held);
    assert!(!store.has_fragment(&Hash::of(b"never stored")));
    assert_eq!(store.fragment_path(&Hash::of(b"never stored")), None);
}

#[test]
fn every_write_lands_in_place_with_nothing_left_in_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let frags = fragments(1, 3);
    let m = manifest(&frags);

    let a = store
        .put_fragment_bytes(&frags[0], Some(&m.fragments[0].blake3))
        .unwrap();
    let src = dir.path().join("outside.bin");
    fs::write(&src, &frags[1]).unwrap();
    let size = store
        .import_fragment_file(&src, &m.fragments[1].blake3)
        .unwrap();
    assert_eq!(size, frags[1].len() as u64);
    let w = store
        .begin_fragment(m.fragments[2].blake3, frags[2].len() as u64, CS)
        .unwrap();
    w.write_at(0, &frags[2]).unwrap();
    w.commit().unwrap();
    assert!(store.put_manifest(&m).unwrap());

    let root = store.root();
    let mut expected: Vec<String> = m.fragments.iter().map(|f| f.blake3.to_hex()).collect();
    expected.sort();
    assert_eq!(names(&root.join("fragments")), expected);
    assert_eq!(
        names(&root.join("manifests")),
        [format!("{}.json", m.video_id)]
    );
    assert!(tmp_is_empty(&store));
    assert_eq!(a, m.fragments[0].blake3);
    let on_disk = fs::read(root.join("manifests").join(format!("{}.json", m.video_id))).unwrap();
    assert_eq!(Manifest::from_json(&on_disk).unwrap(), m);
}

#[test]
fn manifests_are_kept_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ms = [manifest(&fragments(1, 2)), manifest(&fragments(2, 3))];
    {
        let store = open_store(dir.path());
        for m in &ms {
            assert!(store.put_manifest(m).unwrap());
            assert!(!store.put_manifest(m).unwrap(), "second put is not new");
        }
    }
    let (store, report) = Store::open(dir.path()).unwrap();
    assert_eq!((report.manifests, report.fragments), (2, 0));
    for m in &ms {
        assert_eq!(store.manifest(&m.video_id).as_deref(), Some(m));
    }
    let mut ids: Vec<VideoId> = ms.iter().map(|m| m.video_id).collect();
    ids.sort();
    let listed: Vec<VideoId> = store.manifests().iter().map(|m| m.video_id).collect();
    assert_eq!(listed, ids);
    assert_eq!(store.manifest(&VideoId(Hash::of(b"unknown"))), None);
}

#[test]
fn an_invalid_manifest_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut m = manifest(&fragments(1, 2));
    m.fragments[0].size += 1;
    let err = store.put_manifest(&m).unwrap_err();
    assert!(matches!(err, StoreError::Manifest(_)), "{err:?}");
    assert!(names(&store.root().join("manifests")).is_empty());
    assert!(store.manifests().is_empty());
}

#[test]
fn a_mismatched_import_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let data = bytes(7, CS as usize + 1);
    let src = dir.path().join("src.bin");
    fs::write(&src, &data).unwrap();
    let wrong = Hash::of(b"something else");
    match store.import_fragment_file(&src, &wrong) {
        Err(StoreError::HashMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (wrong, Hash::of(&data)));
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert!(names(&store.root().join("fragments")).is_empty());
    assert!(tmp_is_empty(&store));

    // The right hash imports; a second import is a no-op that still reports the size.
    let h = Hash::of(&data);
    assert_eq!(
        store.import_fragment_file(&src, &h).unwrap(),
        data.len() as u64
    );
    fs::remove_file(&src).unwrap();
    assert_eq!(
        store.import_fragment_file(&src, &h).unwrap(),
        data.len() as u64
    );

    let missing = dir.path().join("missing.bin");
    let err = store.import_fragment_file(&missing, &wrong).unwrap_err();
    assert!(err.to_string().contains("missing.bin"), "{err}");
}

#[test]
fn put_fragment_bytes_checks_the_expected_hash_and_refuses_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let err = store
        .put_fragment_bytes(b"abc", Some(&Hash::of(b"abd")))
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err:?}");
    assert!(matches!(
        store.put_fragment_bytes(b"", None),
        Err(StoreError::Empty)
    ));
    assert!(matches!(
        store.begin_fragment(Hash::of(b""), 0, CS),
        Err(StoreError::Empty)
    ));
    assert!(names(&store.root().join("fragments")).is_empty());
    assert!(tmp_is_empty(&store));
}

#[test]
fn writer_assembles_chunks_in_any_order_at_chunk_edges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    for (seed, size) in edge_sizes().into_iter().enumerate() {
        let data = bytes(100 + seed as u64, size);
        let h = Hash::of(&data);
        let w = store.begin_fragment(h, size as u64, CS).unwrap();
        assert_eq!((w.hash(), w.size()), (&h, size as u64));
        // Last chunk first: a swarm download finishes chunks in any order.
        for i in (0..chunk_count(size as u64, CS)).rev() {
            let (offset, len) = chunk_range(size as u64, CS, i).unwrap();
            w.write_at(offset, &data[offset as usize..][..len as usize])
                .unwrap();
        }
        assert!(!store.has_fragment(&h), "visible before commit");
        w.commit().unwrap();
        assert_eq!(fs::read(store.fragment_path(&h).unwrap()).unwrap(), data);
    }
    assert!(tmp_is_empty(&store));
}

#[test]
fn writer_refuses_writes_past_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let data = bytes(3, CS as usize);
    let w = store
        .begin_fragment(Hash::of(&data), data.len() as u64, CS)
        .unwrap();
    let size = data.len() as u64;
    for (offset, len) in [(size, 1), (size - 1, 2), (0, data.len() + 1), (u64::MAX, 1)] {
        let err = w.write_at(offset, &vec![0; len]).unwrap_err();
        assert!(
            matches!(err, StoreError::OutOfRange { .. }),
            "{offset}+{len}: {err:?}"
        );
    }
    w.write_at(size - 1, &data[data.len() - 1..]).unwrap();
    w.write_at(0, &data).unwrap();
    w.commit().unwrap();
}

#[test]
fn an_uncommitted_writer_leaves_nothing_visible_and_its_bytes_rest_until_collected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let data = bytes(4, 3 * CS as usize);
    let h = Hash::of(&data);
    let w = store.begin_fragment(h, data.len() as u64, CS).unwrap();
    w.write_at(0, &data[..CS as usize]).unwrap();
    w.chunk_verified(0).unwrap();
    let partial = store.root().join("partial");
    assert_eq!(names(&partial), [h.to_hex()], "writes go to partial/");
    assert!(!store.has_fragment(&h));
    drop(w); // the download was abandoned half-way: it rests, with its record, to resume
    assert_eq!(names(&partial), [h.to_hex(), format!("{h}.have")]);
    assert!(tmp_is_empty(&store));
    assert!(!store.has_fragment(&h));
    assert!(names(&store.root().join("fragments")).is_empty());
    // No manifest lists it: garbage collection takes it.
    let removed = store.collect_garbage(&|_| false).unwrap();
    assert!(removed.bytes > 0);
    assert!(names(&partial).is_empty());
}

#[test]
fn writer_committed_with_wrong_bytes_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let data = bytes(5, 2 * CS as usize + 3);
    let h = Hash::of(&data);

    let mut tampered = data.clone();
    tampered[CS as usize] ^= 1;
    let w = store.begin_fragment(h, data.len() as u64, CS).unwrap();
    w.write_at(0, &tampered).unwrap();
    let err = w.commit().unwrap_err();
    assert!(
        matches!(err, StoreError::HashMismatch { expected, .. } if expected == h),
        "{err:?}"
    );

    // A writer whose last chunk never arrived: the hole reads as zeros and does not hash right.
    let w = store.begin_fragment(h, data.len() as u64, CS).unwrap();
    w.write_at(0, &data[..2 * CS as usize]).unwrap();
    assert!(matches!(w.commit(), Err(StoreError::HashMismatch { .. })));

    assert!(!store.has_fragment(&h));
    assert!(names(&store.root().join("fragments")).is_empty());
    assert!(
        names(&store.root().join("partial")).is_empty(),
        "no record claims wrong bytes"
    );
    assert!(tmp_is_empty(&store));
}

#[test]
fn reopen_drops_what_a_crash_left_and_keeps_good_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let frags = fragments(9, 4);
    let good = manifest(&frags[..2]);
    let other = manifest(&frags[2..]);
    {
        let store = open_store(&root);
        for f in &frags {
            store.put_fragment_bytes(f, None).unwrap();
        }
        store.put_manifest(&good).unwrap();
    }
    // Simulate crashes and stray hands.
    let fdir = root.join("fragments");
    let mdir = root.join("manifests");
    let hex = |i: usize| Hash::of(&frags[i]).to_hex();
    let truncated = fdir.join(hex(2));
    fs::write(&truncated, &frags[2][..frags[2].len() / 2]).unwrap();
    let corrupted = fdir.join(hex(3));
    let mut flipped = frags[3].clone();
    flipped[0] ^= 0x80;
    fs::write(&corrupted, flipped).unwrap();
    let empty = fdir.join(Hash::of(b"").to_hex());
    fs::write(&empty, b"").unwrap();
    let not_a_hash = fdir.join("fragment_0.mp4");
    fs::write(&not_a_hash, &frags[0]).unwrap();
    let upper = fdir.join(hex(0).to_uppercase());
    fs::write(&upper, &frags[0]).unwrap();
    let a_dir = fdir.join(Hash::of(b"dir").to_hex());
    fs::create_dir(&a_dir).unwrap();
    let outside = dir.path().join("outside.bin");
    fs::write(&outside, &frags[1]).unwrap();
    let link = fdir.join(Hash::of(b"link").to_hex());
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let temp_junk = root.join("tmp").join("1234-0-deadbeef.tmp");
    fs::write(&temp_junk, b"half a fragment").unwrap();
    let temp_dir = root.join("tmp").join("stray");
    fs::create_dir_all(temp_dir.join("nested")).unwrap();
    let garbage = mdir.join(format!("{}.json", other.video_id));
    fs::write(&garbage, b"{\"version\": 1, \"video_id\": tru").unwrap();
    let wrong_id = mdir.join(format!("{}.json", Hash::of(b"elsewhere")));
    fs::write(&wrong_id, good.to_json_pretty()).unwrap();
    let bad_name = mdir.join("notes.txt");
    fs::write(&bad_name, b"hello").unwrap();

    let (store, report) = Store::open(&root).unwrap();
    let mut dropped: Vec<_> = report.dropped.iter().map(|(p, _)| p.clone()).collect();
    dropped.sort();
    let mut expected = vec![
        truncated, corrupted, empty, not_a_hash, upper, a_dir, link, temp_junk, temp_dir, garbage,
        wrong_id, bad_name,
    ];
    expected.sort();
    assert_eq!(dropped, expected, "{:#?}", report.dropped);
    for (path, reason) in &report.dropped {
        assert!(
            !path.exists() && !path.is_symlink(),
            "{} still there",
            path.display()
        );
        assert!(!reason.is_empty());
    }
    assert_eq!((report.fragments, report.manifests), (2, 1));
    assert!(outside.exists(), "a symlink's target is not ours to delete");

    assert!(store.has_fragment(&Hash::of(&frags[0])));
    assert!(store.has_fragment(&Hash::of(&frags[1])));
    assert!(!store.has_fragment(&Hash::of(&frags[2])));
    assert_eq!(store.manifests(), [std::sync::Arc::new(good)]);
    assert!(tmp_is_empty(&store));

    // What was kept is clean: the next open drops nothing.
    drop(store);
    open_store(&root);
}

#[test]
fn a_second_open_of_one_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let clone = store.clone();
    drop(store);
    match Store::open(dir.path()) {
        Err(e @ StoreError::Locked(_)) => {
            let text = e.to_string();
            assert!(text.contains(&dir.path().display().to_string()), "{text}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // The lock goes with the last clone.
    drop(clone);
    open_store(dir.path());
}

#[test]
fn open_refuses_a_root_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn read_chunk_refuses_bad_ranges_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let data = bytes(6, 2 * CS as usize + 5);
    let h = store.put_fragment_bytes(&data, None).unwrap();
    let size = data.len() as u64;
    let big = MAX_CHUNK_SIZE + 1;
    for (offset, len) in [
        (0, 0),
        (0, big),
        (0, u32::MAX),
        (size, 1),
        (size - 1, 2),
        (size + 1_000_000, 1),
        (u64::MAX, 1),
        (u64::MAX - 1, u32::MAX),
    ] {
        match store.read_chunk(&h, offset, len) {
            Err(StoreError::OutOfRange { hash, size: s, .. }) => assert_eq!((hash, s), (h, size)),
            other => panic!("{offset}+{len}: expected OutOfRange, got {other:?}"),
        }
    }
    assert_eq!(
        store.read_chunk(&h, size - 1, 1).unwrap(),
        [data[data.len() - 1]]
    );
    assert_eq!(store.read_chunk(&h, 0, size as u32).unwrap(), data);
    let err = store.read_chunk(&Hash::of(b"absent"), 0, 1).unwrap_err();
    assert!(matches!(err, StoreError::FragmentNotFound(_)), "{err:?}");

    // MAX_CHUNK_SIZE itself is allowed when the fragment is that large.
    let large = bytes(8, MAX_CHUNK_SIZE as usize + 1);
    let h = store.put_fragment_bytes(&large, None).unwrap();
    assert_eq!(store.read_chunk(&h, 1, MAX_CHUNK_SIZE).unwrap(), large[1..]);
}

#[test]
fn concurrent_writers_in_one_process_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..16u64 {
                    // Half the content is shared by every thread, half is the thread's own.
                    let seed = if i % 2 == 0 { i } else { 1000 * (t + 1) + i };
                    let data = bytes(seed, 100 + i as usize);
                    let h = store.put_fragment_bytes(&data, None).unwrap();
                    assert_eq!(store.read_chunk(&h, 0, data.len() as u32).unwrap(), data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.fragment_hashes().unwrap().len(), 8 + 8 * 8);
    assert!(tmp_is_empty(&store));
}

#[cfg(unix)]
#[test]
fn the_identity_key_is_readable_by_its_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let key = store
        .load_or_create_identity(|| b"secret".to_vec())
        .unwrap();
    let path = dir.path().join("identity.key");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "a new key");
    // One written by an older version, or copied in, world-readable: the same key, made 0600.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let again = store.load_or_create_identity(|| b"other".to_vec()).unwrap();
    assert_eq!(again, key);
    assert_eq!(mode(&path), 0o600, "an old key is restricted on load");
}

#[test]
fn a_name_dated_far_ahead_is_refused_and_no_date_overflows() {
    use vidswarm_node::store::{Claim, NamedEntry, MAX_AHEAD_MS};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let (a, b) = (VideoId(Hash::of(b"a")), VideoId(Hash::of(b"b")));
    let now = 1_800_000_000_000;
    let pinned = NamedEntry {
        uploaded_at_ms: u64::MAX,
        video: a,
    };
    assert!(!store.observe_name("film.mp4", pinned, None, now).unwrap());
    let ahead = NamedEntry {
        uploaded_at_ms: now + MAX_AHEAD_MS + 1,
        video: a,
    };
    assert!(!store.observe_name("film.mp4", ahead, None, now).unwrap());
    let drifted = NamedEntry {
        uploaded_at_ms: now + MAX_AHEAD_MS,
        video: a,
    };
    assert!(
        store.observe_name("film.mp4", drifted, None, now).unwrap(),
        "a drifting clock is fine"
    );
    assert_eq!(store.named("film.mp4"), Some(drifted));
    // A collection from before the bound may hold u64::MAX: replacing it does not overflow.
    fs::write(
        dir.path().join("collection.json"),
        format!(
            r#"{{"names":{{"old.mp4":{{"uploaded_at_ms":{},"video":"{a}"}}}}}}"#,
            u64::MAX
        ),
    )
    .unwrap();
    drop(store);
    let store = open_store(dir.path());
    assert_eq!(
        store.named("old.mp4").map(|e| e.uploaded_at_ms),
        Some(u64::MAX)
    );
    match store
        .claim_name("old.mp4", b, now, true, b"me", &|_| vec![1])
        .unwrap()
    {
        Claim::Recorded(e) => assert_eq!((e.uploaded_at_ms, e.video), (u64::MAX, b)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_collection_keeps_its_good_names_and_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let a = VideoId(Hash::of(b"a"));
    let good = format!(r#""good.mp4":{{"uploaded_at_ms":5,"video":"{a}"}}"#);
    // One entry damaged, one name that is not a plain file name, one good entry.
    let damaged = format!(
        r#"{{"names":{{"bad.mp4":{{"uploaded_at_ms":"x"}},"a/b":{{"uploaded_at_ms":1,"video":"{a}"}},{good}}}}}"#
    );
    fs::write(dir.path().join("collection.json"), &damaged).unwrap();
    let (store, report) = Store::open(dir.path()).unwrap();
    assert_eq!(store.named("good.mp4").map(|e| e.video), Some(a));
    assert_eq!(store.collection().len(), 1);
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    let aside: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("collection.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(dir.path()));
    assert_eq!(
        fs::read_to_string(dir.path().join(&aside[0])).unwrap(),
        damaged
    );
    drop(store);
    // The good names were written back: the next start is clean and keeps them.
    let store = open_store(dir.path());
    assert_eq!(store.named("good.mp4").map(|e| e.video), Some(a));

    // A file that is not JSON at all: no names, the file kept aside, the node starts.
    drop(store);
    fs::write(dir.path().join("collection.json"), b"{\"names\": {\"trunc").unwrap();
    let (store, report) = Store::open(dir.path()).unwrap();
    assert!(store.collection().is_empty());
    assert_eq!(report.dropped.len(), 1);
}

#[test]
fn the_largest_collection_the_store_can_write_reads_back() {
    use vidswarm_node::store::MAX_NAMES;
    use vidswarm_proto::{
        MAX_NAME_SIGNATURE_BYTES, MAX_PUBLISHER_KEY_BYTES, MAX_SOURCE_NAME_BYTES,
    };
    let dir = tempfile::tempdir().unwrap();
    let video = VideoId(Hash::of(b"v")).to_string();
    let signed = serde_json::json!({
        "publisher": "ab".repeat(MAX_PUBLISHER_KEY_BYTES),
        "signature": "cd".repeat(MAX_NAME_SIGNATURE_BYTES),
    });
    // MAX_NAMES names of the longest length, all quotes (each escaped to two bytes) but for a
    // distinct tail, dated u64::MAX, with the largest key and signature a peer may send: the
    // worst case for the file's size.
    let names: serde_json::Map<String, serde_json::Value> = (0..MAX_NAMES)
        .map(|i| {
            let tail = format!("{i:05}");
            let name = format!("{}{tail}", "\"".repeat(MAX_SOURCE_NAME_BYTES - tail.len()));
            let entry = serde_json::json!({
                "uploaded_at_ms": u64::MAX,
                "video": video,
                "signed": signed,
            });
            (name, entry)
        })
        .collect();
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "names": names })).unwrap();
    assert!(
        json.len() > 4 << 20,
        "the case the old 4 MiB limit failed: {}",
        json.len()
    );
    fs::write(dir.path().join("collection.json"), json).unwrap();
    let store = open_store(dir.path());
    assert_eq!(store.collection().len(), MAX_NAMES);
    let (_, record) = store.name_record_of(&video.parse().unwrap()).unwrap();
    assert_eq!(
        record.signed.unwrap().signature.len(),
        MAX_NAME_SIGNATURE_BYTES
    );
}

#[test]
fn a_signed_name_is_re_pointed_only_by_its_publisher() {
    use vidswarm_node::store::{Claim, NameSignature, NamedEntry};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let (a, b, c) = (
        VideoId(Hash::of(b"a")),
        VideoId(Hash::of(b"b")),
        VideoId(Hash::of(b"c")),
    );
    let now = 1_800_000_000_000;
    let by = |publisher: &[u8]| {
        Some(NameSignature {
            publisher: publisher.to_vec(),
            signature: vec![7; 64],
        })
    };
    let entry = |t: u64, video| NamedEntry {
        uploaded_at_ms: t,
        video,
    };
    // The first signed entry binds the name to its key.
    assert!(store
        .observe_name("clip.mp4", entry(now, a), by(b"owner"), now)
        .unwrap());
    // A later entry unsigned, or signed by another key, changes nothing.
    assert!(!store
        .observe_name("clip.mp4", entry(now + 1, b), None, now)
        .unwrap());
    assert!(!store
        .observe_name("clip.mp4", entry(now + 1, b), by(b"thief"), now)
        .unwrap());
    // A local upload with another key cannot take it over, even asked to replace.
    match store
        .claim_name("clip.mp4", b, now, true, b"thief", &|_| vec![1])
        .unwrap()
    {
        Claim::Owned(r) => assert_eq!(r.owner(), Some(&b"owner"[..])),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.named("clip.mp4"), Some(entry(now, a)));
    // The owner's key re-points it, from a peer or locally.
    assert!(store
        .observe_name("clip.mp4", entry(now + 1, b), by(b"owner"), now)
        .unwrap());
    match store
        .claim_name("clip.mp4", c, now, true, b"owner", &|_| vec![2])
        .unwrap()
    {
        Claim::Recorded(e) => assert_eq!(e.video, c),
        other => panic!("{other:?}"),
    }
    // The binding and the signature survive a restart.
    drop(store);
    let store = open_store(dir.path());
    let record = store.name_record("clip.mp4").unwrap();
    assert_eq!(record.owner(), Some(&b"owner"[..]));
    assert_eq!(record.entry.video, c);
    assert!(!store
        .observe_name("clip.mp4", entry(now + 5, a), by(b"thief"), now)
        .unwrap());

    // A name from before signatures is re-pointed by a later entry as before, and a signed one
    // then binds it.
    assert!(store
        .observe_name("old.mp4", entry(now, a), None, now)
        .unwrap());
    assert!(store
        .observe_name("old.mp4", entry(now + 1, b), by(b"first signer"), now)
        .unwrap());
    assert!(!store
        .observe_name("old.mp4", entry(now + 2, c), None, now)
        .unwrap());
}
