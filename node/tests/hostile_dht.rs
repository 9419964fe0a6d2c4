//! A hostile Kademlia peer that provides more keys than a node keeps for one peer: the node's
//! store holds the cap (`MAX_KEYS_PER_REMOTE_PROVIDER`), no more, and an honest peer still
//! fetches from the node.

mod common;

use std::time::Duration;

use common::swarm::{holds_all, start};
use futures::StreamExt;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::kad::{self, RecordKey};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, Swarm};
use vidswarm_node::fetch::FetchOptions;
use vidswarm_node::net::provider_store::MAX_KEYS_PER_REMOTE_PROVIDER;

const KAD_PROTOCOL: &str = "/vidswarm/kad/1.0.0";

fn kad_swarm() -> Swarm<kad::Behaviour<MemoryStore>> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    common::raw::tcp_swarm(key, Duration::from_secs(60), |key| {
        let id = key.public().to_peer_id();
        let cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        let store = MemoryStore::with_config(
            id,
            MemoryStoreConfig {
                max_provided_keys: 100_000,
                ..MemoryStoreConfig::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(id, store, cfg);
        kad.set_mode(Some(kad::Mode::Server));
        kad
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_providing_more_keys_than_the_cap_is_held_to_it() {
    let node = start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let manifest = common::write_split_dir(split.path(), &common::fragments(13, 3));
    node.node.import_split(split.path()).await.unwrap();

    let mut hostile = kad_swarm();
    let addr = node.node.listen_addrs()[0].clone();
    hostile
        .behaviour_mut()
        .add_address(&node.node.peer_id(), addr);
    let keys = MAX_KEYS_PER_REMOTE_PROVIDER + 200;
    for n in 0..keys {
        let key = RecordKey::new(&format!("junk {n}"));
        hostile.behaviour_mut().start_providing(key).unwrap();
    }
    let gauge = &node.node.client().metrics().dht_remote_keys;
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done < keys {
        let event = tokio::time::timeout_at(deadline, hostile.select_next_some())
            .await
            .unwrap_or_else(|_| panic!("{done} of {keys} provider records sent in 60 s"));
        if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::StartProviding(_),
            step,
            ..
        }) = event
        {
            if step.last {
                done += 1;
            }
        }
    }
    // The gauge follows the store within a tick (500 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gauge.get() < MAX_KEYS_PER_REMOTE_PROVIDER as i64
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gauge.get(),
        MAX_KEYS_PER_REMOTE_PROVIDER as i64,
        "the node holds the cap of one peer's keys, no more"
    );

    let honest = start(&[&node], false).await;
    honest
        .node
        .fetch(manifest.video_id, &FetchOptions::default())
        .await
        .unwrap();
    assert!(holds_all(&honest, &manifest));
}
