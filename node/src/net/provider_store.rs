//! Kademlia's record store, with what other peers can make it hold bounded. The node's own
//! provider records are kept apart and never crowded out: they are bounded by what the node
//! holds. Records other peers publish here are capped per peer and in all, expired ones are
//! swept when a cap is reached, and value records (PUT_VALUE, which vidswarm does not use) are
//! refused before they get here (`StoreInserts::FilterBoth`, the event loop stores none).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::kad::store::{self, MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey, K_VALUE};
use libp2p::PeerId;

/// Keys with records from other peers; beyond, new keys are refused until some expire.
pub const MAX_REMOTE_KEYS: usize = 65_536;
/// Keys one other peer may have records for here: a quarter of a node with 1,000 videos of 10
/// fragments, far below what it takes to crowd out the other peers.
pub const MAX_KEYS_PER_REMOTE_PROVIDER: usize = 4_096;

pub struct ProviderStore {
    local_peer: PeerId,
    /// This node's own provider records (and the value records it never stores).
    local: MemoryStore,
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    keys_of: HashMap<PeerId, HashSet<RecordKey>>,
}

impl ProviderStore {
    pub fn new(local_peer: PeerId) -> Self {
        let local = MemoryStore::with_config(
            local_peer,
            MemoryStoreConfig {
                // Ten fragments and a manifest per video: bounded by the store, not here.
                max_provided_keys: usize::MAX,
                ..MemoryStoreConfig::default()
            },
        );
        Self {
            local_peer,
            local,
            remote: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }

    /// Keys that hold records of other peers.
    pub fn remote_keys(&self) -> usize {
        self.remote.len()
    }

    fn add_remote(&mut self, record: ProviderRecord, now: Instant) -> store::Result<()> {
        if let Some(p) = self
            .remote
            .get_mut(&record.key)
            .and_then(|list| list.iter_mut().find(|p| p.provider == record.provider))
        {
            *p = record;
            return Ok(());
        }
        if self.over_limits(&record) {
            self.drop_expired(now);
            if self.over_limits(&record) {
                return Err(store::Error::MaxProvidedKeys);
            }
        }
        let list = self.remote.entry(record.key.clone()).or_default();
        // As Kademlia's own store: the first K providers of a key are kept, later ones ignored.
        if list.len() >= K_VALUE.get() {
            return Ok(());
        }
        self.keys_of
            .entry(record.provider)
            .or_default()
            .insert(record.key.clone());
        list.push(record);
        Ok(())
    }

    fn over_limits(&self, record: &ProviderRecord) -> bool {
        let new_key = !self.remote.contains_key(&record.key);
        let of_provider = self.keys_of.get(&record.provider).map_or(0, HashSet::len);
        (new_key && self.remote.len() >= MAX_REMOTE_KEYS)
            || of_provider >= MAX_KEYS_PER_REMOTE_PROVIDER
    }

    fn drop_expired(&mut self, now: Instant) {
        let keys_of = &mut self.keys_of;
        self.remote.retain(|key, list| {
            list.retain(|p| {
                let keep = !p.is_expired(now);
                if !keep {
                    if let Some(keys) = keys_of.get_mut(&p.provider) {
                        keys.remove(key);
                    }
                }
                keep
            });
            !list.is_empty()
        });
        keys_of.retain(|_, keys| !keys.is_empty());
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.local.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.local.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.local.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.local.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        if record.provider == self.local_peer {
            self.local.add_provider(record)
        } else {
            self.add_remote(record, Instant::now())
        }
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut all = self.local.providers(key);
        if let Some(remote) = self.remote.get(key) {
            all.extend(remote.iter().cloned());
        }
        all
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.local.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if *p == self.local_peer {
            return self.local.remove_provider(k, p);
        }
        if let Some(list) = self.remote.get_mut(k) {
            list.retain(|r| r.provider != *p);
            if list.is_empty() {
                self.remote.remove(k);
            }
        }
        if let Some(keys) = self.keys_of.get_mut(p) {
            keys.remove(k);
            if keys.is_empty() {
                self.keys_of.remove(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(key: usize, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        let mut r = ProviderRecord::new(
            RecordKey::new(&format!("/vidswarm/fragment/{key}")),
            provider,
            Vec::new(),
        );
        r.expires = expires;
        r
    }

    #[test]
    fn one_peer_cannot_fill_the_store_and_this_node_still_provides() {
        let me = PeerId::random();
        let mut s = ProviderStore::new(me);
        let hostile = PeerId::random();
        let refused = (0..MAX_KEYS_PER_REMOTE_PROVIDER + 100)
            .filter(|&k| s.add_provider(record(k, hostile, None)).is_err())
            .count();
        assert_eq!(refused, 100);
        assert_eq!(s.remote_keys(), MAX_KEYS_PER_REMOTE_PROVIDER);
        // An honest peer's record and the node's own are taken.
        let honest = PeerId::random();
        s.add_provider(record(1, honest, None)).unwrap();
        assert_eq!(s.providers(&record(1, honest, None).key).len(), 2);
        for k in 0..10_000 {
            s.add_provider(record(1_000_000 + k, me, None)).unwrap();
        }
        assert_eq!(s.provided().count(), 10_000);
        // A replaced record is no new key.
        s.add_provider(record(0, hostile, None)).unwrap();
    }

    #[test]
    fn the_keys_of_other_peers_are_capped_in_all_and_expired_ones_make_room() {
        let mut s = ProviderStore::new(PeerId::random());
        let soon = Instant::now() + Duration::from_secs(3600);
        let mut key = 0;
        let peers: Vec<PeerId> = (0..MAX_REMOTE_KEYS / MAX_KEYS_PER_REMOTE_PROVIDER)
            .map(|_| PeerId::random())
            .collect();
        for p in &peers {
            for _ in 0..MAX_KEYS_PER_REMOTE_PROVIDER {
                s.add_provider(record(key, *p, Some(soon))).unwrap();
                key += 1;
            }
        }
        assert_eq!(s.remote_keys(), MAX_REMOTE_KEYS);
        let late = PeerId::random();
        assert!(s.add_provider(record(key, late, None)).is_err());
        let later = soon + Duration::from_millis(1);
        s.add_remote(record(key, late, None), later).unwrap();
        assert_eq!(s.remote_keys(), 1);
        // Removing a provider frees its keys.
        s.remove_provider(&record(key, late, None).key, &late);
        assert_eq!(s.remote_keys(), 0);
        assert!(s.keys_of.is_empty());
    }
}
