//! A running node's HTTP API, as the CLI uses it: `vidswarm status --node URL`,
//! `vidswarm fetch --node URL VIDEO`, `vidswarm publish VIDEO --node URL` and
//! `vidswarm delete VIDEO --node URL`.

use anyhow::{bail, Context};
use futures::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::events::NodeEvent;

/// Most a JSON answer may be before it is refused.
const MAX_JSON: usize = 16 << 20;
/// Most of an error body that is read (the node's messages are a line or two); the rest is not.
const MAX_ERROR_BODY: usize = 64 << 10;

pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    /// `base` like `http://127.0.0.1:8000`; a trailing `/` is fine.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--node wants a URL like http://127.0.0.1:8000, not {base:?}");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Self { base, http, token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.with_token(self.http.get(format!("{}{path}", self.base)))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.with_token(self.http.post(format!("{}{path}", self.base)))
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.with_token(self.http.put(format!("{}{path}", self.base)))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.with_token(self.http.delete(format!("{}{path}", self.base)))
    }

    fn with_token(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error carrying the node's message.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(ApiFailure::read(response).await.into())
    }

    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        let (bytes, whole) = read_at_most(response, MAX_JSON)
            .await
            .context("the node's answer broke off")?;
        if !whole {
            bail!("the node's answer is larger than {MAX_JSON} bytes");
        }
        serde_json::from_slice(&bytes).context("the node's answer is not the JSON expected")
    }

    /// The node's event stream (`GET /events`), parsed. The channel closes when the stream ends.
    pub async fn events(&self) -> anyhow::Result<mpsc::Receiver<NodeEvent>> {
        let response = self.send(self.get("/events")).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut sse = SseParser::default();
            while let Some(Ok(bytes)) = body.next().await {
                for data in sse.feed(&bytes) {
                    // Events this build does not know (`lagged`, newer kinds) are skipped.
                    if let Ok(event) = serde_json::from_str::<NodeEvent>(&data) {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// A non-2xx answer: its status and the node's `{"error", "message"}` when it sent one.
#[derive(Debug, thiserror::Error)]
#[error("the node answered {status}: {message}")]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
}

impl ApiFailure {
    async fn read(response: Response) -> Self {
        let status = response.status();
        let (body, _) = read_at_most(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let body = &body[..];
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        Self { status, message }
    }
}

/// The body of `response`, read as it comes up to `limit` bytes: then reading stops (a body that
/// never ends costs `limit`, not all memory). `true` if that was the whole body.
async fn read_at_most(response: Response, limit: usize) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(bytes) = stream.next().await {
        let bytes = bytes?;
        if body.len() + bytes.len() > limit {
            body.extend_from_slice(&bytes[..limit - body.len()]);
            return Ok((body, false));
        }
        body.extend_from_slice(&bytes);
    }
    Ok((body, true))
}

/// The status of an error from [`Api::send`], if the node answered at all.
pub fn failure_status(e: &anyhow::Error) -> Option<StatusCode> {
    e.downcast_ref::<ApiFailure>().map(|f| f.status)
}

/// Server-Sent Events, reduced to what this node sends: `data:` lines, an empty line ends an
/// event. Bytes may split lines anywhere.
#[derive(Default)]
struct SseParser {
    line: Vec<u8>,
    data: String,
    /// The event being read grew past [`SseParser::MAX_EVENT`]: it is dropped at its end.
    too_long: bool,
}

impl SseParser {
    /// A line longer than this is not one of ours; it is dropped rather than buffered forever.
    const MAX_LINE: usize = 1 << 20;
    /// Nor is an event of more `data:` than this, however many lines it comes in.
    const MAX_EVENT: usize = 1 << 20;

    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < Self::MAX_LINE {
                    self.line.push(b);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line)
                .trim_end_matches('\r')
                .to_owned();
            self.line.clear();
            if line.is_empty() {
                if !self.data.is_empty() && !self.too_long {
                    done.push(std::mem::take(&mut self.data));
                }
                self.data.clear();
                self.too_long = false;
            } else if let Some(data) = line.strip_prefix("data:") {
                let data = data.strip_prefix(' ').unwrap_or(data);
                if self.too_long || self.data.len() + data.len() + 1 > Self::MAX_EVENT {
                    self.too_long = true;
                    self.data.clear();
                    continue;
                }
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(data);
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on 127.0.0.1 that answers any request with `head` and then a chunked body that
    /// never ends (until the client goes).
    async fn endless_server(head: &'static str) -> String {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let block = vec![b'x'; 64 << 10];
                    // Chunked: 0x10000 bytes per chunk, never a last chunk.
                    let chunk = [b"10000\r\n".as_slice(), &block, b"\r\n"].concat();
                    while socket.write_all(&chunk).await.is_ok() {}
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_endless_answer_costs_a_bounded_read_and_a_clear_error() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let api = Api::new(&endless_server(ok).await, None).unwrap();
        // Unbounded reads would never end here: the deadline turns that into a failure.
        let within = std::time::Duration::from_secs(30);
        let answer = tokio::time::timeout(within, api.json::<Value>(api.get("/status")));
        let err = answer.await.expect("a bounded read").unwrap_err();
        assert!(format!("{err:#}").contains("larger than"), "{err:#}");

        let failed = "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n";
        let api = Api::new(&endless_server(failed).await, None).unwrap();
        let answer = tokio::time::timeout(within, api.send(api.get("/status")));
        let err = answer.await.expect("a bounded read").unwrap_err();
        let failure = err.downcast_ref::<ApiFailure>().expect("an ApiFailure");
        assert_eq!(failure.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(failure.message.len() <= MAX_ERROR_BODY);
    }

    #[test]
    fn an_event_of_endless_data_lines_is_dropped_not_buffered() {
        let mut p = SseParser::default();
        let line = format!("data: {}\n", "y".repeat(1000));
        for _ in 0..(2 * SseParser::MAX_EVENT / 1000) {
            assert!(p.feed(line.as_bytes()).is_empty());
            assert!(p.data.len() <= SseParser::MAX_EVENT);
        }
        assert!(p.feed(b"\n").is_empty(), "the overlong event is dropped");
        assert_eq!(p.feed(b"data: next\n\n"), vec!["next".to_owned()]);
    }

    #[test]
    fn sse_events_split_anywhere_come_out_whole() {
        let stream = b"event: a\ndata: {\"x\":1}\n\n: keep-alive\n\ndata: one\r\ndata: two\n\n";
        for cut in 0..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&stream[..cut]);
            got.extend(p.feed(&stream[cut..]));
            assert_eq!(
                got,
                vec!["{\"x\":1}".to_owned(), "one\ntwo".to_owned()],
                "cut at {cut}"
            );
        }
    }
}
