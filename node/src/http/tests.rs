//! The router over a service with no swarm behind it (`Client::offline`), called with `oneshot`:
//! no socket, no libp2p node. What the swarm would have been told shows up as announcements on the
//! offline client's receiver. Tests that need a real swarm are in `node/tests/http*.rs`.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tower::ServiceExt;
use vidswarm_proto::wire::Announcement;
use vidswarm_proto::{
    fragment_name, FragmentHasher, FragmentInfo, Manifest, SourceInfo, SplitMode,
};

use super::{app, AppState, HttpConfig};
use crate::net::Client;
use crate::service::{FetchOptions, Service};
use crate::store::Store;

struct Fixture {
    state: AppState,
    announced: UnboundedReceiver<Announcement>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let (client, announced) = Client::offline();
    let service = Service::new(client, store, FetchOptions::default());
    Fixture {
        state: AppState::new(service, HttpConfig::default()),
        announced,
        _dir: dir,
    }
}

const CHUNK: u32 = 16 * 1024;

fn video() -> (Manifest, Vec<Vec<u8>>) {
    let frags: Vec<Vec<u8>> = (0..2u8)
        .map(|i| (0..40_000u32).map(|b| (b as u8) ^ i).collect())
        .collect();
    let infos = frags
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut h = FragmentHasher::new(CHUNK);
            h.update(data);
            let h = h.finish();
            FragmentInfo {
                index: i as u32,
                name: fragment_name(i as u32),
                size: h.size,
                duration: 1.0,
                start: i as f64,
                frame_count: 25,
                blake3: h.hash,
                chunks: h.chunks,
            }
        })
        .collect();
    let source = SourceInfo {
        name: "v.mp4".into(),
        size: 80_000,
        duration: 2.0,
        frame_count: 50,
    };
    (Manifest::new(source, SplitMode::Copy, CHUNK, infos), frags)
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

async fn announced(rx: &mut UnboundedReceiver<Announcement>) -> Announcement {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("an announcement within 10 s")
        .expect("the offline client is running")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_split_uploaded_without_a_swarm_is_stored_served_and_announced_once_per_fragment() {
    let mut f = fixture();
    let (m, frags) = video();
    let id = m.video_id;
    let post = Request::post("/api/v1/videos")
        .body(Body::from(m.to_json_pretty()))
        .unwrap();
    let (status, body) = call(&f.state, post).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(json(&body)["missing"], serde_json::json!([0, 1]));
    // Nothing held yet, so nothing announced: the first announcement below holds fragment 0 only.

    for (i, data) in frags.iter().enumerate() {
        let put = Request::put(format!("/api/v1/videos/{id}/fragments/{i}"))
            .header(header::CONTENT_LENGTH, data.len())
            .body(Body::from(data.clone()))
            .unwrap();
        let (status, body) = call(&f.state, put).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let a = announced(&mut f.announced).await;
        assert_eq!(a.video, id);
        let held: Vec<u32> = a.fragments.iter().map(|f| f.index).collect();
        assert_eq!(held, (0..=i as u32).collect::<Vec<_>>());
    }

    let (status, body) = call(&f.state, get(&format!("/api/v1/videos/{id}/fragments/1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, frags[1]);
    let ranged = Request::get(format!("/api/v1/videos/{id}/fragments/0"))
        .header(header::RANGE, "bytes=10-19")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&f.state, ranged).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, frags[0][10..20]);
}

#[tokio::test]
async fn bad_paths_are_refused_in_the_error_shape() {
    let f = fixture();
    let (m, _) = video();
    for (uri, status) in [
        (
            "/api/v1/videos/nothex/manifest".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/videos/{}/fragments/x", m.video_id),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/videos/{}/fragments/-1", m.video_id),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/v1/videos/{}/manifest", m.video_id),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/v1/videos/{}/fragments/0", m.video_id),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, body) = call(&f.state, get(&uri)).await;
        assert_eq!(got, status, "{uri}");
        let body = json(&body);
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{uri}: {body}"
        );
    }
}

#[tokio::test]
async fn the_fetch_registry_is_the_one_gate_for_one_fetch_per_video() {
    let f = fixture();
    let (m, _) = video();
    let id = m.video_id;
    let held = f.state.service.fetches().begin(id).expect("free");
    let post = || {
        Request::post(format!("/api/v1/videos/{id}/fetch"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = call(&f.state, post()).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = call(&f.state, get(&format!("/api/v1/videos/{id}/fetch"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["state"], "running");
    held.finish(Ok(()));
    // Free again: this fetch starts (and, with no peers, fails in the background).
    let (status, _) = call(&f.state, post()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_loose_upload_is_named_listed_and_announced_with_its_name() {
    let mut f = fixture();
    let boundary = "vidswarmtest";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\nsome bytes\r\n--{boundary}--\r\n"
    );
    let upload = Request::post("/upload_fragment")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(form))
        .unwrap();
    let (status, body) = call(&f.state, upload).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["status"], "stored");
    let a = announced(&mut f.announced).await;
    assert_eq!(a.named.map(|n| n.name).as_deref(), Some("clip.mp4"));

    let (status, body) = call(&f.state, get("/get_fragment/clip.mp4")).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"some bytes"[..])
    );
    let (_, body) = call(&f.state, get("/list_fragments")).await;
    assert_eq!(json(&body)["fragments"], serde_json::json!(["clip.mp4"]));
    let (status, _) = call(&f.state, get("/get_fragment/other.mp4")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_local_disk_failure_is_an_internal_error_not_try_again() {
    let f = fixture();
    let (m, frags) = video();
    let post = Request::post("/api/v1/videos")
        .body(Body::from(m.to_json_pretty()))
        .unwrap();
    assert_eq!(call(&f.state, post).await.0, StatusCode::CREATED);
    // The store's tmp/ becomes a file: no upload can be written.
    let tmp = f.state.service.store().root().join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a dir").unwrap();
    let put = Request::put(format!("/api/v1/videos/{}/fragments/0", m.video_id))
        .header(header::CONTENT_LENGTH, frags[0].len())
        .body(Body::from(frags[0].clone()))
        .unwrap();
    let (status, body) = call(&f.state, put).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(&body)["error"], "internal");
}

#[tokio::test]
async fn the_web_ui_is_served_from_the_binary_and_an_unknown_video_gets_a_404_page() {
    let f = fixture();
    for (path, marker) in [
        ("/", "<nav id=\"nav\">"),
        ("/ui/swarm", "id=\"throughput\""),
        ("/ui/videos", "<nav id=\"nav\">"),
        ("/ui/assets/player.js", "MediaSource"),
        ("/ui/assets/style.css", "#strip"),
    ] {
        let (status, body) = call(&f.state, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");
    }
    let unknown = "0".repeat(64);
    for page in ["play", "videos"] {
        let (status, body) = call(&f.state, get(&format!("/ui/{page}/{unknown}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "/ui/{page}");
        assert!(String::from_utf8_lossy(&body).contains("<!doctype html>"));
    }
    let (status, _) = call(&f.state, get("/ui/assets/../Cargo.toml")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Playback routes on a video nobody announced answer 404 at once (a made-up id starts no
/// fetch), and a video whose manifest has no codec string (split before fragments were
/// fragmented MP4) still loads but has no playlist.
#[tokio::test]
async fn playback_of_an_unknown_or_old_video_is_refused_clearly_and_at_once() {
    let f = fixture();
    let unknown = "1".repeat(64);
    for path in [
        format!("/api/v1/videos/{unknown}/fragments/0"),
        format!("/api/v1/videos/{unknown}/manifest"),
        format!("/api/v1/videos/{unknown}/playlist.m3u8"),
        format!("/api/v1/videos/{unknown}/hls/3.m4s"),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = call(&f.state, get(&path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json(&body)["error"], "not_found");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{path}"
        );
    }
    assert!(
        f.state.service.fetches().all().is_empty(),
        "no fetch started"
    );

    let (m, _) = video();
    assert!(m.codecs.is_none());
    let post = Request::post("/api/v1/videos")
        .body(Body::from(m.to_json_pretty()))
        .unwrap();
    assert_eq!(call(&f.state, post).await.0, StatusCode::CREATED);
    let (status, body) = call(
        &f.state,
        get(&format!("/api/v1/videos/{}/manifest", m.video_id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["video_id"], m.video_id.to_string());
    let (status, body) = call(
        &f.state,
        get(&format!("/api/v1/videos/{}/playlist.m3u8", m.video_id)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(json(&body)["message"]
        .as_str()
        .unwrap()
        .contains("publish it again"));
    let (status, _) = call(
        &f.state,
        get(&format!("/api/v1/videos/{}/hls/x.ts", m.video_id)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let report = Request::post(format!("/api/v1/videos/{}/playback", m.video_id))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"event":"stall","late":true}"#))
        .unwrap();
    assert_eq!(call(&f.state, report).await.0, StatusCode::NO_CONTENT);
    let (_, metrics) = call(&f.state, get("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("vidswarm_playback_late_fragments_total 1"),
        "{metrics}"
    );
}

/// A fragment that is still arriving is sent chunk by chunk, each only once it is verified, and
/// a download that stops cuts the answer (an error, never unverified bytes).
#[tokio::test]
async fn a_fragment_still_arriving_is_sent_as_its_chunks_are_verified() {
    use crate::store::partial::End;
    use std::io::Write;
    let f = fixture();
    let (m, frags) = video();
    let (info, data) = (&m.fragments[0], &frags[0]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arriving");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&vec![0xee; data.len()]).unwrap(); // not yet the real bytes
    let partials = f.state.service.store().partials();
    let chunks = vidswarm_proto::chunk_count(info.size, CHUNK) as usize;
    partials.begin(
        info.blake3,
        std::fs::File::open(&path).unwrap(),
        path.clone(),
        info.size,
        CHUNK,
        vec![false; chunks],
    );
    let partial = partials.get(&info.blake3).unwrap();
    let mut body = super::playback::as_it_arrives(partial).into_body();

    async fn next(
        body: &mut axum::body::Body,
    ) -> Result<
        Option<Result<http_body::Frame<axum::body::Bytes>, axum::Error>>,
        tokio::time::error::Elapsed,
    > {
        tokio::time::timeout(std::time::Duration::from_millis(300), body.frame()).await
    }
    assert!(
        next(&mut body).await.is_err(),
        "nothing is sent before a chunk is verified"
    );
    let c = CHUNK as usize;
    std::os::unix::fs::FileExt::write_all_at(&file, &data[..c], 0).unwrap();
    partials.verified(&info.blake3, 0);
    let first = next(&mut body)
        .await
        .expect("chunk 0 once verified")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), &data[..c]);
    assert!(
        next(&mut body).await.is_err(),
        "chunk 1 is not verified yet"
    );
    partials.end(&info.blake3, End::Abandoned);
    let cut = next(&mut body)
        .await
        .expect("an answer once the download stops")
        .unwrap();
    assert!(
        cut.is_err(),
        "a stopped download ends the body with an error"
    );
}
