//! Serving a test node's HTTP API on 127.0.0.1:0, and reading its answers.

use serde_json::Value;
use vidswarm_node::http::HttpConfig;

use super::swarm::TestNode;

/// Serves `node`'s API with the default settings and returns its base URL.
pub async fn serve(node: &TestNode) -> String {
    serve_with(node, HttpConfig::default()).await
}

pub async fn serve_with(node: &TestNode, config: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = node.node.http_state(config);
    tokio::spawn(vidswarm_node::http::serve(
        listener,
        state,
        std::future::pending(),
    ));
    base
}

pub async fn json(resp: reqwest::Response) -> Value {
    resp.json::<Value>().await.expect("a JSON body")
}

pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    json(http.get(url).send().await.unwrap()).await
}

/// Uploads `bytes` as `name` through the original system's `POST /upload_fragment{query}`.
pub async fn upload_named(
    base: &str,
    name: &str,
    bytes: Vec<u8>,
    query: &str,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    reqwest::Client::new()
        .post(format!("{base}/upload_fragment{query}"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Asserts an error answer: its status, and the JSON shape every error has.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status(), status, "status");
    let body = json(resp).await;
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().expect("a message").to_owned();
    assert!(!message.is_empty());
    message
}

/// GETs `url` until its JSON satisfies `done`, or fails the test after `limit`.
pub async fn poll_json(
    http: &reqwest::Client,
    url: &str,
    limit: std::time::Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let value = get_json(http, url).await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} polling {url}: {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
