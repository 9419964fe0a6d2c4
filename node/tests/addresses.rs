//! What a node advertises: a node listening on every interface (`0.0.0.0`) does not advertise
//! the addresses of interfaces that are down (a Docker bridge with no container is one: NO-CARRIER),
//! and does advertise the others. Interfaces are read with `ip -j addr`, apart from the code's
//! own way (getifaddrs).

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use vidswarm_node::node::Node;

/// IPv4 addresses of interfaces, split into (running, down); loopback counts as running.
fn interfaces() -> Option<(HashSet<IpAddr>, HashSet<IpAddr>)> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr"])
        .output()
        .ok()?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let (mut up, mut down) = (HashSet::new(), HashSet::new());
    for iface in list.as_array()? {
        let flags: Vec<&str> = iface["flags"]
            .as_array()?
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        let running = flags.contains(&"LOWER_UP") || flags.contains(&"LOOPBACK");
        for a in iface["addr_info"].as_array()? {
            if a["family"] == "inet" {
                let ip: IpAddr = a["local"].as_str()?.parse().ok()?;
                if running {
                    up.insert(ip)
                } else {
                    down.insert(ip)
                };
            }
        }
    }
    Some((up, down))
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_every_interface_does_not_advertise_those_that_are_down() {
    let Some((up, down)) = interfaces() else {
        eprintln!("SKIPPED: `ip -j addr` is not available here (iproute2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::swarm::config(dir.path(), false);
    cfg.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    let node = Node::start(cfg).await.unwrap();
    let client = node.client();

    // Every interface's address becomes a listen address (if-watch reports them one by one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let everything: HashSet<IpAddr> = up.union(&down).copied().collect();
    loop {
        let listening: HashSet<IpAddr> = client
            .listen_addrs()
            .await
            .unwrap()
            .iter()
            .filter_map(ip_of)
            .collect();
        if everything.is_subset(&listening) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listening on {listening:?}, not on all of {everything:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let advertised: HashSet<IpAddr> = client
        .advertised_addrs()
        .await
        .unwrap()
        .iter()
        .filter_map(ip_of)
        .collect();
    assert_eq!(
        advertised, up,
        "advertised {advertised:?}; interfaces up {up:?}, down {down:?}"
    );
    if down.is_empty() {
        eprintln!("note: no interface here is down, so only the running ones were checked");
    }
    node.shutdown(Duration::from_secs(5)).await;
}
