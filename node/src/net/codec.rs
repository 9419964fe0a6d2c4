//! Framing of `/vidswarm/fragment/1`: each direction of a stream carries one CBOR message and is
//! then closed. Reads stop at the protocol's hard limit, so a peer cannot make us buffer more than
//! one largest message (see `vidswarm_proto::wire`).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use vidswarm_proto::wire::{self, Request, Response, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use vidswarm_proto::DEFAULT_CHUNK_SIZE;

/// First room for a response that is not a chunk (an error, a manifest); it grows as needed.
const OTHER_RESPONSE: usize = 4096;
/// The most a response's declared length reserves before its bytes arrive.
const MAX_BELIEVED: usize = DEFAULT_CHUNK_SIZE as usize + 64;

#[derive(Debug, Clone, Copy, Default)]
pub struct TransferCodec;

impl request_response::Codec for TransferCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_REQUEST_BYTES, Vec::with_capacity(256)).await?;
        Request::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        // The head first: a chunk response declares its length there, so its buffer is made
        // once, at its size, when its bytes begin to arrive, and not up front for each request
        // that waits its turn at the peer (read buffers are zero-filled, so resident at once).
        let mut head = Vec::with_capacity(wire::RESPONSE_HEAD);
        (&mut *io)
            .take(wire::RESPONSE_HEAD as u64)
            .read_to_end(&mut head)
            .await?;
        // Room for the end-of-stream read too, so an exact fit is not regrown. What a peer
        // declares is believed up to one default chunk: beyond, the buffer grows only as the
        // bytes come, so a 16-byte head cannot make this node hold megabytes.
        let room = Response::encoded_len(&head).map_or(OTHER_RESPONSE, |len| len + 1);
        let mut bytes = Vec::with_capacity(room.min(MAX_BELIEVED));
        bytes.extend_from_slice(&head);
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES, bytes).await?;
        Response::decode_owned(bytes).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&wire::encode(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // A chunk goes out as a short header and then its own buffer: no copy of the data.
        let (head, data) = res.encode_parts();
        io.write_all(&head).await?;
        if let Some(data) = data {
            io.write_all(&data).await?;
        }
        io.close().await
    }
}

/// Reads the rest of the stream after what `bytes` holds, up to `limit` bytes in all.
async fn read_bounded<T: AsyncRead + Unpin>(
    io: &mut T,
    limit: usize,
    mut bytes: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let left = (limit + 1).saturating_sub(bytes.len());
    io.take(left as u64).read_to_end(&mut bytes).await?;
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message exceeds the {limit}-byte limit"),
        ));
    }
    Ok(bytes)
}

fn invalid(e: wire::WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;
    use serde_bytes::ByteBuf;
    use vidswarm_proto::wire::ErrorCode;

    fn read(bytes: Vec<u8>) -> io::Result<Response> {
        let protocol = StreamProtocol::new(wire::TRANSFER_PROTOCOL);
        block_on(TransferCodec.read_response(&protocol, &mut Cursor::new(bytes)))
    }

    #[test]
    fn responses_of_every_kind_and_size_read_back_whole() {
        for len in [0, 1, 2, 23, 24, 255, 256, 65_535, 65_536, 262_144, 1 << 22] {
            let chunk = Response::Chunk {
                data: ByteBuf::from(vec![7u8; len]),
            };
            assert_eq!(read(wire::encode(&chunk)).unwrap(), chunk, "{len} bytes");
        }
        let error = Response::error(ErrorCode::Busy, "later");
        assert_eq!(read(wire::encode(&error)).unwrap(), error);
        assert_eq!(read(wire::encode(&Response::Bye)).unwrap(), Response::Bye);
    }

    #[test]
    fn a_response_that_lies_about_its_length_or_is_too_long_is_refused() {
        let mut short = wire::encode(&Response::Chunk {
            data: ByteBuf::from(vec![1u8; 1000]),
        });
        short.truncate(500);
        assert!(read(short).is_err());
        // Declares 4 GiB, sends 10 bytes.
        let mut huge = b"\xa1\x65Chunk\xa1\x64data\x5a\xff\xff\xff\xff".to_vec();
        huge.extend([0u8; 10]);
        assert!(read(huge).is_err());
        let too_long = wire::encode(&Response::Chunk {
            data: ByteBuf::from(vec![0u8; MAX_RESPONSE_BYTES]),
        });
        assert!(read(too_long).is_err());
    }
}
