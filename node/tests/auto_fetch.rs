//! How auto-fetch paces itself: only videos some peer holds fragments of, at most
//! `max_running` at once, and a video whose fetch failed is left alone for its back-off while
//! its announcements keep coming.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::swarm::{config, holds_all, TestNode};
use tokio::time::Instant;
use vidswarm_node::events::NodeEvent;
use vidswarm_node::node::Node;
use vidswarm_node::service::AutoFetchConfig;
use vidswarm_proto::{Manifest, VideoId};

async fn fetcher(seeder: &TestNode, pace: AutoFetchConfig, stall: Duration) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), true);
    cfg.bootstrap = vec![seeder.node.listen_addrs()[0].clone()];
    cfg.auto_fetch_pace = pace;
    cfg.fetch.stall_timeout = stall;
    let node = Node::start(cfg).await.expect("node starts");
    TestNode { node, dir }
}

fn video(dir: &std::path::Path, seed: u64) -> Manifest {
    common::write_split_dir(dir, &common::fragments(seed, 4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_running_auto_fetches_at_once_and_every_video_arrives() {
    let seeder = common::swarm::start(&[], false).await;
    let splits: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let manifests: Vec<Manifest> = splits
        .iter()
        .enumerate()
        .map(|(i, d)| video(d.path(), 40 + i as u64))
        .collect();
    for d in &splits {
        seeder.node.import_split(d.path()).await.unwrap();
    }
    let pace = AutoFetchConfig {
        max_running: 2,
        ..AutoFetchConfig::default()
    };
    let a = fetcher(&seeder, pace, Duration::from_secs(20)).await;
    // Subscribed as soon as it runs: it hears its first announcement only after joining.
    let mut events = a.node.client().subscribe();
    let mut running: HashSet<VideoId> = HashSet::new();
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !manifests.iter().all(|m| holds_all(&a, m)) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("every video arrives within 60 s");
        match event {
            Ok(NodeEvent::FetchStarted { video, .. }) => {
                running.insert(video);
                most = most.max(running.len());
            }
            Ok(NodeEvent::FetchCompleted { video, .. } | NodeEvent::FetchFailed { video, .. }) => {
                running.remove(&video);
            }
            _ => {}
        }
    }
    assert!(most <= 2, "{most} auto-fetches ran at once with a cap of 2");
    assert_eq!(
        most, 2,
        "five videos waiting, yet never two fetches at once"
    );
}

/// Announcements of `video` from `from` that `node` hears, counted as they come.
struct Heard {
    events: tokio::sync::broadcast::Receiver<NodeEvent>,
    video: VideoId,
    announcements: usize,
    with_fragments: usize,
    started: Vec<Instant>,
    failed: Vec<Instant>,
}

impl Heard {
    fn new(node: &TestNode, video: VideoId) -> Self {
        Self {
            events: node.node.client().subscribe(),
            video,
            announcements: 0,
            with_fragments: 0,
            started: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Takes events until `done` holds; panics with `what` after `limit`.
    async fn until(&mut self, limit: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting until {what}"));
            match event {
                Ok(NodeEvent::AnnouncementReceived {
                    video, fragments, ..
                }) if video == self.video => {
                    self.announcements += 1;
                    self.with_fragments += usize::from(!fragments.is_empty());
                }
                Ok(NodeEvent::FetchStarted { video, .. }) if video == self.video => {
                    self.started.push(Instant::now());
                }
                Ok(NodeEvent::FetchFailed { video, .. }) if video == self.video => {
                    self.failed.push(Instant::now());
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_nobody_holds_is_not_fetched_and_a_failed_one_backs_off() {
    let seeder = common::swarm::start(&[], false).await;
    let split = tempfile::tempdir().unwrap();
    let m = video(split.path(), 77);
    // The manifest alone: announced, but no peer holds any fragment.
    seeder.node.seed(&m, split.path(), &[]).await.unwrap();
    seeder.node.publish(&m.video_id).await.unwrap();
    let backoff = Duration::from_secs(4);
    let pace = AutoFetchConfig {
        first_backoff: backoff,
        ..AutoFetchConfig::default()
    };
    let a = fetcher(&seeder, pace, Duration::from_secs(1)).await;
    let mut heard = Heard::new(&a, m.video_id);
    heard
        .until(
            Duration::from_secs(20),
            "3 announcements of the manifest",
            |h| h.announcements >= 3,
        )
        .await;
    assert!(
        heard.started.is_empty(),
        "auto-fetch started on a video no peer holds"
    );

    // One fragment of four: the fetch gets it, then stalls on the rest and fails.
    seeder.node.seed(&m, split.path(), &[0]).await.unwrap();
    seeder.node.publish(&m.video_id).await.unwrap();
    heard
        .until(Duration::from_secs(20), "the auto-fetch fails", |h| {
            !h.failed.is_empty()
        })
        .await;
    assert_eq!(heard.started.len(), 1);
    // Announcements keep coming (one a second) during the back-off: none starts a fetch.
    let seen = heard.with_fragments;
    heard
        .until(Duration::from_secs(20), "2 more announcements", |h| {
            h.with_fragments >= seen + 2
        })
        .await;
    assert_eq!(
        heard.started.len(),
        1,
        "a fetch started during the back-off"
    );
    // After it, the video is tried again.
    heard
        .until(Duration::from_secs(20), "a second auto-fetch", |h| {
            h.started.len() >= 2
        })
        .await;
    let waited = heard.started[1] - heard.failed[0];
    assert!(
        waited >= backoff,
        "tried again after {waited:?}, back-off {backoff:?}"
    );
}
