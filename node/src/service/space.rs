//! The disk budget: how much a node holds, and what it gives back.
//!
//! - What auto-fetch brings is evictable, least recently used first; it fits in `max_store`
//!   bytes (`--max-store`) together with everything pinned, or it is not fetched (and backs
//!   off). Auto-fetch never evicts to make room for more of itself: that would have a full
//!   node fetch and evict in a circle as videos are announced.
//! - What is pinned (published here, fetched on request: `store/pins.rs`) is never evicted and
//!   may go beyond `max_store`: the operator asked for it.
//! - Nothing is fetched or uploaded that would leave less than `min_free` bytes free on the data
//!   dir's file system (`--min-free`), whoever asked: evictable videos make way first.
//! - Every `TIDY_EVERY`, and after every fetch, the store's garbage is collected and evictable
//!   videos are evicted while the store holds more than `max_store`.
//!
//! An evicted or deleted video is withdrawn from the swarm like a leaving node's: a goodbye
//! announcement (peers forget this node's availability of it), and no more provider records.

use std::time::Duration;

use tracing::{debug, info, warn};
use vidswarm_proto::VideoId;

use super::{NoRoom, Service, ServiceError};
use crate::fetch;
use crate::net::{fragment_key, manifest_key};
use crate::store::{Evictable, Removed};

/// The default of `--max-store`: what auto-fetch may fill, beside what is pinned (Kubo's
/// `StorageMax` default is 10 GB too).
pub const DEFAULT_MAX_STORE: u64 = 10 << 30;
/// The default of `--min-free`: free space no fetch or upload takes.
pub const DEFAULT_MIN_FREE: u64 = 512 << 20;
/// How often garbage is collected and the budget enforced, beside after each fetch.
pub const TIDY_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceConfig {
    pub max_store: u64,
    pub min_free: u64,
    /// Bytes of verified chunks after which a fetch saves its resume record (`--resume-every`,
    /// `store/resume.rs`): what a crash can cost a fetch at most, against an fsync that often.
    pub resume_every: u64,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        Self {
            max_store: DEFAULT_MAX_STORE,
            min_free: DEFAULT_MIN_FREE,
            resume_every: crate::store::SAVE_EVERY_BYTES,
        }
    }
}

/// Which evictable videos to remove so that `needed` more bytes fit: the least recently used
/// first, as few as do. `None` when even all of them would not make room.
pub fn to_evict(
    space: SpaceConfig,
    usage: u64,
    free: Option<u64>,
    needed: u64,
    within_budget: bool,
    candidates: &[Evictable],
) -> Result<Vec<VideoId>, String> {
    let fits = |usage: u64, free: Option<u64>| {
        let budget_ok = !within_budget || usage.saturating_add(needed) <= space.max_store;
        let free_ok = free.is_none_or(|f| f >= needed.saturating_add(space.min_free));
        budget_ok && free_ok
    };
    let (mut usage, mut free) = (usage, free);
    let mut chosen = Vec::new();
    for c in candidates {
        if fits(usage, free) {
            break;
        }
        usage = usage.saturating_sub(c.frees);
        free = free.map(|f| f.saturating_add(c.frees));
        chosen.push(c.video);
    }
    if fits(usage, free) {
        return Ok(chosen);
    }
    Err(match free {
        Some(f) if f < needed.saturating_add(space.min_free) => format!(
            "{f} bytes free on the data dir's disk, and {} must stay free (--min-free)",
            space.min_free
        ),
        _ => format!(
            "the store holds {usage} bytes that cannot be evicted, and auto-fetch stays within {} (--max-store)",
            space.max_store
        ),
    })
}

impl Service {
    /// Makes room for `needed` more bytes for `video`. A pinned video (one fetched on request)
    /// needs only the free-space reserve, and evicts what must go to keep it; an evictable one
    /// must also fit in the budget, and evicts nothing.
    pub async fn make_room(&self, video: VideoId, needed: u64) -> Result<(), NoRoom> {
        let (space, fetches) = (self.space, self.fetches.clone());
        let plan = self
            .store
            .call(move |s| {
                let within_budget = !s.is_pinned(&video);
                let candidates = if within_budget {
                    Vec::new()
                } else {
                    s.evictable(&|v: &VideoId| *v == video || fetches.running(v))
                };
                let usage = s.usage()?;
                Ok(to_evict(
                    space,
                    usage,
                    s.free_space(),
                    needed,
                    within_budget,
                    &candidates,
                ))
            })
            .await
            .map_err(|e| NoRoom {
                needed,
                why: e.to_string(),
            })?;
        let victims = plan.map_err(|why| NoRoom { needed, why })?;
        for victim in victims {
            info!(video = %victim.short(), for_video = %video.short(), "evicting to make room");
            if let Err(e) = self.remove(victim).await {
                warn!(video = %victim.short(), error = %e, "cannot evict");
            }
        }
        Ok(())
    }

    /// Deletes `video` from this node (`DELETE /videos/{id}`), pinned or not; a running fetch
    /// of it must end first. Its fragments other videos list stay.
    pub async fn delete_video(&self, video: VideoId) -> Result<Removed, ServiceError> {
        if self.fetches.running(&video) {
            return Err(ServiceError::FetchRunning(video));
        }
        self.remove(video)
            .await?
            .ok_or(ServiceError::NoManifest(video))
    }

    /// Collects the store's garbage and evicts the least recently used evictable videos while
    /// the store holds more than its budget.
    pub async fn tidy(&self) -> Result<(), ServiceError> {
        let (space, fetches) = (self.space, self.fetches.clone());
        let victims = self
            .store
            .call(move |s| {
                s.collect_garbage(&|v: &VideoId| fetches.running(v))?;
                let candidates = s.evictable(&|v: &VideoId| fetches.running(v));
                let usage = s.usage()?;
                // Within the budget with nothing more to come; the free-space reserve is only
                // enforced when something would be written.
                let unbounded_free = None;
                Ok(to_evict(space, usage, unbounded_free, 0, true, &candidates)
                    .unwrap_or_else(|_| candidates.iter().map(|c| c.video).collect()))
            })
            .await?;
        for victim in victims {
            info!(video = %victim.short(), "evicting: the store is over its budget (--max-store)");
            self.remove(victim).await?;
        }
        Ok(())
    }

    /// Removes `video` from the store and withdraws it from the swarm.
    async fn remove(&self, video: VideoId) -> Result<Option<Removed>, ServiceError> {
        if self.store.manifest(&video).is_none() {
            return Ok(self.store.call(move |s| s.remove_video(&video)).await?);
        }
        let removed = self.store.call(move |s| s.remove_video(&video)).await?;
        if let Some(removed) = &removed {
            let mut keys = vec![manifest_key(&video)];
            keys.extend(removed.fragments.iter().map(fragment_key));
            // The store's removal stands whatever the swarm says: a node alone has no one to
            // tell, and a stopped swarm nothing to withdraw.
            if let Err(e) = self.client.stop_providing(keys).await {
                debug!(error = %e, "cannot stop providing a removed video");
            }
            let mut withdrawal = fetch::announcement(&self.client, &self.store, video, vec![]);
            withdrawal.manifest = false;
            withdrawal.named = None;
            withdrawal.withdrawn = Some(removed.fragments.clone());
            if let Err(e) = self.client.announce(withdrawal).await {
                debug!(error = %e, "cannot announce a removed video's withdrawal");
            }
            info!(video = %video.short(), bytes = removed.bytes, fragments = removed.fragments.len(), "removed");
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use vidswarm_proto::Hash;

    fn c(n: u8, frees: u64) -> Evictable {
        Evictable {
            video: VideoId(Hash::of(&[n])),
            last_used: SystemTime::UNIX_EPOCH + Duration::from_secs(n.into()),
            frees,
        }
    }

    const SPACE: SpaceConfig = SpaceConfig {
        max_store: 1000,
        min_free: 100,
        resume_every: 0,
    };

    #[test]
    fn nothing_is_evicted_when_the_bytes_fit() {
        let all = [c(1, 500)];
        assert_eq!(
            to_evict(SPACE, 200, Some(10_000), 300, true, &all),
            Ok(vec![])
        );
    }

    #[test]
    fn the_least_recently_used_go_first_and_no_more_than_needed() {
        let all = [c(1, 300), c(2, 300), c(3, 300)];
        let got = to_evict(SPACE, 900, Some(10_000), 500, true, &all).unwrap();
        assert_eq!(got, vec![all[0].video, all[1].video]);
    }

    #[test]
    fn a_pinned_fetch_ignores_the_budget_but_not_the_free_space_reserve() {
        assert_eq!(
            to_evict(SPACE, 5000, Some(10_000), 500, false, &[]),
            Ok(vec![])
        );
        let err = to_evict(SPACE, 0, Some(550), 500, false, &[]).unwrap_err();
        assert!(err.contains("--min-free"), "{err}");
        // Evicting frees disk space too.
        let all = [c(1, 100)];
        assert_eq!(
            to_evict(SPACE, 100, Some(550), 500, false, &all),
            Ok(vec![all[0].video])
        );
    }

    #[test]
    fn nothing_is_evicted_when_even_everything_would_not_make_room() {
        let all = [c(1, 100)];
        let err = to_evict(SPACE, 2000, Some(10_000), 10, true, &all).unwrap_err();
        assert!(err.contains("--max-store"), "{err}");
    }

    #[test]
    fn unknown_free_space_checks_the_budget_only() {
        assert_eq!(to_evict(SPACE, 0, None, 900, true, &[]), Ok(vec![]));
    }
}
