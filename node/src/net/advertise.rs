//! Which of this node's listen addresses it advertises to peers (identify, provider records).
//!
//! A node listening on `0.0.0.0` listens on every interface's address, including interfaces that
//! are down (a Docker bridge with no container: `docker0` at 172.17.0.1, NO-CARRIER). Peers that
//! dial such an address wait for nothing, so it is not advertised while its interface is not
//! running; the event loop checks again every [`RECHECK_EVERY`], so an interface that comes up
//! (or goes down) is advertised (or withdrawn) then. With `--external-address`, only the
//! operator's addresses are advertised and this does not apply.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// How often the interfaces' state is looked at again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// The addresses of interfaces that are not running (down, or up with no carrier).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DownAddresses(HashSet<IpAddr>);

impl DownAddresses {
    /// As the system says now. If it cannot be asked, nothing counts as down: advertising one
    /// address too many costs a failed dial, advertising none costs the node its peers.
    pub fn now() -> Self {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => Self(
                interfaces
                    .into_iter()
                    .filter(|i| !i.is_loopback() && !i.is_oper_up())
                    .map(|i| i.ip())
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list network interfaces");
                Self::default()
            }
        }
    }

    #[cfg(test)]
    pub fn of(ips: &[IpAddr]) -> Self {
        Self(ips.iter().copied().collect())
    }

    /// Whether `addr` is worth advertising: not on an interface that is down, not unspecified.
    pub fn advertisable(&self, addr: &Multiaddr) -> bool {
        addr.iter().all(|p| match p {
            Protocol::Ip4(ip) => !ip.is_unspecified() && !self.0.contains(&IpAddr::V4(ip)),
            Protocol::Ip6(ip) => !ip.is_unspecified() && !self.0.contains(&IpAddr::V6(ip)),
            _ => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_interfaces_that_are_down_are_not_advertised() {
        let down = DownAddresses::of(&["172.17.0.1".parse().unwrap()]);
        let a = |s: &str| s.parse::<Multiaddr>().unwrap();
        assert!(!down.advertisable(&a("/ip4/172.17.0.1/tcp/4001")));
        assert!(!down.advertisable(&a("/ip4/172.17.0.1/udp/4001/quic-v1")));
        assert!(!down.advertisable(&a("/ip4/0.0.0.0/tcp/4001")));
        assert!(down.advertisable(&a("/ip4/10.0.0.7/tcp/4001")));
        assert!(down.advertisable(&a("/ip4/127.0.0.1/tcp/4001")));
        assert!(down.advertisable(&a("/dns4/node/tcp/4001")));
    }

    #[test]
    fn the_systems_interfaces_can_be_read_and_loopback_is_never_down() {
        let down = DownAddresses::now();
        assert!(down.advertisable(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()));
        assert!(down.advertisable(&"/ip6/::1/tcp/1".parse().unwrap()));
    }
}
