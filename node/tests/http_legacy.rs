//! The original system's routes with the clients it had (multipart forms, plain GETs), over real
//! HTTP on 127.0.0.1: uploads into the default collection and their bad input, the original "P2P
//! test" (node A serves a fragment only node B held), names agreed across nodes, SSE for an upload
//! on another node, and `/send_all_fragments`.

mod common;

use std::time::Duration;

use common::http::{assert_error, get_json, json, serve, serve_with};
use common::swarm::{start, wait_until};
use reqwest::multipart::{Form, Part};
use vidswarm_node::http::HttpConfig;

fn form(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

async fn upload(http: &reqwest::Client, base: &str, form: Form) -> reqwest::Response {
    http.post(format!("{base}/upload_fragment"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn temp_files(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_stored_by_name_and_bad_ones_refused_leaving_nothing() {
    let a = start(&[], false).await;
    let base = serve_with(
        &a,
        HttpConfig {
            max_upload: 100_000,
            ..HttpConfig::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let bytes = common::bytes(7, 60_000);

    let stored = upload(&http, &base, form("fragment_3.mp4", bytes.clone())).await;
    assert_eq!(stored.status(), 200);
    let stored = json(stored).await;
    assert_eq!(stored["name"], "fragment_3.mp4");
    assert_eq!(stored["size"], 60_000);
    assert_eq!(stored["status"], "stored");
    let again = json(upload(&http, &base, form("fragment_3.mp4", bytes.clone())).await).await;
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["video_id"], stored["video_id"]);

    // Other content under a taken name: a conflict unless replacing is asked for.
    let other = common::bytes(8, 1000);
    let conflict = upload(&http, &base, form("fragment_3.mp4", other.clone())).await;
    assert_error(conflict, 409, "conflict").await;
    let got = http
        .get(format!("{base}/get_fragment/fragment_3.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.bytes().await.unwrap(),
        bytes,
        "the conflict changed nothing"
    );

    let fragments_before = std::fs::read_dir(a.dir.path().join("fragments"))
        .unwrap()
        .count();
    for name in [
        "../evil.mp4",
        "a/b.mp4",
        "a\\b.mp4",
        "..",
        ".",
        "x\u{1}.mp4",
        &"x".repeat(300),
    ] {
        let resp = upload(&http, &base, form(name, vec![1; 100])).await;
        assert_error(resp, 400, "bad_request").await;
    }
    let nameless = Form::new().part("file", Part::bytes(vec![1; 100]));
    assert_error(upload(&http, &base, nameless).await, 400, "bad_request").await;
    let missing = Form::new().text("other", "x");
    assert_error(upload(&http, &base, missing).await, 400, "bad_request").await;
    let twice =
        form("a.mp4", vec![1; 100]).part("file", Part::bytes(vec![2; 100]).file_name("b.mp4"));
    assert_error(upload(&http, &base, twice).await, 400, "bad_request").await;
    assert_error(
        upload(&http, &base, form("empty.mp4", vec![])).await,
        400,
        "bad_request",
    )
    .await;
    let too_big = upload(&http, &base, form("big.mp4", vec![3; 150_000])).await;
    assert_error(too_big, 413, "too_large").await;
    let not_multipart = http
        .post(format!("{base}/upload_fragment"))
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_error(not_multipart, 400, "bad_request").await;
    assert_eq!(
        std::fs::read_dir(a.dir.path().join("fragments"))
            .unwrap()
            .count(),
        fragments_before,
        "no refused upload was stored"
    );
    assert_eq!(
        temp_files(a.dir.path()),
        0,
        "no refused upload left a temp file"
    );
    assert!(!a.dir.path().parent().unwrap().join("evil.mp4").exists());

    let replaced = upload_query(
        &http,
        &base,
        "?replace=true",
        form("fragment_3.mp4", other.clone()),
    )
    .await;
    assert_eq!(json(replaced).await["status"], "replaced");
    // The replaced upload is gone from the disk, manifest and fragment, and from the store.
    let old_hash = vidswarm_proto::Hash::of(&bytes).to_string();
    assert!(!a.dir.path().join("fragments").join(&old_hash).exists());
    let old_video: vidswarm_proto::VideoId = stored["video_id"].as_str().unwrap().parse().unwrap();
    assert!(a.node.store().manifest(&old_video).is_none());
    assert!(!a.node.store().is_pinned(&old_video));
    let got = http
        .get(format!("{base}/get_fragment/fragment_3.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), other);
    let range = http
        .get(format!("{base}/get_fragment/fragment_3.mp4"))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap(), other[10..20]);

    let list = get_json(&http, &format!("{base}/list_fragments")).await;
    assert_eq!(list["fragments"], serde_json::json!(["fragment_3.mp4"]));
    let detail = get_json(&http, &format!("{base}/fragments")).await;
    assert_eq!(detail["fragments"][0]["size"], 1000);
    let unknown = http
        .get(format!("{base}/get_fragment/fragment_9.mp4"))
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "not_found").await;
    let bad = http
        .get(format!("{base}/get_fragment/..%2Fx"))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "bad_request").await;
}

async fn upload_query(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    form: Form,
) -> reqwest::Response {
    http.post(format!("{base}/upload_fragment{query}"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The original system's P2P test: ask node A for a fragment only node B has. A (auto-fetch off,
/// so the fetch is the request's own) learns the name from B's announcement, fetches the bytes
/// over the swarm, stores them and serves them. A's event stream saw B's upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_a_serves_a_fragment_only_node_b_held() {
    let a = start(&[], false).await;
    let b = start(&[&a], false).await;
    let (base_a, base_b) = (serve(&a).await, serve(&b).await);
    let http = reqwest::Client::new();
    let mut events = http.get(format!("{base_a}/events")).send().await.unwrap();

    let bytes = common::bytes(11, 700_000);
    let stored = upload(&http, &base_b, form("fragment_5.mp4", bytes.clone())).await;
    assert_eq!(stored.status(), 200);
    let video = json(stored).await["video_id"].as_str().unwrap().to_owned();

    // SSE on A: the announcement of B's upload, with its name.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(text.contains(&video) && text.contains("fragment_5.mp4")) {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .expect("B's upload shows in A's events within 20 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: announcement_received"), "{text}");
    wait_until(&[&a], Duration::from_secs(20), "A knows the name", || {
        a.node.store().named("fragment_5.mp4").is_some()
    })
    .await;
    let before = get_json(&http, &format!("{base_a}/list_fragments")).await;
    assert_eq!(
        before["fragments"],
        serde_json::json!([]),
        "A does not hold it yet"
    );

    let got = http
        .get(format!("{base_a}/get_fragment/fragment_5.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap(), bytes);
    let after = get_json(&http, &format!("{base_a}/list_fragments")).await;
    assert_eq!(
        after["fragments"],
        serde_json::json!(["fragment_5.mp4"]),
        "A stored it"
    );
}

/// `/send_all_fragments` makes what a node holds available: its report lists what was sent, and
/// a peer with auto-fetch then holds it. With no peer connected, everything is reported failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_fragments_reports_and_peers_fetch_what_they_miss() {
    let a = start(&[], false).await;
    let base_a = serve(&a).await;
    let http = reqwest::Client::new();
    let bytes = common::bytes(12, 30_000);
    upload(&http, &base_a, form("fragment_1.mp4", bytes.clone())).await;

    let alone = get_json(&http, &format!("{base_a}/send_all_fragments")).await;
    assert_eq!(alone["peers"], 0);
    assert_eq!(alone["sent"], serde_json::json!([]));
    assert_eq!(alone["failed"][0]["name"], "fragment_1.mp4");

    let b = start(&[&a], true).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.node.client().connected_peers().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "a and b connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = get_json(&http, &format!("{base_a}/send_all_fragments")).await;
    assert_eq!(
        sent["sent"],
        serde_json::json!(["fragment_1.mp4"]),
        "{sent}"
    );
    assert_eq!(sent["failed"], serde_json::json!([]));
    let base_b = serve(&b).await;
    wait_until(
        &[&a, &b],
        Duration::from_secs(30),
        "b holds the upload",
        || {
            b.node.store().named("fragment_1.mp4").is_some_and(|e| {
                b.node
                    .store()
                    .manifest(&e.video)
                    .is_some_and(|m| b.node.store().has_fragment(&m.fragments[0].blake3))
            })
        },
    )
    .await;
    let got = http
        .get(format!("{base_b}/get_fragment/fragment_1.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), bytes);
}
