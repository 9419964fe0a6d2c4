//! Answering transfer requests from the store. Runs on the blocking pool.

use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tracing::debug;
use vidswarm_proto::wire::{ErrorCode, Request, Response};

use crate::metrics::{Direction, Metrics, TRANSFER};
use crate::store::{Store, StoreError};

pub fn answer(store: &Store, peer: &PeerId, request: Request, metrics: &Metrics) -> Response {
    let _span = tracing::debug_span!("serve", %peer).entered();
    match request {
        Request::Manifest { video } => match store.manifest(&video) {
            Some(m) => Response::Manifest {
                json: ByteBuf::from(serde_json::to_vec(&*m).unwrap_or_default()),
            },
            None => Response::error(ErrorCode::NotFound, format!("no manifest {video}")),
        },
        Request::Chunk {
            fragment,
            offset,
            len,
        } => match store.read_chunk(&fragment, offset, len) {
            Ok(data) => {
                debug!(fragment = %fragment.short(), offset, len, "served chunk");
                metrics.bytes(TRANSFER, Direction::Sent, data.len());
                metrics.chunks_served.inc();
                let end = offset + u64::from(len);
                if store.fragment_size(&fragment) == Some(end) {
                    metrics.fragment_served("swarm");
                }
                Response::Chunk {
                    data: ByteBuf::from(data),
                }
            }
            Err(StoreError::FragmentNotFound(_)) => {
                Response::error(ErrorCode::NotFound, format!("no fragment {fragment}"))
            }
            Err(e @ StoreError::OutOfRange { .. }) => {
                Response::error(ErrorCode::BadRequest, e.to_string())
            }
            Err(e) => internal(e),
        },
    }
}

fn internal(e: StoreError) -> Response {
    tracing::warn!(error = %e, "store failed while serving");
    Response::error(ErrorCode::Internal, "the store failed")
}
