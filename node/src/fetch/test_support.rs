//! Fakes for the download's seams, for unit tests without sockets or disks: a manifest over
//! in-memory fragments, a [`FakeSource`] whose peers behave as told, and a [`MemSink`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::PeerId;
use vidswarm_proto::{
    fragment_name, FragmentHasher, FragmentInfo, Hash, Manifest, SourceInfo, SplitMode,
    MIN_CHUNK_SIZE,
};

use super::seams::{ChunkAnswer, ChunkSource, FragmentSink, SinkError, Written};
use super::FetchError;
use crate::store::StoreError;

pub const CS: u32 = MIN_CHUNK_SIZE;

/// Deterministic bytes, different per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A valid manifest over `fragments`, with chunks of [`CS`] bytes.
pub fn manifest(fragments: &[Vec<u8>]) -> Manifest {
    let infos = (0u32..)
        .zip(fragments)
        .map(|(index, data)| {
            let mut h = FragmentHasher::new(CS);
            h.update(data);
            let h = h.finish();
            FragmentInfo {
                index,
                name: fragment_name(index),
                size: h.size,
                duration: 1.0,
                start: f64::from(index),
                frame_count: 25,
                blake3: h.hash,
                chunks: h.chunks,
            }
        })
        .collect();
    let source = SourceInfo {
        name: "test.mp4".into(),
        size: fragments.iter().map(|f| f.len() as u64).sum(),
        duration: fragments.len() as f64,
        frame_count: 25 * fragments.len() as u64,
    };
    Manifest::new(source, SplitMode::Copy, CS, infos)
}

/// How a fake peer answers chunk requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Flips a byte of every chunk.
    Liar,
    /// Never answers.
    Silent,
    /// Answers `Busy` this many times, then honestly.
    BusyFor(u32),
    NotHeld,
}

#[derive(Default)]
pub struct FakeState {
    pub busy_left: HashMap<PeerId, u32>,
    /// Every request, in order: (peer, fragment hash, offset).
    pub asked: Vec<(PeerId, Hash, u64)>,
    pub gained: Vec<u32>,
    /// The fragments looked up, in order.
    pub looked_up: Vec<u32>,
}

/// Peers that each hold every fragment and answer as their [`Behaviour`] says.
pub struct FakeSource {
    pub data: HashMap<Hash, Arc<Vec<u8>>>,
    pub peers: Vec<(PeerId, Behaviour)>,
    pub state: Mutex<FakeState>,
    /// When set, each lookup takes this long, and `lookups` counts those running.
    pub lookup_delay: Option<std::time::Duration>,
    pub lookups: Arc<LookupCount>,
}

/// Lookups running now, and the most that ran at once.
#[derive(Default)]
pub struct LookupCount {
    pub running: std::sync::atomic::AtomicUsize,
    pub most: std::sync::atomic::AtomicUsize,
}

impl FakeSource {
    pub fn new(fragments: &[Vec<u8>], peers: &[Behaviour]) -> Self {
        let data = fragments
            .iter()
            .map(|f| (Hash::of(f), Arc::new(f.clone())))
            .collect();
        let peers: Vec<(PeerId, Behaviour)> =
            peers.iter().map(|b| (PeerId::random(), *b)).collect();
        let mut state = FakeState::default();
        for (p, b) in &peers {
            if let Behaviour::BusyFor(n) = b {
                state.busy_left.insert(*p, *n);
            }
        }
        Self {
            data,
            peers,
            state: Mutex::new(state),
            lookup_delay: None,
            lookups: Arc::default(),
        }
    }

    pub fn peer(&self, i: usize) -> PeerId {
        self.peers[i].0
    }

    pub fn asked_of(&self, peer: PeerId) -> usize {
        let state = self.state.lock().unwrap();
        state.asked.iter().filter(|(p, _, _)| *p == peer).count()
    }
}

impl ChunkSource for FakeSource {
    fn chunk(
        &self,
        peer: PeerId,
        hash: Hash,
        offset: u64,
        len: u32,
        _may_decline: bool,
    ) -> BoxFuture<'static, ChunkAnswer> {
        let mut state = self.state.lock().unwrap();
        state.asked.push((peer, hash, offset));
        let behaviour = self.peers.iter().find(|(p, _)| *p == peer).map(|(_, b)| *b);
        let busy = state
            .busy_left
            .get_mut(&peer)
            .filter(|n| **n > 0)
            .map(|n| *n -= 1)
            .is_some();
        drop(state);
        let slice = self.data.get(&hash).and_then(|d| {
            d.get(offset as usize..offset as usize + len as usize)
                .map(<[u8]>::to_vec)
        });
        let answer = match (behaviour, slice) {
            (_, _) if busy => ChunkAnswer::Busy,
            (Some(Behaviour::Silent), _) => return futures::future::pending().boxed(),
            (Some(Behaviour::NotHeld) | None, _) | (_, None) => ChunkAnswer::NotHeld,
            (Some(Behaviour::Liar), Some(mut d)) => {
                d[0] ^= 1;
                ChunkAnswer::Data(d)
            }
            (Some(_), Some(d)) => ChunkAnswer::Data(d),
        };
        futures::future::ready(answer).boxed()
    }

    fn announced(&self, _index: u32) -> Vec<PeerId> {
        self.peers.iter().map(|(p, _)| *p).collect()
    }

    fn look_up(
        &self,
        index: u32,
        _hash: Hash,
    ) -> BoxFuture<'static, Result<Vec<PeerId>, FetchError>> {
        self.state.lock().unwrap().looked_up.push(index);
        let found = self.announced(0);
        let Some(delay) = self.lookup_delay else {
            return futures::future::ready(Ok(found)).boxed();
        };
        let count = self.lookups.clone();
        async move {
            use std::sync::atomic::Ordering::SeqCst;
            let now = count.running.fetch_add(1, SeqCst) + 1;
            count.most.fetch_max(now, SeqCst);
            tokio::time::sleep(delay).await;
            count.running.fetch_sub(1, SeqCst);
            Ok(found)
        }
        .boxed()
    }

    fn gained(&self, index: u32, _hash: Hash) -> BoxFuture<'static, Result<(), FetchError>> {
        self.state.lock().unwrap().gained.push(index);
        futures::future::ready(Ok(())).boxed()
    }
}

/// Fragments assembled in memory; `fail_writes` makes every write a disk error.
pub struct MemSink {
    manifest: Arc<Manifest>,
    pub buffers: Mutex<HashMap<u32, Vec<u8>>>,
    pub committed: Mutex<Vec<u32>>,
    pub fail_writes: bool,
    /// Chunks "an earlier fetch" left verified, per fragment ([`MemSink::resume`]).
    pub resumed: Mutex<HashMap<u32, Vec<bool>>>,
}

impl MemSink {
    pub fn new(manifest: Arc<Manifest>) -> Self {
        Self {
            manifest,
            buffers: Mutex::new(HashMap::new()),
            committed: Mutex::new(vec![]),
            fail_writes: false,
            resumed: Mutex::default(),
        }
    }

    /// As if an earlier fetch had verified chunks `have` of fragment `fragment` (bytes `data`)
    /// and stopped: those bytes are in its buffer, and nothing else is.
    pub fn resume(&self, fragment: u32, data: &[u8], have: Vec<bool>) {
        let cs = self.manifest.chunk_size as usize;
        let mut buf = vec![0; data.len()];
        for (k, _) in have.iter().enumerate().filter(|(_, h)| **h) {
            let end = ((k + 1) * cs).min(data.len());
            buf[k * cs..end].copy_from_slice(&data[k * cs..end]);
        }
        self.buffers.lock().unwrap().insert(fragment, buf);
        self.resumed.lock().unwrap().insert(fragment, have);
    }
}

impl FragmentSink for MemSink {
    fn write(&self, fragment: u32, chunk: u32, data: &[u8]) -> Result<Written, SinkError> {
        let info = &self.manifest.fragments[fragment as usize];
        if info.chunks.get(chunk as usize) != Some(&Hash::of(data)) {
            return Err(SinkError::BadHash { fragment, chunk });
        }
        if self.fail_writes {
            return Err(StoreError::Io {
                op: "write",
                path: "/full/disk".into(),
                source: std::io::Error::from_raw_os_error(28),
            }
            .into());
        }
        if self.committed.lock().unwrap().contains(&fragment) {
            return Ok(Written::AlreadyComplete);
        }
        let mut buffers = self.buffers.lock().unwrap();
        let buf = buffers
            .entry(fragment)
            .or_insert_with(|| vec![0; info.size as usize]);
        let offset = chunk as usize * self.manifest.chunk_size as usize;
        buf[offset..offset + data.len()].copy_from_slice(data);
        Ok(Written::Stored)
    }

    fn commit(&self, fragment: u32) -> Result<(), StoreError> {
        let info = &self.manifest.fragments[fragment as usize];
        let buffers = self.buffers.lock().unwrap();
        assert_eq!(
            Hash::of(&buffers[&fragment]),
            info.blake3,
            "committed wrong bytes"
        );
        self.committed.lock().unwrap().push(fragment);
        Ok(())
    }

    fn resumed(&self, fragment: u32) -> Vec<bool> {
        let resumed = self.resumed.lock().unwrap();
        resumed.get(&fragment).cloned().unwrap_or_default()
    }
}
