//! The HTTP sidecar over real HTTP on 127.0.0.1 (reqwest): every route of this slice, its error
//! shape, a fetch started over HTTP, and the OpenAPI spec and Swagger UI served with no network.

mod common;

use std::time::Duration;

use common::http::{get_json, json, serve};
use common::swarm::{holds_all, start, wait_until, TestNode};
use vidswarm_proto::Manifest;

fn video(dir: &std::path::Path) -> (Manifest, Vec<Vec<u8>>) {
    let frags: Vec<Vec<u8>> = (0..4)
        .map(|i| common::bytes(500 + i, 30_000 + i as usize))
        .collect();
    (common::write_split_dir(dir, &frags), frags)
}

/// A node holding a 4-fragment video and serving its API: (node, manifest, fragments, base URL).
async fn serving_a_video() -> (TestNode, Manifest, Vec<Vec<u8>>, String) {
    let a = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let (m, frags) = video(split.path());
    a.node.import_split(split.path()).await.unwrap();
    let base = serve(&a).await;
    (a, m, frags, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_the_documented_shape() {
    let (a, m, frags, base) = serving_a_video().await;
    let http = reqwest::Client::new();
    let id = m.video_id.to_string();

    let health = get_json(&http, &format!("{base}/health")).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["peer_id"], a.node.peer_id().to_string());

    let info = get_json(&http, &format!("{base}/api/v1/info")).await;
    assert_eq!(info["videos"], 1);
    assert!(info["addresses"][0].as_str().unwrap().contains("/p2p/"));

    let peers = http
        .get(format!("{base}/api/v1/peers"))
        .send()
        .await
        .unwrap();
    assert_eq!(peers.status(), 200);
    assert!(json(peers).await.is_array());

    let videos = get_json(&http, &format!("{base}/api/v1/videos")).await;
    assert_eq!(videos["videos"][0]["video_id"], id);
    let fragments = videos["videos"][0]["fragments"].as_array().unwrap();
    assert_eq!(fragments.len(), 4);
    assert!(fragments.iter().all(|f| f["held"] == true));

    let manifest = http
        .get(format!("{base}/api/v1/videos/{id}/manifest"))
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let manifest = Manifest::from_json(&manifest.bytes().await.unwrap()).unwrap();
    assert_eq!(manifest, m);

    let fragment = http
        .get(format!("{base}/api/v1/videos/{id}/fragments/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(fragment.status(), 200);
    assert_eq!(fragment.headers()["content-type"], "video/mp4");
    assert_eq!(fragment.bytes().await.unwrap(), frags[2]);

    // Errors: one JSON shape, the right status.
    let other = vidswarm_proto::Hash::of(b"other").to_string();
    for (path, status, code) in [
        (
            "/api/v1/videos/not-hex/manifest".to_string(),
            400,
            "bad_request",
        ),
        (
            format!("/api/v1/videos/{}/manifest", id.to_uppercase()),
            400,
            "bad_request",
        ),
        (format!("/api/v1/videos/{other}/manifest"), 404, "not_found"),
        (
            format!("/api/v1/videos/{id}/fragments/99"),
            404,
            "not_found",
        ),
        (
            format!("/api/v1/videos/{other}/fragments/0"),
            404,
            "not_found",
        ),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body = json(resp).await;
        assert_eq!(body["error"], code, "{path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let resp = http
        .post(format!("{base}/api/v1/videos/nope/fetch"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_started_over_http_completes_and_serves_the_bytes() {
    let a = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let (m, frags) = video(split.path());
    a.node.import_split(split.path()).await.unwrap();
    let b = start(&[&a], false).await;
    let base = serve(&b).await;
    let http = reqwest::Client::new();
    let id = m.video_id.to_string();

    let resp = http
        .post(format!("{base}/api/v1/videos/{id}/fetch"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(json(resp).await["status"], "started");
    wait_until(&[&b], Duration::from_secs(30), "b holds the video", || {
        holds_all(&b, &m)
    })
    .await;
    let fragment = http
        .get(format!("{base}/api/v1/videos/{id}/fragments/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(fragment.bytes().await.unwrap(), frags[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_spec_and_swagger_ui_load_with_no_network() {
    let a = start(&[], false).await;
    let base = serve(&a).await;
    let http = reqwest::Client::new();

    let spec = get_json(&http, &format!("{base}/api-docs/openapi.json")).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for route in [
        "/health",
        "/events",
        "/api/v1/info",
        "/api/v1/peers",
        "/api/v1/videos",
        "/api/v1/videos/{video_id}/manifest",
        "/api/v1/videos/{video_id}/fragments/{index}",
        "/api/v1/videos/{video_id}/fetch",
    ] {
        assert!(paths.contains_key(route), "{route} missing from the spec");
    }
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());

    let page = http
        .get(format!("{base}/swagger-ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let resp = http
            .get(format!("{base}/swagger-ui/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_an_announcement_made_on_another_node() {
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let base = serve(&a).await;
    let mut resp = reqwest::Client::new()
        .get(format!("{base}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");

    // Something happens on b: it imports a video and announces it.
    let split = tempfile::tempdir().unwrap();
    let (m, _) = video(split.path());
    b.node.import_split(split.path()).await.unwrap();

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("event: announcement_received") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("an announcement event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&m.video_id.to_string()), "{text}");
    assert!(text.contains(&b.node.peer_id().to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_downloads_honour_range_and_refuse_bad_ones_clearly() {
    let (_a, m, frags, base) = serving_a_video().await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/videos/{}/fragments/1", m.video_id);
    let len = frags[1].len();

    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    for (range, from, to) in [
        ("bytes=10-19", 10, 19),
        ("bytes=30000-", 30000, len - 1),
        ("bytes=-5", len - 5, len - 1),
    ] {
        let resp = http.get(&url).header("Range", range).send().await.unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {from}-{to}/{len}").as_str(),
            "{range}"
        );
        assert_eq!(resp.bytes().await.unwrap(), frags[1][from..=to], "{range}");
    }
    for (range, status, code) in [
        ("bytes=abc", 400, "bad_request"),
        ("bytes=0-1,5-6", 400, "bad_request"),
        ("bytes=9-3", 400, "bad_request"),
        ("bytes=999999-", 416, "range_not_satisfiable"),
    ] {
        let resp = http.get(&url).header("Range", range).send().await.unwrap();
        assert_eq!(resp.status(), status, "{range}");
        assert_eq!(json(resp).await["error"], code, "{range}");
    }
}
