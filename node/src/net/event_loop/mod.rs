//! The event loop: the one task that owns the `Swarm`. It `select!`s over swarm events, commands
//! from `Client`s, and responses finished by serving tasks; it never blocks (store reads run on
//! the blocking pool and come back as messages). `gossip.rs`: the announcement topic;
//! `transfer.rs`: the transfer protocol, both ways; `progress.rs`: the progress streams.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use libp2p::kad::{self, QueryId};
use libp2p::metrics::Recorder;
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{gossipsub, identify, multiaddr::Protocol, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};
use vidswarm_proto::wire::{self, Response};

use super::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use super::client::{Command, NetError};
use super::have::ProgressStreams;
use crate::availability::Availability;
use crate::control::Inbox;
use crate::events::{emit, EventSender, NodeEvent};
use crate::metrics::Metrics;
use crate::store::Store;

use super::MAX_SERVING;

/// A request served on the blocking pool: its peer, id, channel and answer, and the serving
/// permit it holds until the answer is written out.
type Answered = (
    PeerId,
    InboundRequestId,
    ResponseChannel<Response>,
    Response,
    OwnedSemaphorePermit,
);

mod addresses;
pub(super) mod dialing;
mod gossip;
pub(super) mod links;
mod pacer;
mod progress;
pub(crate) mod spread;
mod transfer;
mod uploads;

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    store: Store,
    commands: mpsc::Receiver<Command>,
    events: EventSender,
    availability: Availability,
    topic: gossipsub::IdentTopic,
    listen_addrs: Vec<Multiaddr>,
    /// Whether this loop picks which listen addresses to advertise (`addresses.rs`): not when
    /// the operator named the external addresses.
    advertise_listen: bool,
    /// When the interfaces' state is next looked at (`addresses.rs`).
    recheck_interfaces: tokio::time::Instant,
    pending_requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, NetError>>>,
    pending_providers: HashMap<QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NetError>>)>,
    /// Background dials of peers (`dialing.rs`) and when each counts as failed.
    dialing: HashMap<PeerId, tokio::time::Instant>,
    peers: super::Peers,
    serving: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    inbox: Arc<Inbox>,
    /// Set once asked to stop: the deadline for serves in flight, and whom to tell when done.
    stopping: Option<(tokio::time::Instant, oneshot::Sender<()>)>,
    /// A stopping loop that published goodbyes runs until its peers confirm that they arrived
    /// (`farewells`), or until then at the latest (`gossip.rs`).
    linger_until: Option<tokio::time::Instant>,
    goodbye_wait: std::time::Duration,
    /// The `Request::Leaving` sent to each connected peer once stopping, not yet answered.
    farewells: HashSet<OutboundRequestId>,
    /// Responses handed to the behaviour and not yet written out (or failed).
    unsent: usize,
    /// The serving permits of served answers not yet written out: a chunk stays counted against
    /// `MAX_SERVING` until its bytes left, so an asker that does not read cannot pile them up.
    sending: HashMap<InboundRequestId, OwnedSemaphorePermit>,
    responses_tx: mpsc::UnboundedSender<Answered>,
    responses_rx: mpsc::UnboundedReceiver<Answered>,
    /// Each peer's chunk requests, answered one at a time (`uploads.rs`).
    uploads: uploads::Uploads<InboundRequestId, (wire::Request, ResponseChannel<Response>)>,
    /// Each connected peer's connection, round trip and bytes (`links.rs`).
    links: HashMap<PeerId, links::PeerLink>,
    /// The chunks sent a moment ago, to spread new ones first (`spread.rs`).
    recently_sent: spread::RecentlySent,
    /// The upload rate limit, if any (`pacer.rs`); shared with the serving tasks.
    pacer: Option<Arc<std::sync::Mutex<pacer::Pacer>>>,
    /// Each connected peer's progress stream, both ways (`net/have.rs`, `progress.rs`).
    have: ProgressStreams,
}

impl EventLoop {
    /// `client` is the handle that will talk to this loop: the loop shares its event channel,
    /// availability table, metrics and inbox.
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        store: Store,
        commands: mpsc::Receiver<Command>,
        client: &super::Client,
        topic: gossipsub::IdentTopic,
        cfg: &super::NetConfig,
        have: ProgressStreams,
    ) -> Self {
        let (responses_tx, responses_rx) = mpsc::unbounded_channel();
        // A rate of 0 (`--max-upload-rate 0`) means no limit, as no option does.
        let pacer = cfg.max_upload_rate.filter(|&rate| rate > 0).map(|rate| {
            let pacer = pacer::Pacer::new(rate, std::time::Instant::now());
            Arc::new(std::sync::Mutex::new(pacer))
        });
        Self {
            swarm,
            store,
            commands,
            events: client.events.clone(),
            availability: client.availability.clone(),
            metrics: client.metrics.clone(),
            inbox: client.inbox.clone(),
            stopping: None,
            linger_until: None,
            goodbye_wait: cfg.goodbye_wait,
            farewells: HashSet::new(),
            unsent: 0,
            sending: HashMap::new(),
            topic,
            listen_addrs: Vec::new(),
            advertise_listen: cfg.external.is_empty(),
            recheck_interfaces: tokio::time::Instant::now(),
            pending_requests: HashMap::new(),
            pending_providers: HashMap::new(),
            pending_dials: HashMap::new(),
            dialing: HashMap::new(),
            peers: client.peers.clone(),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            responses_tx,
            responses_rx,
            links: HashMap::new(),
            recently_sent: spread::RecentlySent::default(),
            uploads: uploads::Uploads::default(),
            pacer,
            have,
        }
    }

    /// Runs until every `Client` is dropped, or until asked to stop and the serves in flight are
    /// answered (or their deadline passed).
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            if let Some((deadline, _)) = &self.stopping {
                let now = tokio::time::Instant::now();
                let idle = self.serving.available_permits() == MAX_SERVING
                    && self.responses_rx.is_empty()
                    && self.unsent == 0
                    && self.uploads.waiting() == 0
                    && (self.farewells.is_empty() || self.linger_until.is_none_or(|t| now >= t));
                if idle || now >= *deadline {
                    break;
                }
            }
            let deadline = self
                .stopping
                .as_ref()
                .map(|(d, _)| match self.linger_until {
                    Some(t) if !self.farewells.is_empty() => t.min(*d),
                    _ => *d,
                });
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(event) = self.have.inbox.recv() => self.on_have(event),
                Some((peer, id, channel, response, permit)) = self.responses_rx.recv() => {
                    if let Response::Chunk { data } = &response {
                        self.link_bytes(&peer, 0, data.len());
                    }
                    if self.respond(id, channel, response) {
                        self.sending.insert(id, permit);
                    }
                }
                _ = tick.tick() => {
                    self.availability.expire(std::time::Instant::now());
                    let keys = self.swarm.behaviour_mut().kad.store_mut().remote_keys();
                    self.metrics.dht_remote_keys.set(keys as i64);
                    self.expire_dials();
                    self.recheck_advertised();
                }
            }
        }
        if let Some((_, reply)) = self.stopping.take() {
            let busy = MAX_SERVING - self.serving.available_permits();
            if busy > 0 {
                warn!(busy, "stopping with requests still being served");
            }
            let _ = reply.send(());
        }
        debug!("event loop stopped");
    }

    fn local(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Listen { addr, reply } => {
                let result =
                    self.swarm
                        .listen_on(addr.clone())
                        .map(|_| ())
                        .map_err(|e| NetError::Listen {
                            addr,
                            reason: e.to_string(),
                        });
                let _ = reply.send(result);
            }
            Command::Dial { addr, reply } => {
                if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
                // Answered when the connection is up or the dial failed (not when it starts), so
                // a caller can say which address could not be reached and why.
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::ListenAddrs { reply } => {
                let local = self.local();
                let addrs = self
                    .listen_addrs
                    .iter()
                    .map(|a| a.clone().with(Protocol::P2p(local)))
                    .collect();
                let _ = reply.send(addrs);
            }
            Command::PeerLinks { reply } => {
                let _ = reply.send(self.links.values().cloned().collect());
            }
            Command::Advertised { reply } => {
                let _ = reply.send(self.advertised());
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Provide { keys } => {
                for key in keys {
                    if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                        warn!(error = %e, "cannot provide a key");
                    }
                }
            }
            Command::StopProviding { keys } => {
                for key in keys {
                    self.swarm.behaviour_mut().kad.stop_providing(&key);
                }
            }
            Command::Providers { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            // Work goes only to connected peers: a request to one that is not fails at once (and
            // starts a background dial), rather than waiting on a dial that may never finish.
            Command::Request { peer, reply, .. } if !self.swarm.is_connected(&peer) => {
                let _ = reply.send(Err(NetError::NotConnected { peer }));
                self.connect(peer);
            }
            Command::Connect { peer } => self.connect(peer),
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .transfer
                    .send_request(&peer, request);
                self.pending_requests.insert(id, reply);
            }
            Command::Announce { announcement } => self.publish(&announcement),
            Command::Progress { announcement } => self.send_progress(&announcement),
            Command::Bootstrap => {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            Command::Shutdown { within, reply } => {
                debug!("stopping: finishing the requests being served");
                self.stopping = Some((tokio::time::Instant::now() + within, reply));
                if self.linger_until.is_some() {
                    self.send_farewells();
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.libp2p.record(&event);
        if matches!(
            event,
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. }
        ) {
            let peers = self.swarm.connected_peers().count();
            self.metrics.peers.set(peers as i64);
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.on_new_listen_addr(address),
            SwarmEvent::ExpiredListenAddr { address, .. } => self.on_expired_listen_addr(&address),
            SwarmEvent::IncomingConnection { send_back_addr, .. } => {
                debug!(from = %send_back_addr, "incoming connection");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.on_connected(peer_id);
                self.link_up(peer_id, &endpoint);
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
                if num_established.get() == 1 {
                    debug!(peer = %peer_id, "connected");
                    self.have.out.connected(peer_id);
                    emit(&self.events, NodeEvent::PeerConnected { peer: peer_id });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                debug!(peer = %peer_id, "disconnected");
                self.peers.disconnected(&peer_id);
                self.link_down(&peer_id);
                self.availability.forget_peer(&peer_id);
                self.uploads.forget(&peer_id);
                self.recently_sent.forget(&peer_id);
                self.have.out.disconnected(&peer_id);
                self.have.by_gossip.remove(&peer_id);
                emit(&self.events, NodeEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(peer) = peer_id {
                    self.on_dial_failed(peer, &error);
                }
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr,
                        reason: dial_failure(&error),
                    }));
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match &event {
            BehaviourEvent::Identify(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Kad(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Gossipsub(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Ping(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Transfer(_) | BehaviourEvent::Have(()) => {}
            BehaviourEvent::Limits(never)
            | BehaviourEvent::Memory(never)
            | BehaviourEvent::Allowed(never) => match *never {},
        }
        match event {
            // Identify is how a peer's listen addresses reach the DHT routing table, so a node
            // that knows one bootstrap address learns of everyone else.
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) =>
            {
                self.set_addresses(peer_id, dialing::worth_dialing(info.listen_addrs));
            }
            BehaviourEvent::Kad(kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                    },
            }) => self.on_provider_record(record),
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => self.on_kad_progress(id, result, step.last),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, .. }) => {
                self.inbox.peer_subscribed();
                emit(&self.events, NodeEvent::PeerSubscribed { peer: peer_id });
            }
            BehaviourEvent::Transfer(event) => self.on_transfer(event),
            // A connection whose pings fail is dead (a partition, a peer that moved): close it,
            // so the peer is no longer given work and the node re-dials or rejoins. A ping that
            // cannot even open its stream is `Other`; a peer that does not speak ping is not dead.
            BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => self.link_rtt(&peer, rtt),
            BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result: Err(e),
            }) if !matches!(e, libp2p::ping::Failure::Unsupported) => {
                debug!(%peer, error = %e, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    fn on_kad_progress(&mut self, id: QueryId, result: kad::QueryResult, last: bool) {
        let kad::QueryResult::GetProviders(result) = result else {
            return;
        };
        let local = self.local();
        let mut finished = last;
        if let Some((found, _)) = self.pending_providers.get_mut(&id) {
            match result {
                Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                    found.extend(providers.into_iter().filter(|p| *p != local));
                    // The first answer is enough: the rest of the query would wait on peers
                    // that may be gone (a fetch asks again every few seconds anyway).
                    if !found.is_empty() {
                        finished = true;
                        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            query.finish();
                        }
                    }
                }
                Ok(_) => finished = true,
                Err(e) => {
                    debug!(error = %e, "provider lookup ended");
                    finished = true;
                }
            }
        }
        if finished {
            if let Some((found, reply)) = self.pending_providers.remove(&id) {
                let _ = reply.send(found.into_iter().collect());
            }
        }
    }
}

/// Why a dial failed, in a few words: the innermost cause of each address's failure ("Connection
/// refused (os error 111)"), not libp2p's nested wrappers.
fn dial_failure(error: &libp2p::swarm::DialError) -> String {
    use std::error::Error;
    let libp2p::swarm::DialError::Transport(attempts) = error else {
        return error.to_string();
    };
    let mut causes: Vec<String> = attempts
        .iter()
        .map(|(_, e)| {
            let mut cause: &dyn Error = e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        })
        .collect();
    causes.dedup();
    causes.join("; ")
}
