//! The transfer protocol in the loop: answers to our requests go back to their askers; requests
//! from peers are served on the blocking pool (at most `MAX_SERVING` at once, each counted until
//! its answer is written out, `Busy` beyond, and none once the node is stopping), their responses
//! sent when ready. A peer's chunk requests take turns (`uploads.rs`), and a busy node declines
//! chunks it just sent elsewhere (`spread.rs`). With an upload rate limit, a chunk's answer waits
//! for its time (`pacer.rs`) before it is handed to the swarm.

use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tracing::debug;
use vidswarm_proto::wire::{self, Response};

use super::super::serve;
use super::uploads::Admit;
use super::EventLoop;
use crate::metrics::{Direction, TRANSFER};
use crate::net::NetError;

impl EventLoop {
    pub(super) fn on_transfer(&mut self, event: request_response::Event<wire::Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => self.serve(peer, request_id, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if self.farewells.remove(&request_id) {
                        return;
                    }
                    if let Response::Chunk { data } = &response {
                        self.metrics
                            .bytes(TRANSFER, Direction::Received, data.len());
                        self.link_bytes(&peer, data.len(), 0);
                    }
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.farewells.remove(&request_id) {
                    debug!(%peer, %error, "no answer to our farewell");
                } else if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                debug!(%peer, %error, "inbound request failed");
                self.unsent = self.unsent.saturating_sub(1);
                self.sending.remove(&request_id);
                self.next_turn(request_id);
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.unsent = self.unsent.saturating_sub(1);
                self.sending.remove(&request_id);
                self.next_turn(request_id);
            }
        }
    }

    /// A chunk request waits for its peer's turn (`uploads.rs`); anything else is served now.
    fn serve(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        request: wire::Request,
        channel: ResponseChannel<Response>,
    ) {
        match request {
            wire::Request::Chunk { .. } => {}
            wire::Request::Leaving => {
                debug!(%peer, "peer is stopping");
                self.respond(id, channel, Response::Bye);
                return;
            }
            wire::Request::Manifest { .. } => return self.serve_now(peer, id, request, channel),
        }
        match self.uploads.admit(peer, id, (request, channel)) {
            Admit::Now(id, (request, channel)) => self.serve_now(peer, id, request, channel),
            Admit::Queued => {}
            Admit::Full((_, channel)) => {
                let busy = Response::error(wire::ErrorCode::Busy, "too many requests waiting");
                self.respond(id, channel, busy);
            }
        }
    }

    /// Request `id` is answered: its peer's next chunk request, if one waits, is served.
    fn next_turn(&mut self, id: InboundRequestId) {
        if let Some((peer, next, (request, channel))) = self.uploads.done(id) {
            self.serve_now(peer, next, request, channel);
        }
    }

    fn serve_now(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        request: wire::Request,
        channel: ResponseChannel<Response>,
    ) {
        let permit = match &self.stopping {
            Some(_) => None,
            None => self.serving.clone().try_acquire_owned().ok(),
        };
        let Some(permit) = permit else {
            let busy = Response::error(wire::ErrorCode::Busy, "too many requests in flight");
            self.respond(id, channel, busy);
            return;
        };
        if let wire::Request::Chunk {
            fragment,
            offset,
            may_decline,
            ..
        } = &request
        {
            let now = std::time::Instant::now();
            if self
                .recently_sent
                .decline(peer, *fragment, *offset, *may_decline, now)
            {
                self.metrics.chunks_declined.inc();
                // Named too: the fragment's other chunks it would decline now, so the asker
                // does not spend a round trip on each (loopback: as many as chunks sent).
                let also = self.recently_sent.also_declined(
                    peer,
                    *fragment,
                    *offset,
                    now,
                    wire::MAX_ALSO_DECLINED,
                );
                let declined = Response::declined(
                    "sent to another peer a moment ago; get it from the peers that have it",
                    also,
                );
                self.respond(id, channel, declined);
                return;
            }
        }
        if let wire::Request::Chunk {
            fragment, offset, ..
        } = &request
        {
            debug!(target: "vidswarm_sent", %peer, fragment = %fragment, offset, "serving a chunk");
        }
        let store = self.store.clone();
        let done = self.responses_tx.clone();
        let metrics = self.metrics.clone();
        let pacer = self.pacer.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let response = serve::answer(&store, &peer, request, &metrics);
            // Paced by what is really sent, so a request for bytes that are refused costs
            // the others nothing.
            let wait = match (&pacer, &response) {
                (Some(pacer), Response::Chunk { data }) => pacer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .reserve(data.len(), std::time::Instant::now()),
                _ => std::time::Duration::ZERO,
            };
            let answered = (peer, id, channel, response, permit);
            if wait.is_zero() {
                let _ = done.send(answered);
            } else {
                runtime.spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = done.send(answered);
                });
            }
        });
    }

    /// Hands `response` to the behaviour; whether it took it (a `ResponseSent` or an
    /// `InboundFailure` for `id` then follows).
    pub(super) fn respond(
        &mut self,
        id: InboundRequestId,
        channel: ResponseChannel<Response>,
        response: Response,
    ) -> bool {
        // The asker may have gone; then no event comes for it, and its peer's turn passes now.
        let transfer = &mut self.swarm.behaviour_mut().transfer;
        if transfer.send_response(channel, response).is_ok() {
            self.unsent += 1;
            true
        } else {
            self.next_turn(id);
            false
        }
    }
}
