//! The swarm's control inputs to the node's own tasks: which videos peers announced (for auto-fetch
//! and name learning) and that a peer subscribed (for the announcer). Unlike the event broadcast
//! these are never dropped: they coalesce instead. A video announced ten times before the reader
//! wakes is one entry (the latest name wins), and any number of subscriptions is one wake-up, so
//! the inbox holds at most one entry per distinct video however fast gossip arrives.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;
use vidswarm_proto::wire::NamedUpload;
use vidswarm_proto::VideoId;

#[derive(Debug, Default)]
pub struct Inbox {
    announced: Mutex<BTreeMap<VideoId, Option<NamedUpload>>>,
    announced_ready: Notify,
    subscribed: Notify,
}

impl Inbox {
    /// A peer announced `video` (with its name, for a loose upload).
    pub fn announced(&self, video: VideoId, named: Option<NamedUpload>) {
        let mut pending = self
            .announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(video).or_default();
        if named.is_some() {
            *entry = named;
        }
        drop(pending);
        self.announced_ready.notify_one();
    }

    /// Every video announced since the last call, waiting until there is one.
    pub async fn next_announced(&self) -> BTreeMap<VideoId, Option<NamedUpload>> {
        loop {
            let batch = std::mem::take(
                &mut *self
                    .announced
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if !batch.is_empty() {
                return batch;
            }
            // `notify_one` stores a permit when nobody waits, so a call between the take above
            // and this await still wakes it.
            self.announced_ready.notified().await;
        }
    }

    /// A peer subscribed to the announcement topic.
    pub fn peer_subscribed(&self) {
        self.subscribed.notify_one();
    }

    /// Waits until a peer has subscribed since the last call.
    pub async fn next_subscribed(&self) {
        self.subscribed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(n: u8) -> VideoId {
        VideoId(vidswarm_proto::Hash::of(&[n]))
    }

    #[tokio::test]
    async fn announcements_coalesce_and_are_never_lost() {
        let inbox = Inbox::default();
        for _ in 0..10_000 {
            inbox.announced(video(1), None);
        }
        let named = NamedUpload {
            name: "a.mp4".into(),
            uploaded_at_ms: 5,
            publisher: None,
            signature: None,
        };
        inbox.announced(video(2), Some(named.clone()));
        inbox.announced(video(2), None);
        let batch = inbox.next_announced().await;
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[&video(1)], None);
        assert_eq!(batch[&video(2)], Some(named));
        // Announced before the reader waits: still seen.
        inbox.announced(video(3), None);
        let batch = tokio::time::timeout(std::time::Duration::from_secs(5), inbox.next_announced())
            .await
            .expect("woken");
        assert!(batch.contains_key(&video(3)));
    }

    #[tokio::test]
    async fn a_subscription_before_the_wait_wakes_it() {
        let inbox = Inbox::default();
        inbox.peer_subscribed();
        inbox.peer_subscribed();
        tokio::time::timeout(std::time::Duration::from_secs(5), inbox.next_subscribed())
            .await
            .expect("woken");
    }
}
