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

/// The encoded request for chunk `k` of `fragment` in chunks of `chunk_size`, not to be declined.
pub fn chunk_request(fragment: &vidswarm_proto::FragmentInfo, chunk_size: u32, k: u64) -> Vec<u8> {
    use vidswarm_proto::wire::{encode, Request};
    let (offset, len) = vidswarm_proto::chunk_range(fragment.size, chunk_size, k).unwrap();
    encode(&Request::Chunk {
        fragment: fragment.blake3,
        offset,
        len,
        may_decline: false,
    })
}
