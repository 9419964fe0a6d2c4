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
        // Answered by the event loop itself; the same answer here.
        Request::Leaving => Response::Bye,
        Request::Chunk {
            fragment,
            offset,
            len,
            ..
        } => {
            // No more than a chunk of a manifest that lists the fragment: a peer cannot make
            // each of the node's serves read and hold the protocol's 4 MiB largest chunk.
            if let Some(most) = store.chunk_size_of(&fragment).filter(|most| len > *most) {
                return Response::error(
                    ErrorCode::BadRequest,
                    format!("{len} bytes asked; this fragment's chunks are at most {most}"),
                );
            }
            let data = match store.read_chunk(&fragment, offset, len) {
                Ok(data) => {
                    if store.fragment_size(&fragment) == Some(offset + u64::from(len)) {
                        metrics.fragment_served("swarm");
                    }
                    data
                }
                // Not held whole: a fragment this node is fetching serves its verified chunks.
                Err(StoreError::FragmentNotFound(_)) => match store
                    .partials()
                    .get(&fragment)
                    .and_then(|p| p.read_verified(offset, len))
                {
                    Some(Ok(data)) => data,
                    Some(Err(e)) => {
                        return internal(StoreError::Io {
                            op: "read a partial fragment",
                            path: fragment.to_string().into(),
                            source: e,
                        })
                    }
                    None => {
                        return Response::error(
                            ErrorCode::NotFound,
                            format!("no fragment {fragment}, or not that chunk yet"),
                        )
                    }
                },
                Err(e @ StoreError::OutOfRange { .. }) => {
                    return Response::error(ErrorCode::BadRequest, e.to_string())
                }
                Err(e) => return internal(e),
            };
            debug!(fragment = %fragment.short(), offset, len, "served chunk");
            metrics.bytes(TRANSFER, Direction::Sent, data.len());
            metrics.chunks_served.inc();
            Response::Chunk {
                data: ByteBuf::from(data),
            }
        }
    }
}

fn internal(e: StoreError) -> Response {
    tracing::warn!(error = %e, "store failed while serving");
    Response::error(ErrorCode::Internal, "the store failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidswarm_proto::Hash;

    fn chunk(fragment: Hash, offset: u64, len: u32) -> Request {
        Request::Chunk {
            fragment,
            offset,
            len,
            may_decline: false,
        }
    }

    #[test]
    fn a_fragment_being_fetched_serves_its_verified_chunks_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let metrics = Metrics::new(prometheus_client::registry::Registry::default());
        let peer = PeerId::random();
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let hash = Hash::of(&data);
        let cs = 16_384;
        let writer = store.begin_fragment(hash, data.len() as u64, cs).unwrap();
        // Chunk 1 written and verified; chunk 0 written but not (yet) verified.
        writer.write_at(0, &data[..cs as usize]).unwrap();
        writer.write_at(16_384, &data[16_384..32_768]).unwrap();
        writer.chunk_verified(1).unwrap();
        match answer(&store, &peer, chunk(hash, 16_384, cs), &metrics) {
            Response::Chunk { data: got } => assert_eq!(got.as_slice(), &data[16_384..32_768]),
            other => panic!("expected the chunk, got {other:?}"),
        }
        for (offset, len, why) in [
            (0, cs, "not verified"),
            (16_384, 100, "not a whole chunk"),
            (32_768, 40_000 - 32_768, "not written"),
        ] {
            match answer(&store, &peer, chunk(hash, offset, len), &metrics) {
                Response::Error {
                    code: ErrorCode::NotFound,
                    ..
                } => {}
                other => panic!("{why}: expected NotFound, got {other:?}"),
            }
        }
        // A fetch that stops leaves the fragment at rest: its verified chunks are still served.
        drop(writer);
        assert!(store.partials().arriving(&hash).is_none());
        match answer(&store, &peer, chunk(hash, 16_384, cs), &metrics) {
            Response::Chunk { data: got } => assert_eq!(got.as_slice(), &data[16_384..32_768]),
            other => panic!("expected the chunk from the fragment at rest, got {other:?}"),
        }
        // Once it is gone (collected) nothing of it is served.
        store
            .partials()
            .end(&hash, crate::store::partial::End::Abandoned);
        assert!(matches!(
            answer(&store, &peer, chunk(hash, 16_384, cs), &metrics),
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ));
    }
}
