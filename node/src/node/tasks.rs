//! The node's own tasks. Their inputs are lossless: the swarm's inbox (`control.rs`), timers and
//! direct queries; none of them reads the lossy event stream to decide anything. Each ends when
//! the service stops.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::NodeError;
use crate::events::NodeEvent;
use crate::net::{self, Client};
use crate::service::Service;
use crate::store::NamedEntry;

/// Waits until the node listens on `expected` addresses. The event stream only wakes it: after
/// any event, or a lag, it asks the swarm again.
pub(super) async fn wait_for_listen_addrs(
    client: &Client,
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    expected: usize,
) -> Result<Vec<Multiaddr>, NodeError> {
    const LIMIT: Duration = Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let addrs = client.listen_addrs().await?;
        if addrs.len() >= expected.max(1) {
            return Ok(addrs);
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => return Err(NodeError::Net(net::NetError::Stopped)),
            Err(_) => return Err(NodeError::NoListenAddr(LIMIT)),
        }
    }
}

/// Announces everything held: at start, every `every`, and soon after a peer subscribes (so a
/// node that joins late learns what exists without waiting for the next round). Subscriptions
/// within [`ANNOUNCE_GAP`] of the last announcement are served by one just after the gap, never
/// dropped: a peer that joined just after a round would otherwise wait a whole `every`.
pub(super) async fn announcer(service: Service, every: Duration) {
    let inbox = service.client().inbox();
    let stop = service.stopping().clone();
    let mut tick = tokio::time::interval(every);
    let mut rounds = Rounds::default();
    let mut deferred: Option<tokio::time::Instant> = None;
    let mut first = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deferred.unwrap_or_else(tokio::time::Instant::now)), if deferred.is_some() => {}
            _ = inbox.next_subscribed() => {
                if let Some(due) = rounds.subscribed(tokio::time::Instant::now()) {
                    deferred = Some(due);
                    continue;
                }
            }
            _ = stop.cancelled() => return,
        }
        rounds.round(tokio::time::Instant::now());
        deferred = None;
        for m in service.store().manifests() {
            // Provide once at start; the DHT re-provides on its own schedule after that.
            let provide = first && service.fetch_options().provide;
            if let Err(e) = service.announce(&m, provide).await {
                debug!(error = %e, "announcement failed");
            }
        }
        first = false;
    }
}

/// Collects the store's garbage and keeps it within its budget every `every` (`Node::start`
/// has done it once already).
pub(super) async fn tidier(service: Service, every: Duration) {
    let stop = service.stopping().clone();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = service.tidy().await {
            warn!(error = %e, "cannot tidy the store");
        }
    }
}

/// When a subscription is answered with a round of announcements.
#[derive(Debug, Default)]
struct Rounds {
    /// The last round that may have reached a subscribed peer.
    last: Option<tokio::time::Instant>,
    heard_a_subscriber: bool,
}

impl Rounds {
    /// A peer subscribed: `None` to announce now, or when to. A burst of subscriptions (a swarm
    /// starting) is one round, [`ANNOUNCE_GAP`] after the last.
    fn subscribed(&mut self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.heard_a_subscriber = true;
        self.last.map(|t| t + ANNOUNCE_GAP).filter(|due| *due > now)
    }

    /// A round of announcements went out. Rounds before any peer subscribed reached nobody, so
    /// they hold nothing back: a swarm started all at once hears at once.
    fn round(&mut self, now: tokio::time::Instant) {
        self.last = self.heard_a_subscriber.then_some(now);
    }
}

/// The least time between two announcements of everything held.
const ANNOUNCE_GAP: Duration = Duration::from_millis(250);

/// What peers announce: the names of loose uploads go into the default collection, and (with
/// auto-fetch) what this node lacks is fetched, one fetch per video at a time.
pub(super) async fn on_announced(service: Service, auto_fetch: bool) {
    let inbox = service.client().inbox();
    let stop = service.stopping().clone();
    loop {
        let batch = tokio::select! {
            batch = inbox.next_announced() => batch,
            _ = stop.cancelled() => return,
        };
        for (video, named) in batch {
            if let Some(named) = named {
                let entry = NamedEntry {
                    uploaded_at_ms: named.uploaded_at_ms,
                    video,
                };
                let name = named.name.clone();
                match crate::service::checked_signature(&named, &video) {
                    Err(why) => {
                        warn!(name = %named.name, video = %video.short(), why, "ignored a name entry")
                    }
                    Ok(signed) => match service
                        .store()
                        .call(move |s| {
                            s.observe_name(&name, entry, signed, crate::service::now_ms())
                        })
                        .await
                    {
                        Ok(true) => {
                            info!(name = %named.name, video = %video.short(), "learned a name")
                        }
                        Ok(false) => {}
                        Err(e) => warn!(error = %e, "cannot record a name"),
                    },
                }
            }
            if auto_fetch {
                service.fetch_announced(video).await;
            }
        }
    }
}

/// How a dial went: `None` while it runs, else the peer it reached or why not.
type DialOutcome = Option<Result<PeerId, String>>;

/// How dialing each bootstrap address went, as it goes.
#[derive(Clone, Default)]
pub(super) struct Bootstrap {
    dials: Arc<Mutex<Vec<(Multiaddr, DialOutcome)>>>,
}

impl Bootstrap {
    pub fn new(addrs: &[Multiaddr]) -> Self {
        let dials = addrs.iter().map(|a| (a.clone(), None)).collect();
        Self {
            dials: Arc::new(Mutex::new(dials)),
        }
    }

    /// Dials every address at once and records each outcome (a silent one stays pending).
    pub async fn dial_all(self, client: Client) {
        let addrs: Vec<Multiaddr> = self.lock().iter().map(|(a, _)| a.clone()).collect();
        let dials = addrs.into_iter().map(|addr| {
            let (client, this) = (client.clone(), self.clone());
            async move {
                let result = client.dial(addr.clone()).await.map_err(|e| match e {
                    net::NetError::Dial { reason, .. } => reason,
                    other => other.to_string(),
                });
                if let Err(reason) = &result {
                    warn!(%addr, %reason, "cannot reach a bootstrap address");
                }
                if let Some(entry) = this.lock().iter_mut().find(|(a, _)| *a == addr) {
                    entry.1 = Some(result);
                }
            }
        });
        futures::future::join_all(dials).await;
    }

    /// Records that `addr` reached `peer` (a later re-dial).
    pub fn reached(&self, addr: &Multiaddr, peer: PeerId) {
        if let Some(entry) = self.lock().iter_mut().find(|(a, _)| a == addr) {
            entry.1 = Some(Ok(peer));
        }
    }

    /// The peers the bootstrap addresses led to.
    pub fn peers(&self) -> Vec<PeerId> {
        self.lock()
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref()?.as_ref().ok().copied())
            .collect()
    }

    /// Addresses that failed, or have not answered yet, with why.
    pub fn unreachable(&self) -> Vec<(Multiaddr, String)> {
        self.lock()
            .iter()
            .filter_map(|(addr, outcome)| match outcome {
                Some(Ok(_)) => None,
                Some(Err(reason)) => Some((addr.clone(), reason.clone())),
                None => Some((addr.clone(), "no answer yet".to_owned())),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Multiaddr, DialOutcome)>> {
        self.dials.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Dials the bootstrap addresses again whenever the node is connected to none of the peers they
/// led to: a node started before its bootstrap node, or cut off from the swarm (alone, or on an
/// island with other cut-off nodes), joins as soon as one answers, with no restart.
pub(super) async fn rejoin(
    client: Client,
    bootstrap: Bootstrap,
    addrs: Vec<Multiaddr>,
    stop: CancellationToken,
) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
        let known = bootstrap.peers();
        let joined = known.iter().any(|p| client.peers().is_connected(p))
            || (known.is_empty() && !client.peers().connected_now().is_empty());
        if joined {
            continue;
        }
        debug!("not connected through any bootstrap address; dialing them again");
        // All at once, each bounded: an address that never answers holds up no other.
        let dials = addrs.iter().map(|addr| {
            let (client, bootstrap) = (client.clone(), bootstrap.clone());
            async move {
                if let Ok(Ok(peer)) = tokio::time::timeout(EVERY, client.dial(addr.clone())).await {
                    bootstrap.reached(addr, peer);
                }
            }
        });
        futures::future::join_all(dials).await;
        let _ = client.bootstrap().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_answered_at_once_unless_a_round_just_reached_a_subscriber() {
        let mut r = Rounds::default();
        let t = tokio::time::Instant::now();
        r.round(t); // at start: nobody subscribed yet
        assert_eq!(
            r.subscribed(t + ANNOUNCE_GAP / 5),
            None,
            "that round reached nobody"
        );
        r.round(t + ANNOUNCE_GAP / 5);
        let soon = t + ANNOUNCE_GAP / 2;
        assert_eq!(
            r.subscribed(soon),
            Some(t + ANNOUNCE_GAP / 5 + ANNOUNCE_GAP),
            "a burst of joins is one round"
        );
        assert_eq!(r.subscribed(t + ANNOUNCE_GAP * 2), None, "past the gap");
    }
}
