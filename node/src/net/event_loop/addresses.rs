//! This node's own addresses: the listen addresses it has, and which of them it advertises (the
//! swarm's external addresses, which identify sends; `net/advertise.rs` says which are worth it).

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use tokio::time::Instant;
use tracing::{debug, info};

use super::EventLoop;
use crate::events::{emit, NodeEvent};
use crate::net::advertise::{DownAddresses, RECHECK_EVERY};

impl EventLoop {
    pub(super) fn on_new_listen_addr(&mut self, address: Multiaddr) {
        let full = address.clone().with(Protocol::P2p(self.local()));
        info!(addr = %full, "listening");
        self.listen_addrs.push(address.clone());
        if self.advertise_listen && DownAddresses::now().advertisable(&address) {
            self.swarm.add_external_address(address);
        }
        emit(&self.events, NodeEvent::Listening { addr: full });
    }

    /// An interface went away or changed its address (a container with a new IP): the old
    /// address is no longer listed or advertised.
    pub(super) fn on_expired_listen_addr(&mut self, address: &Multiaddr) {
        info!(addr = %address, "no longer listening");
        self.listen_addrs.retain(|a| a != address);
        if self.advertise_listen {
            self.swarm.remove_external_address(address);
        }
    }

    /// Every [`RECHECK_EVERY`]: advertise the listen addresses whose interface came up, withdraw
    /// those whose interface went down.
    pub(super) fn recheck_advertised(&mut self) {
        let now = Instant::now();
        if !self.advertise_listen || now < self.recheck_interfaces {
            return;
        }
        self.recheck_interfaces = now + RECHECK_EVERY;
        let down = DownAddresses::now();
        let advertised: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        for addr in self.listen_addrs.clone() {
            match (down.advertisable(&addr), advertised.contains(&addr)) {
                (true, false) => {
                    debug!(%addr, "its interface is up: advertising it");
                    self.swarm.add_external_address(addr);
                }
                (false, true) => {
                    debug!(%addr, "its interface is down: no longer advertising it");
                    self.swarm.remove_external_address(&addr);
                }
                _ => {}
            }
        }
    }

    /// The addresses peers are told of.
    pub(super) fn advertised(&self) -> Vec<Multiaddr> {
        let local = self.local();
        self.swarm
            .external_addresses()
            .map(|a| a.clone().with(Protocol::P2p(local)))
            .collect()
    }
}
