//! The transfer protocol in the loop: answers to our requests go back to their askers; requests
//! from peers are served on the blocking pool (at most `MAX_SERVING` at once, `Busy` beyond, and
//! none once the node is stopping), their responses sent when ready.

use libp2p::request_response::{self, ResponseChannel};
use libp2p::PeerId;
use tracing::debug;
use vidswarm_proto::wire::{self, Response};

use super::super::serve;
use super::EventLoop;
use crate::metrics::{Direction, TRANSFER};
use crate::net::NetError;

impl EventLoop {
    pub(super) fn on_transfer(&mut self, event: request_response::Event<wire::Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
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
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound request failed");
                self.unsent = self.unsent.saturating_sub(1);
            }
            request_response::Event::ResponseSent { .. } => {
                self.unsent = self.unsent.saturating_sub(1);
            }
        }
    }

    fn serve(&mut self, peer: PeerId, request: wire::Request, channel: ResponseChannel<Response>) {
        let permit = match &self.stopping {
            Some(_) => None,
            None => self.serving.clone().try_acquire_owned().ok(),
        };
        let Some(permit) = permit else {
            let busy = Response::error(wire::ErrorCode::Busy, "too many requests in flight");
            self.respond(channel, busy);
            return;
        };
        let store = self.store.clone();
        let done = self.responses_tx.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let response = serve::answer(&store, &peer, request, &metrics);
            drop(permit);
            let _ = done.send((peer, channel, response));
        });
    }

    pub(super) fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        // The asker may have gone; nothing to do about it.
        let transfer = &mut self.swarm.behaviour_mut().transfer;
        if transfer.send_response(channel, response).is_ok() {
            self.unsent += 1;
        }
    }
}
