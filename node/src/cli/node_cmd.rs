//! `vidswarm node`: run one node until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use libp2p::Multiaddr;

use super::eventlog::{log_events, PeerNames};
use crate::node::{Node, NodeConfig};

pub struct NodeArgs {
    pub data: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub auto_fetch: bool,
    pub announce_every: u64,
    pub http: Option<std::net::SocketAddr>,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut cfg = NodeConfig::new(&args.data);
    if !args.listen.is_empty() {
        cfg.listen = args.listen;
    }
    cfg.bootstrap = args.bootstrap;
    cfg.auto_fetch = args.auto_fetch;
    cfg.announce_every = std::time::Duration::from_secs(args.announce_every.max(1));
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
    if let Some(addr) = args.http {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(target: "vidswarm", "HTTP API on http://{bound}/ (Swagger UI at http://{bound}/swagger-ui/)");
        let state = node.http_state();
        tokio::spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, shutdown_signal()).await {
                tracing::error!(target: "vidswarm", error = %e, "HTTP server failed");
            }
        });
    }
    let held = node.store().manifests().map(|m| m.len()).unwrap_or(0);
    tracing::info!(target: "vidswarm", peer = %node.peer_id(), videos = held, "node running; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!(target: "vidswarm", "stopping");
    node.shutdown();
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
