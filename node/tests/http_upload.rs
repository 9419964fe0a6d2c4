//! Writing through the HTTP API, over real HTTP on 127.0.0.1: uploading a whole split (manifest,
//! then fragments verified on the way in), the bearer token, fetches followed to the end (and a
//! second one refused while the first runs), and `/metrics` counting a transfer.

mod common;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;

use common::http::{assert_error, get_json, json, poll_json, serve, serve_with};
use common::swarm::{holds_all, start};
use vidswarm_node::http::HttpConfig;
use vidswarm_proto::Manifest;

fn video(dir: &Path) -> (Manifest, Vec<Vec<u8>>) {
    let frags: Vec<Vec<u8>> = (0..3)
        .map(|i| common::bytes(900 + i, 40_000 + i as usize * 7))
        .collect();
    (common::write_split_dir(dir, &frags), frags)
}

async fn post_manifest(
    http: &reqwest::Client,
    base: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/videos"))
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn put(
    http: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    http.put(url).body(body).send().await.unwrap()
}

/// Files left in the store's `tmp/` (an aborted upload must leave none).
fn temp_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_split_uploads_verified_and_bad_bytes_are_refused() {
    let a = start(&[], false).await;
    let base = serve(&a).await;
    let http = reqwest::Client::new();
    let split = tempfile::tempdir().unwrap();
    let (m, frags) = video(split.path());
    let id = m.video_id.to_string();
    let manifest = m.to_json_pretty();

    // A fragment before its manifest: unknown.
    let early = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/0"),
        frags[0].clone(),
    )
    .await;
    assert_error(early, 404, "not_found").await;

    let first = post_manifest(&http, &base, manifest.clone()).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["video_id"], id);
    assert_eq!(first["missing"], serde_json::json!([0, 1, 2]));
    let again = post_manifest(&http, &base, manifest.clone()).await;
    assert_eq!(again.status(), 200);

    // Bytes that are not the fragment's: refused, and nothing is left behind.
    let mut wrong = frags[1].clone();
    wrong[10] ^= 1;
    let refused = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/1"),
        wrong,
    )
    .await;
    assert_error(refused, 400, "bad_request").await;
    let too_long = http
        .put(format!("{base}/api/v1/videos/{id}/fragments/1"))
        .body([frags[1].clone(), vec![0; 10]].concat())
        .send()
        .await
        .unwrap();
    assert_error(too_long, 413, "too_large").await;
    let short = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/1"),
        frags[1][..100].to_vec(),
    )
    .await;
    assert_error(short, 400, "bad_request").await;
    assert!(!a.node.store().has_fragment(&m.fragments[1].blake3));
    assert_eq!(temp_files(a.dir.path()), 0);

    for (i, bytes) in frags.iter().enumerate() {
        let put = put(
            &http,
            &format!("{base}/api/v1/videos/{id}/fragments/{i}"),
            bytes.clone(),
        )
        .await;
        assert_eq!(put.status(), 201, "fragment {i}");
        assert_eq!(json(put).await["blake3"], m.fragments[i].blake3.to_string());
    }
    let held = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/2"),
        frags[2].clone(),
    )
    .await;
    assert_eq!(held.status(), 200);
    assert!(holds_all(&a, &m));
    let back = http
        .get(format!("{base}/api/v1/videos/{id}/fragments/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap(), frags[2]);

    // Not a manifest, a tampered one, an index that is not a number: 400 with the JSON shape.
    let mut tampered: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    tampered["source"]["name"] = "other.mp4".into();
    for body in [b"{}".to_vec(), tampered.to_string().into_bytes()] {
        let bad = post_manifest(&http, &base, body).await;
        assert_error(bad, 400, "bad_request").await;
    }
    // Bodies read whole are bounded by what they can be, not by the fragment upload limit.
    let huge = vec![b' '; vidswarm_proto::MAX_MANIFEST_BYTES + 1];
    assert_error(post_manifest(&http, &base, huge).await, 413, "too_large").await;
    let long_fetch = http
        .post(format!("{base}/api/v1/videos/{id}/fetch"))
        .body(vec![b' '; 65 << 10])
        .send()
        .await
        .unwrap();
    assert_error(long_fetch, 413, "too_large").await;
    let bad_index = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/x"),
        "x",
    )
    .await;
    assert_error(bad_index, 400, "bad_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_guards_writes_and_leaves_reads_open() {
    let a = start(&[], false).await;
    let base = serve_with(
        &a,
        HttpConfig {
            api_token: Some("s3cret".into()),
            ..HttpConfig::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let split = tempfile::tempdir().unwrap();
    let (m, _) = video(split.path());
    let post = |token: Option<&str>| {
        let req = http
            .post(format!("{base}/api/v1/videos"))
            .body(m.to_json_pretty());
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    for token in [None, Some("wrong"), Some("s3cre")] {
        let resp = post(token).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_error(resp, 401, "unauthorized").await;
    }
    let upload = http
        .post(format!("{base}/upload_fragment"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1; 10]).file_name("fragment_0.mp4"),
        ))
        .send()
        .await
        .unwrap();
    assert_error(upload, 401, "unauthorized").await;
    assert!(a.node.store().manifests().is_empty());
    assert_eq!(post(Some("s3cret")).send().await.unwrap().status(), 201);
    for read in ["/health", "/api/v1/videos", "/list_fragments", "/metrics"] {
        let resp = http.get(format!("{base}{read}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{read}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_is_followed_to_the_end_and_metrics_count_it() {
    let a = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let (m, _) = video(split.path());
    a.node.import_split(split.path()).await.unwrap();
    let b = start(&[&a], false).await;
    let (base_a, base_b) = (serve(&a).await, serve(&b).await);
    let http = reqwest::Client::new();
    let id = m.video_id.to_string();

    let none = http
        .get(format!("{base_b}/api/v1/videos/{id}/fetch"))
        .send()
        .await
        .unwrap();
    assert_error(none, 404, "not_found").await;
    let started = http
        .post(format!("{base_b}/api/v1/videos/{id}/fetch"))
        .json(&serde_json::json!({ "fragments": [0, 2] }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    assert_eq!(json(started).await["fragments"], serde_json::json!([0, 2]));
    let url = format!("{base_b}/api/v1/videos/{id}/fetch");
    let state = poll_json(&http, &url, Duration::from_secs(30), |s| {
        s["state"] != "running"
    })
    .await;
    assert_eq!(state["state"], "completed", "{state}");
    assert_eq!(state["done"], serde_json::json!([0, 2]));
    assert!(b.node.store().has_fragment(&m.fragments[2].blake3));
    assert!(!b.node.store().has_fragment(&m.fragments[1].blake3));
    let listed = get_json(&http, &format!("{base_b}/api/v1/fetches")).await;
    assert_eq!(listed[0]["video_id"], id);

    // The transfer shows in both nodes' metrics, which parse as Prometheus text.
    let sent = fragment_bytes(&http, &base_a, "sent").await;
    let received = fragment_bytes(&http, &base_b, "received").await;
    let expected = (m.fragments[0].size + m.fragments[2].size) as f64;
    assert_eq!(received, expected);
    assert!(sent >= expected, "{sent} < {expected}");
    let text = http
        .get(format!("{base_b}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = parse(&text);
    assert_eq!(
        metric(&metrics, "vidswarm_fragments_fetched_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "vidswarm_fetches_total",
            &[("result", "completed")]
        ),
        Some(1.0)
    );
    assert_eq!(metric(&metrics, "vidswarm_peers", &[]), Some(1.0));
    assert!(
        metrics.iter().any(|s| s.metric.starts_with("libp2p_")),
        "libp2p's own metrics"
    );

    // A fetch nobody can serve keeps running: a second request for it is a conflict.
    let unknown = "ab".repeat(32);
    let first = http
        .post(format!("{base_b}/api/v1/videos/{unknown}/fetch"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let second = http
        .post(format!("{base_b}/api/v1/videos/{unknown}/fetch"))
        .send()
        .await
        .unwrap();
    assert_error(second, 409, "conflict").await;
}

fn parse(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    assert!(!scrape.samples.is_empty());
    scrape.samples
}

fn metric(
    samples: &[prometheus_parse::Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

async fn fragment_bytes(http: &reqwest::Client, base: &str, direction: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(
        &parse(&text),
        "vidswarm_protocol_bytes_total",
        &[
            ("protocol", "/vidswarm/fragment/1"),
            ("direction", direction),
        ],
    )
    .unwrap_or(0.0)
}

/// Uploads streaming in at once are bounded: past `max_uploads`, a clear 503, and the upload
/// that holds the slot still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_limit_get_a_503_and_the_running_one_completes() {
    let a = start(&[], false).await;
    let base = serve_with(
        &a,
        HttpConfig {
            max_uploads: 1,
            ..HttpConfig::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let split = tempfile::tempdir().unwrap();
    let (m, frags) = video(split.path());
    let id = m.video_id.to_string();
    let stored = post_manifest(&http, &base, m.to_json_pretty()).await;
    assert_eq!(stored.status(), 201);

    // The first upload sends half its bytes, then waits until told to go on.
    let (go_on, wait) = tokio::sync::oneshot::channel::<()>();
    let (head, tail) = frags[0].split_at(frags[0].len() / 2);
    let (head, tail) = (
        bytes::Bytes::copy_from_slice(head),
        bytes::Bytes::copy_from_slice(tail),
    );
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
        futures::stream::once(async move {
            let _ = wait.await;
            Ok(tail)
        }),
    );
    let first = tokio::spawn(
        http.put(format!("{base}/api/v1/videos/{id}/fragments/0"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    // It holds the one slot once its temp file exists.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while temp_files(a.dir.path()) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first upload started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/1"),
        frags[1].clone(),
    )
    .await;
    assert_error(second, 503, "unavailable").await;
    let legacy = http
        .post(format!("{base}/upload_fragment"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1; 10]).file_name("x.mp4"),
        ))
        .send()
        .await
        .unwrap();
    assert_error(legacy, 503, "unavailable").await;

    go_on.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 201);
    let again = put(
        &http,
        &format!("{base}/api/v1/videos/{id}/fragments/1"),
        frags[1].clone(),
    )
    .await;
    assert_eq!(again.status(), 201, "the slot is free again");
}
