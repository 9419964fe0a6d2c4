//! `vidswarm node`: run one node until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use libp2p::Multiaddr;

use super::eventlog::{log_events, PeerNames};
use crate::node::{Node, NodeConfig};

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's data directory (fragments, manifests, identity key).
    #[arg(long, env = "VIDSWARM_DATA")]
    pub data: PathBuf,
    /// Address to listen on; repeat for several (default: TCP and QUIC on every interface, port 0).
    #[arg(long, env = "VIDSWARM_LISTEN", value_delimiter = ',')]
    pub listen: Vec<Multiaddr>,
    /// Address of a node to join through, e.g. /ip4/10.0.0.2/tcp/4001/p2p/12D3Koo... or
    /// /dns4/seed/tcp/4001; repeatable.
    #[arg(long, env = "VIDSWARM_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<Multiaddr>,
    /// An address other nodes can reach this one at (a public IP, a port forward, a DNS name);
    /// repeatable. When given, the node advertises only these, not its listen addresses.
    #[arg(long, env = "VIDSWARM_EXTERNAL_ADDRESS", value_delimiter = ',')]
    pub external_address: Vec<Multiaddr>,
    /// Do not fetch the videos peers announce.
    #[arg(long, env = "VIDSWARM_NO_AUTO_FETCH")]
    pub no_auto_fetch: bool,
    /// Announced videos fetched at once by auto-fetch; a video whose auto-fetch failed is left
    /// alone for 30 s, twice as long after each further failure (up to 30 min).
    #[arg(long, env = "VIDSWARM_MAX_AUTO_FETCHES", default_value_t = crate::service::auto_fetch::DEFAULT_MAX_AUTO_FETCHES)]
    pub max_auto_fetches: usize,
    /// Seconds between re-announcements of what the node holds (at most 150: peers forget
    /// what is not announced again within 5 min).
    #[arg(long, env = "VIDSWARM_ANNOUNCE_EVERY", default_value_t = 15)]
    pub announce_every: u64,
    /// Serve the HTTP API (and Swagger UI) on this address; port 0 picks a free one.
    #[arg(long, env = "VIDSWARM_HTTP", default_value = "127.0.0.1:8000")]
    pub http: std::net::SocketAddr,
    /// Do not serve the HTTP API.
    #[arg(long, env = "VIDSWARM_NO_HTTP", conflicts_with = "http")]
    pub no_http: bool,
    /// Require `Authorization: Bearer TOKEN` on HTTP routes that change state (reads stay open).
    #[arg(long, env = "VIDSWARM_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// The largest fragment an HTTP upload may carry, in bytes.
    #[arg(long, env = "VIDSWARM_MAX_UPLOAD", default_value_t = crate::http::DEFAULT_MAX_UPLOAD)]
    pub max_upload: u64,
    /// HTTP uploads streaming in at once; more are answered 503.
    #[arg(long, env = "VIDSWARM_MAX_UPLOADS", default_value_t = crate::http::DEFAULT_MAX_UPLOADS)]
    pub max_uploads: usize,
    /// HTTP connections served at once; the listener waits beyond.
    #[arg(long, env = "VIDSWARM_HTTP_MAX_CONNECTIONS", default_value_t = crate::http::DEFAULT_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// HTTP connections one client address (an IPv6 /64) holds at once; one more is closed.
    #[arg(long, env = "VIDSWARM_HTTP_MAX_PER_CLIENT", default_value_t = crate::http::DEFAULT_MAX_PER_CLIENT)]
    pub http_max_per_client: usize,
    /// Seconds a client has to send a request's headers (also the idle time of a kept-alive
    /// connection).
    #[arg(long, env = "VIDSWARM_HTTP_HEADER_TIMEOUT", default_value_t = crate::http::DEFAULT_HEADER_TIMEOUT.as_secs_f64())]
    pub http_header_timeout: f64,
    /// Seconds a request body may send nothing before the request fails.
    #[arg(long, env = "VIDSWARM_HTTP_BODY_TIMEOUT", default_value_t = crate::http::DEFAULT_BODY_TIMEOUT.as_secs_f64())]
    pub http_body_timeout: f64,
    /// Seconds a response may wait for a client that reads nothing before its connection ends.
    #[arg(long, env = "VIDSWARM_HTTP_SEND_TIMEOUT", default_value_t = crate::http::DEFAULT_SEND_TIMEOUT.as_secs_f64())]
    pub http_send_timeout: f64,
    /// A host name the HTTP API answers for, beside IP addresses, localhost and *.localhost
    /// (requests for other names are refused, against DNS rebinding); repeatable; `*` for any.
    #[arg(long, env = "VIDSWARM_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// An origin (`https://app.example`) whose web pages may use the API (CORS) and write to
    /// it; repeatable; `*` lets any page read. Off by default: only the node's own pages.
    #[arg(long, env = "VIDSWARM_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Join a private swarm: only nodes with this pre-shared key (a file in Kubo's `swarm.key`
    /// format: `/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits) can connect. libp2p's pnet
    /// runs over TCP only, so such a node neither listens nor dials on QUIC.
    #[arg(long, env = "VIDSWARM_SWARM_KEY")]
    pub swarm_key: Option<PathBuf>,
    /// The key that signs the names of this node's uploads, and so owns them: only its holder
    /// can re-point a name. Created (readable by its owner alone) if the file does not exist;
    /// copy it to another node to publish from there. Default: the node's own identity.
    #[arg(long, env = "VIDSWARM_PUBLISHER_KEY")]
    pub publisher_key: Option<PathBuf>,
    /// Connect only with this peer id (repeatable): connections to and from every other peer
    /// are refused. Bootstrap peers must be listed too. Default: any peer (that has the swarm
    /// key, in a private swarm).
    #[arg(long, env = "VIDSWARM_ALLOW_PEER", value_delimiter = ',')]
    pub allow_peer: Vec<libp2p::PeerId>,
    /// Resident memory above which the node accepts and dials no new connection (those it has
    /// go on); a size like 1G or 512M.
    #[arg(long, env = "VIDSWARM_MAX_MEMORY", default_value = "1G", value_parser = super::size::parse_size)]
    pub max_memory: u64,
    /// What auto-fetch may fill: evictable videos (those auto-fetch brought) are removed, least
    /// recently used first, while the store holds more, and one that does not fit is not
    /// fetched. What is pinned (published here, fetched on request) is never evicted.
    #[arg(long, env = "VIDSWARM_MAX_STORE", default_value = "10G", value_parser = super::size::parse_size)]
    pub max_store: u64,
    /// Free space on the data dir's disk that no fetch or upload takes (evictable videos make
    /// way first; beyond, it fails with "no room").
    #[arg(long, env = "VIDSWARM_MIN_FREE", default_value = "512M", value_parser = super::size::parse_size)]
    pub min_free: u64,
    /// How many bytes of verified chunks a fetch saves its resume record after: what a crash
    /// (kill -9, power loss) can cost a fragment being fetched at most, beside the chunks in
    /// flight. Smaller saves more often (each save is an fsync); a size like 4M or 256K.
    #[arg(long, env = "VIDSWARM_RESUME_EVERY", default_value = "4M", value_parser = super::size::parse_size)]
    pub resume_every: u64,
    /// Upload at most this many bytes of fragment data per second, to all peers together
    /// (a size like 10M: 10 MiB/s); peers asking at once share it in turn. Default: as fast
    /// as the links go.
    #[arg(long, env = "VIDSWARM_MAX_UPLOAD_RATE", value_parser = super::size::parse_size)]
    pub max_upload_rate: Option<u64>,
}

/// Reads and parses a swarm key file, refusing anything larger than a key file can be.
pub fn read_swarm_key(path: &std::path::Path) -> anyhow::Result<libp2p::pnet::PreSharedKey> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::net::MAX_SWARM_KEY_BYTES + 1)
                .read_to_string(&mut text)
        })
        .with_context(|| format!("cannot read the swarm key {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= crate::net::MAX_SWARM_KEY_BYTES,
        "{} is too large for a swarm key",
        path.display()
    );
    crate::net::parse_swarm_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The largest key file read (an ed25519 keypair in libp2p's protobuf encoding is 68 bytes).
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Reads the keypair in `path` (libp2p's protobuf encoding, as `identity.key`), or creates one
/// there, readable by its owner alone, when there is no file.
fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<libp2p::identity::Keypair> {
    use libp2p::identity::Keypair;
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::File::open(path) {
        Ok(file) => {
            let mut bytes = Vec::new();
            file.take(MAX_KEY_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("cannot read the key {}", path.display()))?;
            anyhow::ensure!(
                bytes.len() as u64 <= MAX_KEY_FILE_BYTES,
                "{} is too large for a key",
                path.display()
            );
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| anyhow::anyhow!("{} is not a key: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .context("cannot encode a new key")?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the key {}", path.display()))?;
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the key {}", path.display())),
    }
}

/// Seconds from the command line as a duration: at least 1 ms, at most a day.
fn seconds(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(if s.is_finite() {
        s.clamp(0.001, 86_400.0)
    } else {
        86_400.0
    })
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut cfg = NodeConfig::new(&args.data);
    if !args.listen.is_empty() {
        cfg.listen = args.listen;
    }
    cfg.bootstrap = args.bootstrap;
    cfg.net.external = args.external_address;
    cfg.auto_fetch = !args.no_auto_fetch;
    cfg.auto_fetch_pace.max_running = args.max_auto_fetches.max(1);
    // Node::start caps it (peers forget entries not announced again within AVAILABILITY_TTL).
    cfg.announce_every = std::time::Duration::from_secs(args.announce_every.max(1));
    if let Some(path) = &args.swarm_key {
        let key = read_swarm_key(path)?;
        tracing::info!(target: "vidswarm", fingerprint = %key.fingerprint(), "private swarm: only nodes with this key can connect (TCP only)");
        cfg.net.swarm_key = Some(key);
    }
    if let Some(path) = &args.publisher_key {
        let key = load_or_create_key(path)?;
        tracing::info!(target: "vidswarm", publisher = %key.public().to_peer_id(), "names of uploads are signed with {}", path.display());
        cfg.publisher = Some(key);
    }
    if !args.allow_peer.is_empty() {
        tracing::info!(target: "vidswarm", peers = args.allow_peer.len(), "only the peers given with --allow-peer can connect");
    }
    cfg.net.allowed_peers = args.allow_peer;
    cfg.net.max_memory = usize::try_from(args.max_memory).unwrap_or(usize::MAX);
    cfg.net.max_upload_rate = args.max_upload_rate;
    cfg.space = crate::service::SpaceConfig {
        max_store: args.max_store,
        min_free: args.min_free,
        resume_every: args.resume_every,
    };
    let node = Node::start(cfg)
        .await
        .with_context(|| format!("cannot start a node on {}", args.data.display()))?;
    // The dialable addresses, one per line, for scripts and for other nodes' --bootstrap.
    for addr in node.listen_addrs() {
        println!("{addr}");
    }
    tokio::spawn(log_events(
        node.client().subscribe(),
        String::new(),
        PeerNames::default(),
    ));
    // Stopping: the HTTP server stops taking connections and finishes the requests it has, then
    // the node drains (see `Node::shutdown`).
    let stop = tokio_util::sync::CancellationToken::new();
    let mut http = None;
    if !args.no_http {
        let addr = args.http;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(target: "vidswarm", "HTTP API on http://{bound}/ (Swagger UI at http://{bound}/swagger-ui/)");
        // The bound address on stdout too: with port 0 it is how scripts find the API.
        println!("http://{bound}");
        let state = node.http_state(crate::http::HttpConfig {
            max_upload: args.max_upload,
            api_token: args.api_token.map(Into::into),
            max_uploads: args.max_uploads.max(1),
            limits: crate::http::ServerLimits {
                max_connections: args.http_max_connections.max(1),
                max_per_client: args.http_max_per_client.max(1),
                header_timeout: seconds(args.http_header_timeout),
                body_timeout: seconds(args.http_body_timeout),
                send_timeout: seconds(args.http_send_timeout),
            },
            web: crate::http::WebPolicy {
                allowed_hosts: args.allow_host,
                cors_origins: args.cors_origin,
            },
        });
        let stopped = stop.clone().cancelled_owned();
        http = Some(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, stopped).await {
                tracing::error!(target: "vidswarm", error = %e, "HTTP server failed");
            }
        }));
    }
    let held = node.store().manifests().len();
    tracing::info!(target: "vidswarm", peer = %node.peer_id(), videos = held, "node running; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!(target: "vidswarm", "stopping");
    stop.cancel();
    if let Some(http) = http {
        // Requests that stream (SSE) never finish on their own: bounded.
        let _ = tokio::time::timeout(crate::node::SHUTDOWN_WITHIN, http).await;
    }
    let clean = node.shutdown(crate::node::SHUTDOWN_WITHIN).await;
    tracing::info!(target: "vidswarm", clean, "stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM (what `docker stop` sends).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::NodeArgs,
    }

    #[test]
    fn the_size_defaults_are_the_constants_the_docs_quote() {
        let cli = <Cli as clap::Parser>::try_parse_from(["vidswarm", "--data", "d"]).unwrap();
        assert_eq!(cli.args.max_memory, crate::net::DEFAULT_MAX_MEMORY as u64);
        assert_eq!(cli.args.max_store, crate::service::space::DEFAULT_MAX_STORE);
        assert_eq!(cli.args.min_free, crate::service::space::DEFAULT_MIN_FREE);
    }
}
