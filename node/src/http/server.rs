//! The HTTP server loop: axum's router on hyper's HTTP/1 connections, with the limits
//! `axum::serve` does not set. A client that connects and sends nothing, sends its headers a
//! byte at a time, or never reads what it asked for, holds one of `max_connections` slots for
//! at most a timeout; beyond the cap the listener waits, so the descriptors the swarm and the
//! store need are never the HTTP clients'. One client address holds at most `max_per_client`
//! of the slots (an IPv6 client its whole /64, which one subscriber usually has): a connection
//! beyond is closed at once, so one machine cannot make every other client wait.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::stall::StallGuard;

/// The server's limits on its clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; the listener stops accepting beyond.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) holds at once; one more is closed at once.
    pub max_per_client: usize,
    /// A request's headers must arrive within this of its first byte, or of the connection's
    /// opening, or of the previous response on a kept-alive connection.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long fails (its upload is discarded).
    pub body_timeout: Duration,
    /// A response that cannot be written for this long (the client reads nothing) ends its
    /// connection.
    pub send_timeout: Duration,
}

/// Enough for every tab of a few users, their SSE streams and the legacy clients; a small part
/// of the descriptors a node has (the swarm takes up to 512 connections, the store its files).
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// A quarter of the slots: a browser opens at most 6 connections to a host, so this is several
/// users' tabs behind one address (or one NAT), and three such addresses cannot fill the cap.
pub const DEFAULT_MAX_PER_CLIENT: usize = 32;
/// 10 s: far above a slow mobile link's round trips, short enough that a client that sends
/// nothing frees its slot quickly.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// 30 s without a byte of the body, as nginx's `client_body_timeout` (60 s) halved.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// 30 s without a written byte, as nginx's `send_timeout` (60 s) and far above any stall TCP
/// recovers from by itself.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_client: DEFAULT_MAX_PER_CLIENT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish (the caller bounds how long it waits for that).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Far above any descriptor limit, and within what `acquire_many` counts.
    let max = limits.max_connections.clamp(1, 1 << 20);
    let slots = Arc::new(Semaphore::new(max));
    let clients = Clients::default();
    // Dropped when shutdown starts: every connection then finishes its request and closes.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: not the server's
                    // end. Wait a moment rather than spin on an error that persists.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client) = clients.admit(peer.ip(), limits.max_per_client) else {
            tracing::debug!(%peer, "HTTP client holds too many connections: one more closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body_timeout = limits.body_timeout;
        let service = app.clone().map_request(move |request: Request<Incoming>| {
            request.map(|body| Body::new(TimeoutBody::new(body_timeout, body)))
        });
        let stop = stop_rx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let (_slot, _client) = (slot, client);
            serve_connection(stream, service, &limits, stop).await;
            tracing::trace!(%peer, "HTTP connection closed");
        });
    }
    drop(stop_tx);
    // Every slot back: every connection has finished.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// How many connections each client address holds.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection of a client: counted until dropped.
struct ClientSlot {
    clients: Clients,
    key: IpAddr,
}

impl Clients {
    fn admit(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: an IPv4 address as it is (also when mapped into
/// IPv6), an IPv6 address by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

async fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    service: S,
    limits: &ServerLimits,
    mut stop: watch::Receiver<()>,
) where
    S: tower::Service<Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io = TokioIo::new(StallGuard::new(stream, limits.send_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back_as_connections_close() {
        let clients = Clients::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| clients.admit(a, 3).unwrap()).collect();
        assert!(clients.admit(a, 3).is_none());
        assert!(clients.admit("192.0.2.2".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(clients.admit(a, 3).is_some());
        assert!(
            clients.0.lock().unwrap().len() <= 1,
            "closed clients are forgotten"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_as_ipv4() {
        let one = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let other = client_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(one, other);
        assert_ne!(one, client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            client_key("192.0.2.7".parse().unwrap())
        );
    }
}
