//! A bare libp2p peer over TCP (Noise, Yamux) with whatever behaviour a hostile test needs.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{noise, tcp, yamux, Swarm};

/// A swarm with identity `key` running `behaviour`, keeping idle connections for `idle`.
pub fn tcp_swarm<B: NetworkBehaviour>(
    key: Keypair,
    idle: Duration,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}
