//! Starting several nodes in one process on 127.0.0.1 (port 0) and waiting on their events with
//! deadlines.

use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::mpsc;
use vidswarm_node::events::NodeEvent;
use vidswarm_node::fetch::FetchOptions;
use vidswarm_node::net::NetConfig;
use vidswarm_node::node::{Node, NodeConfig};
use vidswarm_proto::Manifest;

pub struct TestNode {
    pub node: Node,
    pub dir: TempDir,
}

/// A loopback node config with short timers, so tests see retries and re-announcements quickly.
pub fn config(dir: &std::path::Path, auto_fetch: bool) -> NodeConfig {
    let mut cfg = NodeConfig::loopback(dir);
    cfg.auto_fetch = auto_fetch;
    cfg.announce_every = Duration::from_secs(1);
    cfg.net = NetConfig {
        request_timeout: Duration::from_secs(3),
        ..NetConfig::default()
    };
    cfg.fetch = FetchOptions {
        stall_timeout: Duration::from_secs(20),
        ..FetchOptions::default()
    };
    cfg
}

pub async fn start(bootstrap: &[&TestNode], auto_fetch: bool) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), auto_fetch);
    cfg.bootstrap = bootstrap
        .iter()
        .map(|n| n.node.listen_addrs()[0].clone())
        .collect();
    let node = Node::start(cfg).await.expect("node starts");
    TestNode { node, dir }
}

/// `n` nodes: the first alone, every other one bootstrapped from the first only.
pub async fn start_many(n: usize, auto_fetch: bool) -> Vec<TestNode> {
    let first = start(&[], auto_fetch).await;
    let mut nodes = vec![first];
    for _ in 1..n {
        let node = start(&[&nodes[0]], auto_fetch).await;
        nodes.push(node);
    }
    nodes
}

/// Every event of `nodes`, merged, tagged with the node's position.
pub fn merged_events(nodes: &[&TestNode]) -> mpsc::UnboundedReceiver<(usize, NodeEvent)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, n) in nodes.iter().enumerate() {
        let mut sub = n.node.client().subscribe();
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(e) => {
                        if tx.send((i, e)).is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
    }
    rx
}

/// Waits until `done()` holds, re-checking after every event of `nodes` (and at least every
/// 500 ms, in case an event was missed); panics with `what` after `limit`.
pub async fn wait_until(
    nodes: &[&TestNode],
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let mut events = merged_events(nodes);
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        let tick = tokio::time::Instant::now() + Duration::from_millis(500);
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep_until(tick.min(deadline)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            assert!(done(), "timed out after {limit:?} waiting until {what}");
        }
    }
}

pub fn holds_all(node: &TestNode, manifest: &Manifest) -> bool {
    manifest
        .fragments
        .iter()
        .all(|f| node.node.store().has_fragment(&f.blake3))
}
