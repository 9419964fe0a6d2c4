//! Framing of `/vidswarm/fragment/1`: each direction of a stream carries one CBOR message and is
//! then closed. Reads stop at the protocol's hard limit, so a peer cannot make us buffer more than
//! one largest message (see `vidswarm_proto::wire`).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use vidswarm_proto::wire::{self, Request, Response, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use vidswarm_proto::DEFAULT_CHUNK_SIZE;

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
        let bytes = read_bounded(io, MAX_REQUEST_BYTES, 256).await?;
        Request::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        // Sized for one default chunk plus framing, so the common answer needs no regrowth.
        let expected = DEFAULT_CHUNK_SIZE as usize + 64;
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES, expected).await?;
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

async fn read_bounded<T: AsyncRead + Unpin>(
    io: &mut T,
    limit: usize,
    expected: usize,
) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(expected.min(limit) + 1);
    io.take(limit as u64 + 1).read_to_end(&mut bytes).await?;
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
