//! `GET /events`: the node's event stream as Server-Sent Events, one JSON object per event with
//! the event's `type` as the SSE event name. A reader that falls behind skips what it missed (and
//! is told how much) rather than slowing the node down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

#[utoipa::path(get, path = "/events", tag = "node",
    responses((status = 200, description = "Server-Sent Events: announcements received, fetch progress, fragments stored, peers connected and lost. Each `data:` is a JSON object with a `type` field, also used as the SSE event name.", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.service.client().subscribe();
    let stream = stream::unfold(rx, |mut rx| async move {
        let sse = match rx.recv().await {
            Ok(event) => {
                let json = serde_json::to_value(&event).unwrap_or_default();
                let name = json["type"].as_str().unwrap_or("event").to_owned();
                Event::default().event(name).data(json.to_string())
            }
            Err(RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{{\"skipped\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(sse), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
