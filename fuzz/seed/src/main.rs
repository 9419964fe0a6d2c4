//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`: the messages,
//! manifests, collection files, Range headers and upload forms the unit tests use, encoded as
//! the targets read them. Run from `fuzz/`: `cargo run -p vidswarm-fuzz-seed` (or
//! `scripts/fuzz.sh --seed`). Seeds are named after their content's hash, so running it again
//! changes nothing.

use std::path::Path;

use serde_bytes::ByteBuf;
use vidswarm_proto::wire::{
    encode, AnnouncedFragment, Announcement, ErrorCode, NamedUpload, PartialFragment, Request,
    Response,
};
use vidswarm_proto::{
    fragment_name, FragmentHasher, FragmentInfo, Hash, Manifest, SourceInfo, SplitMode, VideoId,
    MIN_CHUNK_SIZE,
};

/// The boundary of the upload target's forms (`vidswarm_node::fuzz_api::BOUNDARY`).
const BOUNDARY: &str = "fuzzboundary";

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let targets: [(&str, Vec<Vec<u8>>); 7] = [
        ("wire_request", requests()),
        ("wire_response", responses()),
        ("wire_announcement", announcements()),
        ("manifest", manifests()),
        ("collection", collections()),
        ("http_range", ranges()),
        ("upload_name", uploads()),
    ];
    for (target, seeds) in targets {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for seed in &seeds {
            let name = &Hash::of(seed).to_string()[..16];
            std::fs::write(dir.join(format!("seed-{name}")), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

fn requests() -> Vec<Vec<u8>> {
    let fragment = Hash::of(b"f");
    [
        Request::Manifest {
            video: VideoId(Hash::of(b"v")),
        },
        Request::Chunk {
            fragment,
            offset: 262_144,
            len: 262_144,
            may_decline: false,
        },
        Request::Chunk {
            fragment,
            offset: 0,
            len: 16_384,
            may_decline: true,
        },
        // Refused: a zero-length chunk.
        Request::Chunk {
            fragment,
            offset: 0,
            len: 0,
            may_decline: false,
        },
        Request::Leaving,
    ]
    .iter()
    .map(encode)
    .collect()
}

fn responses() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [0usize, 1, 23, 24, 300]
        .into_iter()
        .map(|len| {
            encode(&Response::Chunk {
                data: ByteBuf::from(vec![7u8; len]),
            })
        })
        .collect();
    let small = upload_manifest("clip.mp4");
    out.extend(
        [
            Response::Manifest {
                json: ByteBuf::from(small.to_json_pretty()),
            },
            Response::error(ErrorCode::Declined, "sent a moment ago"),
            Response::error(ErrorCode::Busy, "busy"),
            Response::error(ErrorCode::NotFound, "no such fragment"),
            Response::Bye,
        ]
        .iter()
        .map(encode),
    );
    // A chunk whose length header claims more than it holds.
    let mut lying = encode(&Response::Chunk {
        data: ByteBuf::from(vec![1u8; 30]),
    });
    lying.truncate(lying.len() - 10);
    out.push(lying);
    out
}

fn announcements() -> Vec<Vec<u8>> {
    let plain = Announcement {
        video: VideoId(Hash::of(b"v")),
        peer: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".into(),
        manifest: true,
        fragments: vec![
            AnnouncedFragment {
                index: 0,
                hash: Hash::of(b"x"),
            },
            AnnouncedFragment {
                index: 3,
                hash: Hash::of(b"y"),
            },
        ],
        named: None,
        leaving: false,
        partial: vec![],
        withdrawn: None,
    };
    let partial = Announcement {
        partial: vec![PartialFragment {
            index: 2,
            hash: Hash::of(b"f"),
            have: PartialFragment::bitmap(&[
                true, false, false, true, false, true, true, false, true,
            ]),
        }],
        ..plain.clone()
    };
    let goodbye = Announcement {
        leaving: true,
        ..plain.clone()
    };
    let named = Announcement {
        named: Some(NamedUpload {
            name: "fragment_3.mp4".into(),
            uploaded_at_ms: 1_700_000_000_000,
            publisher: Some(ByteBuf::from(vec![8u8; 36])),
            signature: Some(ByteBuf::from(vec![9u8; 64])),
        }),
        ..plain.clone()
    };
    let hostile = Announcement {
        named: Some(NamedUpload {
            name: "../../etc/passwd".into(),
            uploaded_at_ms: 0,
            publisher: None,
            signature: None,
        }),
        ..plain.clone()
    };
    let withdrawn = Announcement {
        fragments: vec![],
        withdrawn: Some(vec![Hash::of(b"x"), Hash::of(b"y")]),
        ..plain.clone()
    };
    [plain, partial, goodbye, named, hostile, withdrawn]
        .iter()
        .map(encode)
        .collect()
}

/// A small video as the tests build them: fragments of a few chunks of the smallest size.
fn video(mode: SplitMode, codecs: Option<&str>) -> Manifest {
    let fragments = (0..3u32)
        .map(|i| {
            let bytes = vec![i as u8; MIN_CHUNK_SIZE as usize + 100 * i as usize];
            let mut h = FragmentHasher::new(MIN_CHUNK_SIZE);
            h.update(&bytes);
            let h = h.finish();
            FragmentInfo {
                index: i,
                name: fragment_name(i),
                size: h.size,
                duration: 2.002,
                start: f64::from(i) * 2.002,
                frame_count: 50,
                blake3: h.hash,
                chunks: h.chunks,
            }
        })
        .collect();
    let source = SourceInfo {
        name: "demo clip.mp4".into(),
        size: 1_000_000,
        duration: 6.006,
        frame_count: 150,
    };
    Manifest::new(source, mode, MIN_CHUNK_SIZE, fragments).with_codecs(codecs.map(Into::into))
}

/// What a loose upload becomes (`service::uploads::upload_manifest`).
fn upload_manifest(name: &str) -> Manifest {
    let mut h = FragmentHasher::new(vidswarm_proto::DEFAULT_CHUNK_SIZE);
    h.update(b"some bytes");
    let h = h.finish();
    let fragment = FragmentInfo {
        index: 0,
        name: fragment_name(0),
        size: h.size,
        duration: 0.0,
        start: 0.0,
        frame_count: 0,
        blake3: h.hash,
        chunks: h.chunks,
    };
    let source = SourceInfo {
        name: name.into(),
        size: h.size,
        duration: 0.0,
        frame_count: 0,
    };
    Manifest::new(
        source,
        SplitMode::Upload,
        vidswarm_proto::DEFAULT_CHUNK_SIZE,
        vec![fragment],
    )
}

fn manifests() -> Vec<Vec<u8>> {
    let reencode = video(SplitMode::Reencode, None);
    let copy = video(SplitMode::Copy, Some("avc1.64001f,mp4a.40.2"));
    let upload = upload_manifest("fragment_3.mp4");
    let mut edited = reencode.clone();
    edited.fragments[2].blake3 = Hash::of(b"other bytes");
    vec![
        reencode.to_json_pretty(),
        copy.to_json_pretty(),
        upload.to_json_pretty(),
        // Compact, and with an id that no longer matches.
        serde_json::to_vec(&edited).expect("serialises"),
    ]
}

fn collections() -> Vec<Vec<u8>> {
    let video = |s: &[u8]| VideoId(Hash::of(s)).to_string();
    let good = serde_json::json!({ "names": {
        "clip.mp4": { "uploaded_at_ms": 1_700_000_000_000u64, "video": video(b"a") },
        "fragment_3.mp4": { "uploaded_at_ms": 1_700_000_000_123u64, "video": video(b"b") },
    }});
    let damaged = serde_json::json!({ "names": {
        "clip.mp4": { "uploaded_at_ms": 1_700_000_000_000u64, "video": video(b"a") },
        "../escape.mp4": { "uploaded_at_ms": 1, "video": video(b"c") },
        "bad entry.mp4": { "uploaded_at_ms": "soon", "video": "not hex" },
    }});
    vec![
        serde_json::to_vec_pretty(&good).expect("serialises"),
        serde_json::to_vec_pretty(&damaged).expect("serialises"),
        br#"{"names":{}}"#.to_vec(),
        br#"{"names":{"a":{"uploaded_at_ms":1,"video":"#.to_vec(),
    ]
}

/// `len` as 8 little-endian bytes, then the header's value.
fn ranges() -> Vec<Vec<u8>> {
    [
        ("bytes=0-9", 100u64),
        ("bytes=90-", 100),
        ("bytes=-10", 100),
        ("bytes=-500", 100),
        ("bytes=50-500", 100),
        ("bytes=5-2", 100),
        ("bytes=0-1,3-4", 100),
        ("bytes=100-", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes= 0 - 18446744073709551615", u64::MAX),
    ]
    .iter()
    .map(|(value, len)| [&len.to_le_bytes()[..], value.as_bytes()].concat())
    .collect()
}

/// A flags byte (bit 0: `?replace=true`), then the multipart form.
fn uploads() -> Vec<Vec<u8>> {
    let part = |name: &str, filename: Option<&str>, data: &str| {
        let filename = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\
             Content-Type: video/mp4\r\n\r\n{data}\r\n"
        )
    };
    let end = format!("--{BOUNDARY}--\r\n");
    let forms = [
        (
            0u8,
            [part("file", Some("clip.mp4"), "some bytes"), end.clone()].concat(),
        ),
        (
            1,
            [part("file", Some("clip.mp4"), "other bytes"), end.clone()].concat(),
        ),
        (
            0,
            [
                part("note", None, "postman adds fields"),
                part("file", Some("fragment_3.mp4"), "x"),
                end.clone(),
            ]
            .concat(),
        ),
        (
            0,
            [
                part("file", Some("a.mp4"), "1"),
                part("file", Some("b.mp4"), "2"),
                end.clone(),
            ]
            .concat(),
        ),
        (0, [part("file", Some("../x"), "1"), end.clone()].concat()),
        (0, [part("file", None, "no name"), end.clone()].concat()),
        (
            0,
            [part("file", Some("empty.mp4"), ""), end.clone()].concat(),
        ),
    ];
    forms
        .into_iter()
        .map(|(flags, form)| [&[flags][..], form.as_bytes()].concat())
        .collect()
}
