//! `Client`: the cloneable handle everything else uses to talk to the swarm. Each method sends a
//! `Command` to the event loop and awaits the reply on a oneshot.

use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use vidswarm_proto::wire::{Announcement, Request, Response};

use crate::availability::Availability;
use crate::events::{EventSender, NodeEvent};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the node's network task has stopped")]
    Stopped,
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("{peer} is not connected (it is being dialed unless it failed recently)")]
    NotConnected { peer: PeerId },
    #[error("cannot build the swarm's {part}: {reason}")]
    Build { part: &'static str, reason: String },
}

#[derive(Debug)]
pub(crate) enum Command {
    Listen {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Advertised {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    PeerLinks {
        reply: oneshot::Sender<Vec<super::PeerLink>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Provide {
        keys: Vec<RecordKey>,
    },
    StopProviding {
        keys: Vec<RecordKey>,
    },
    Providers {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
    Announce {
        announcement: Announcement,
    },
    /// A fetch's progress, to each connected peer on its progress stream (`have.rs`).
    Progress {
        announcement: Announcement,
    },
    /// Dial `peer` in the background (if not connected, not being dialed, not backed off).
    Connect {
        peer: PeerId,
    },
    Bootstrap,
    /// Stop taking requests, finish the ones being served (at most `within`), then stop the loop.
    Shutdown {
        within: std::time::Duration,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) peer_id: PeerId,
    pub(crate) availability: Availability,
    pub(crate) events: EventSender,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(crate) inbox: std::sync::Arc<crate::control::Inbox>,
    pub(crate) peers: super::Peers,
}

impl Client {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's Prometheus metrics (libp2p's and its own).
    pub fn metrics(&self) -> &std::sync::Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Who holds what, as heard from announcements.
    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// What the swarm asks of the node's own tasks (never dropped, unlike [`Client::subscribe`]).
    pub(crate) fn inbox(&self) -> &crate::control::Inbox {
        &self.inbox
    }

    pub(crate) fn emit(&self, event: NodeEvent) {
        crate::events::emit(&self.events, event);
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    async fn tell(&self, command: Command) -> Result<(), NetError> {
        self.tx.send(command).await.map_err(|_| NetError::Stopped)
    }

    pub async fn listen(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Listen { addr, reply }).await?
    }

    /// Dials `addr`; answers with the peer once connected, or why not.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// The addresses peers are told to reach this node at (`net/advertise.rs`), each ending in
    /// `/p2p/<peer id>`.
    pub async fn advertised_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::Advertised { reply }).await
    }

    /// Each connected peer's connection, round trip and bytes exchanged.
    pub async fn peer_links(&self) -> Result<Vec<super::PeerLink>, NetError> {
        self.ask(|reply| Command::PeerLinks { reply }).await
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Starts providing `keys` in the DHT (and re-providing them on schedule).
    pub async fn provide(&self, keys: Vec<RecordKey>) -> Result<(), NetError> {
        self.tell(Command::Provide { keys }).await
    }

    /// Stops providing `keys` (their records at other peers expire on their own: the DHT has
    /// no way to withdraw one).
    pub async fn stop_providing(&self, keys: Vec<RecordKey>) -> Result<(), NetError> {
        self.tell(Command::StopProviding { keys }).await
    }

    /// The peers the DHT knows to provide `key` (never this node).
    pub async fn providers(&self, key: RecordKey) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::Providers { key, reply }).await
    }

    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetError> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Publishes on the announcement topic; a swarm with nobody subscribed yet is not an error
    /// (the periodic re-announcement covers it).
    pub async fn announce(&self, announcement: Announcement) -> Result<(), NetError> {
        self.tell(Command::Announce { announcement }).await
    }

    /// Tells each connected peer directly which chunks this node's fetches have verified (a
    /// progress-only announcement); peers that predate the progress stream hear it by gossip.
    pub async fn progress(&self, announcement: Announcement) -> Result<(), NetError> {
        self.tell(Command::Progress { announcement }).await
    }

    /// Who is connected and who failed recently (shared with the event loop).
    pub fn peers(&self) -> &super::Peers {
        &self.peers
    }

    /// Dials `peer` in the background; it gets work once connected (see `peers.rs`).
    pub async fn connect(&self, peer: PeerId) -> Result<(), NetError> {
        self.tell(Command::Connect { peer }).await
    }

    /// Like [`Client::connect`] from sync code: a hint, dropped if the loop is busy (the next
    /// round asks again).
    pub(crate) fn connect_soon(&self, peer: PeerId) {
        let _ = self.tx.try_send(Command::Connect { peer });
    }

    /// Refreshes the DHT routing table from the peers known so far.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.tell(Command::Bootstrap).await
    }

    /// Stops the swarm: requests being served are answered first (for at most `within`).
    pub async fn shutdown(&self, within: std::time::Duration) -> Result<(), NetError> {
        self.ask(|reply| Command::Shutdown { within, reply }).await
    }

    /// A client with no swarm behind it, for tests of what sits above the swarm: it knows no
    /// peers and no providers, fails requests, and hands each announcement it is given to the
    /// returned receiver. Spawns its stand-in loop on the current runtime.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn offline() -> (Self, mpsc::UnboundedReceiver<Announcement>) {
        let (tx, mut commands) = mpsc::channel(64);
        let (announced, rx) = mpsc::unbounded_channel();
        let peer_id = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        tokio::spawn(async move {
            while let Some(command) = commands.recv().await {
                match command {
                    Command::Announce { announcement } | Command::Progress { announcement } => {
                        let _ = announced.send(announcement);
                    }
                    Command::ConnectedPeers { reply } | Command::Providers { reply, .. } => {
                        let _ = reply.send(vec![]);
                    }
                    Command::ListenAddrs { reply } | Command::Advertised { reply } => {
                        let _ = reply.send(vec![]);
                    }
                    Command::PeerLinks { reply } => {
                        let _ = reply.send(vec![]);
                    }
                    Command::Request { peer, reply, .. } => {
                        let _ = reply.send(Err(NetError::Request {
                            peer,
                            reason: "offline".into(),
                        }));
                    }
                    Command::Listen { reply, .. } => {
                        let _ = reply.send(Ok(()));
                    }
                    Command::Dial { addr, reply } => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr,
                            reason: "offline".into(),
                        }));
                    }
                    Command::Shutdown { reply, .. } => {
                        let _ = reply.send(());
                        return;
                    }
                    Command::Provide { .. }
                    | Command::StopProviding { .. }
                    | Command::Bootstrap
                    | Command::Connect { .. } => {}
                }
            }
        });
        let client = Self {
            tx,
            peer_id,
            availability: Availability::default(),
            events: crate::events::channel(crate::events::EVENT_BUFFER),
            metrics: crate::metrics::Metrics::new(prometheus_client::registry::Registry::default()),
            inbox: Default::default(),
            peers: Default::default(),
        };
        (client, rx)
    }
}
