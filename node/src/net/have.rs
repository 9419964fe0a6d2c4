//! Progress straight to each connected peer ([`HAVE_PROTOCOL`], BitTorrent's HAVE): after a
//! fetch's first progress (gossip, so peers fetching the same video that are not connected yet
//! learn of it), its chunk bitmaps go over one long-lived stream to each connected peer. The
//! connection authenticates the sender, so nothing is signed, forwarded or received twice. By
//! gossip, each copy of each progress message cost its receiver a signature check, and the
//! copies grew with the square of the swarm (docs/performance.md, "32 hosts").
//!
//! Frames: a big-endian `u32` length, then a progress-only `Announcement` in CBOR, at most
//! [`MAX_ANNOUNCEMENT_BYTES`]. Each carries full bitmaps, so a message dropped because a peer's
//! queue is full is superseded by the next one.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::future::{self, BoxFuture};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{AlreadyRegistered, Control, OpenStreamError};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::debug;
use vidswarm_proto::wire::{HAVE_PROTOCOL, MAX_ANNOUNCEMENT_BYTES};

pub(super) const PROTOCOL: StreamProtocol = StreamProtocol::new(HAVE_PROTOCOL);
/// Messages waiting per peer (while its stream opens, or while it reads slowly). Beyond, the
/// newest is dropped: the next one carries everything it said.
const QUEUE: usize = 4;
/// Messages from all peers waiting for the event loop. A reader waits when it is full, so a
/// peer that sends faster than the loop handles is slowed by its stream's flow control.
const INBOX: usize = 256;
/// The most a frame's declared length reserves before its bytes arrive: a peer that declares a
/// largest frame and sends nothing holds no more than this of ours.
const MAX_BELIEVED: usize = 4096;

#[derive(Debug)]
pub(super) enum HaveEvent {
    /// A frame from `peer`, not decoded yet.
    Message { peer: PeerId, bytes: Vec<u8> },
    /// `peer` does not speak the protocol (an older node): it is told progress by gossip.
    Unsupported { peer: PeerId },
    /// `peer` sent a frame it may not: its stream is dropped.
    Invalid { peer: PeerId, reason: String },
}

/// The event loop's side of the progress streams.
pub(super) struct ProgressStreams {
    pub out: Outgoing,
    /// What peers sent on their streams.
    pub inbox: mpsc::Receiver<HaveEvent>,
    /// Connected peers without the protocol: while there are any, progress goes by gossip too.
    pub by_gossip: HashSet<PeerId>,
}

impl ProgressStreams {
    /// Starts accepting peers' progress streams.
    pub(super) fn start(mut control: Control) -> Result<Self, AlreadyRegistered> {
        let (events, inbox) = mpsc::channel(INBOX);
        let incoming = control.accept(PROTOCOL)?;
        tokio::spawn(accept(incoming, events.clone()));
        Ok(Self {
            out: Outgoing {
                control,
                events,
                writers: HashMap::new(),
            },
            inbox,
            by_gossip: HashSet::new(),
        })
    }
}

/// The sending side: one writer task per connected peer, each with its own small queue.
pub(super) struct Outgoing {
    control: Control,
    events: mpsc::Sender<HaveEvent>,
    writers: HashMap<PeerId, mpsc::Sender<Arc<[u8]>>>,
}

impl Outgoing {
    /// Opens `peer`'s stream (in the background); what is sent meanwhile waits in its queue.
    /// Called only while `peer` is connected, from the event loop.
    pub(super) fn connected(&mut self, peer: PeerId) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let open = begin_open(self.control.clone(), peer);
        tokio::spawn(write(open, peer, rx, self.events.clone()));
        self.writers.insert(peer, tx);
    }

    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
    }

    /// Queues `frame` for every connected peer and says for how many. A peer whose stream broke
    /// (its connection closed while another stays) gets a new one, with this frame, if it is
    /// still connected: opening a stream to a peer that is not would dial it.
    pub(super) fn send(&mut self, frame: &Arc<[u8]>, connected: impl Fn(&PeerId) -> bool) -> usize {
        let mut queued = 0;
        let mut broken = Vec::new();
        for (peer, tx) in &self.writers {
            match tx.try_send(Arc::clone(frame)) {
                Ok(()) => queued += 1,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Closed(_)) => broken.push(*peer),
            }
        }
        for peer in broken {
            if !connected(&peer) {
                self.writers.remove(&peer);
                continue;
            }
            self.connected(peer);
            if let Some(tx) = self.writers.get(&peer) {
                queued += usize::from(tx.try_send(Arc::clone(frame)).is_ok());
            }
        }
        queued
    }
}

type Opening = BoxFuture<'static, Result<Stream, OpenStreamError>>;

/// Starts opening `peer`'s stream now, on the caller's task. `open_stream` picks a connection
/// (or, with none, DIALS the peer) on its first poll, from the connections the swarm's poll has
/// recorded. Polled first here, on the event loop that drives the swarm and knows `peer` is
/// connected, it cannot see a connection that closed meanwhile and dial a peer that left; a
/// writer task's first poll could come after the close.
fn begin_open(mut control: Control, peer: PeerId) -> Opening {
    let mut open: Opening = async move { control.open_stream(peer, PROTOCOL).await }.boxed();
    match open.poll_unpin(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => future::ready(result).boxed(),
        Poll::Pending => open,
    }
}

async fn write(
    open: Opening,
    peer: PeerId,
    mut queue: mpsc::Receiver<Arc<[u8]>>,
    events: mpsc::Sender<HaveEvent>,
) {
    let mut stream = match open.await {
        Ok(stream) => stream,
        Err(OpenStreamError::UnsupportedProtocol(_)) => {
            let _ = events.send(HaveEvent::Unsupported { peer }).await;
            // Kept open (and drained) until the peer disconnects, so it is not asked again.
            while queue.recv().await.is_some() {}
            return;
        }
        Err(e) => {
            debug!(%peer, error = %e, "cannot open the progress stream");
            return;
        }
    };
    // Progress alone is no reason to keep a connection open.
    stream.ignore_for_keep_alive();
    while let Some(frame) = queue.recv().await {
        if let Err(e) = write_frame(&mut stream, &frame).await {
            debug!(%peer, error = %e, "progress stream closed");
            return;
        }
    }
    let _ = stream.close().await;
}

/// Reads every peer's progress stream, one stream per peer: a newer one replaces the older.
async fn accept(mut incoming: libp2p_stream::IncomingStreams, events: mpsc::Sender<HaveEvent>) {
    let mut readers: HashMap<PeerId, tokio::task::AbortHandle> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        readers.retain(|_, reader| !reader.is_finished());
        let reader = tokio::spawn(read(peer, stream, events.clone()));
        if let Some(older) = readers.insert(peer, reader.abort_handle()) {
            older.abort();
        }
    }
}

async fn read(peer: PeerId, mut stream: Stream, events: mpsc::Sender<HaveEvent>) {
    stream.ignore_for_keep_alive();
    loop {
        let event = match read_frame(&mut stream).await {
            Ok(Some(bytes)) => HaveEvent::Message { peer, bytes },
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => HaveEvent::Invalid {
                peer,
                reason: e.to_string(),
            },
            Err(e) => {
                debug!(%peer, error = %e, "progress stream ended");
                return;
            }
        };
        let last = matches!(event, HaveEvent::Invalid { .. });
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

pub(super) async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.flush().await
}

/// The next frame, or `None` when the stream ends between frames.
pub(super) async fn read_frame<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ANNOUNCEMENT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte progress frame is over the {MAX_ANNOUNCEMENT_BYTES}-byte limit"),
        ));
    }
    let mut bytes = Vec::with_capacity(len.min(MAX_BELIEVED));
    io.take(len as u64).read_to_end(&mut bytes).await?;
    if bytes.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn frames_read_back_as_written_and_end_between_frames() {
        let mut out = Vec::new();
        write_frame(&mut out, b"one").await.unwrap();
        write_frame(&mut out, b"").await.unwrap();
        write_frame(&mut out, &[7; 1000]).await.unwrap();
        let mut io = Cursor::new(out);
        assert_eq!(read_frame(&mut io).await.unwrap().unwrap(), b"one");
        assert_eq!(read_frame(&mut io).await.unwrap().unwrap(), b"");
        assert_eq!(read_frame(&mut io).await.unwrap().unwrap(), vec![7; 1000]);
        assert!(read_frame(&mut io).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_or_cut_frame_is_an_error() {
        let over = (MAX_ANNOUNCEMENT_BYTES as u32 + 1).to_be_bytes();
        let err = read_frame(&mut Cursor::new(over.to_vec()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Declares 100 bytes, sends 3: neither a frame nor the end between frames.
        let mut cut = 100u32.to_be_bytes().to_vec();
        cut.extend_from_slice(b"abc");
        let err = read_frame(&mut Cursor::new(cut)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // A stream cut inside a length reads as its end: no frame of it had begun.
        let err = read_frame(&mut Cursor::new(vec![0, 0])).await;
        assert!(matches!(err, Ok(None)), "{err:?}");
    }
}
