//! A running node's HTTP API, as the CLI uses it: `vidswarm status --node URL`,
//! `vidswarm fetch --node URL VIDEO` and `vidswarm publish VIDEO --node URL`.

use anyhow::{bail, Context};
use futures::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::events::NodeEvent;

/// Most an error body or a JSON answer may be before it is cut off or refused.
const MAX_JSON: usize = 16 << 20;

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
        let bytes = response
            .bytes()
            .await
            .context("the node's answer broke off")?;
        if bytes.len() > MAX_JSON {
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
        let body = response.bytes().await.unwrap_or_default();
        let body = &body[..body.len().min(MAX_JSON)];
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        Self { status, message }
    }
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
}

impl SseParser {
    /// A line longer than this is not one of ours; it is dropped rather than buffered forever.
    const MAX_LINE: usize = 1 << 20;

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
                if !self.data.is_empty() {
                    done.push(std::mem::take(&mut self.data));
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

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
