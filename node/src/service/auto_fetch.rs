//! Which announced videos auto-fetch takes on: at most `max_running` at once, and a video whose
//! fetch failed is left alone for a while, twice as long after each further failure. Without
//! these, every announcement of a video no peer can deliver (a junk id, a disk that is full)
//! started the same failing fetch again, and a burst of announcements ran them all at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use vidswarm_proto::VideoId;

/// How auto-fetch paces itself.
#[derive(Debug, Clone)]
pub struct AutoFetchConfig {
    /// Auto-fetches running at once; an announcement beyond waits for the next one.
    pub max_running: usize,
    /// How long a video is left alone after its first failed auto-fetch.
    pub first_backoff: Duration,
    /// The longest it is left alone, however often it failed.
    pub max_backoff: Duration,
}

/// Two: a node catching up on many videos spreads its links over two at a time and finishes
/// each sooner, and a flood of announcements costs at most two fetches' memory and files.
pub const DEFAULT_MAX_AUTO_FETCHES: usize = 2;
/// 30 s, two re-announcement periods: a peer that was briefly unreachable is tried again soon.
pub const AUTO_FETCH_FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// 30 min: a video that keeps failing costs a few fetches an hour.
pub const AUTO_FETCH_MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// Videos whose failures are remembered; beyond, the one whose back-off ends first is forgotten.
pub const MAX_BACKED_OFF: usize = 4096;

impl Default for AutoFetchConfig {
    fn default() -> Self {
        Self {
            max_running: DEFAULT_MAX_AUTO_FETCHES,
            first_backoff: AUTO_FETCH_FIRST_BACKOFF,
            max_backoff: AUTO_FETCH_MAX_BACKOFF,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
}

#[derive(Clone)]
pub struct AutoFetch {
    config: AutoFetchConfig,
    slots: Arc<Semaphore>,
    backoff: Arc<Mutex<HashMap<VideoId, Backoff>>>,
}

/// One running auto-fetch: its slot, given back when dropped. Say how the fetch ended with
/// [`AutoSlot::finished`]; a fetch dropped without an outcome (the node stopping) counts as none.
pub struct AutoSlot {
    video: VideoId,
    owner: AutoFetch,
    _slot: OwnedSemaphorePermit,
}

impl AutoFetch {
    pub fn new(config: AutoFetchConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.max_running.max(1))),
            config,
            backoff: Arc::default(),
        }
    }

    /// A slot for auto-fetching `video` now, or `None` when it is backing off or every slot is
    /// taken (a later announcement asks again).
    pub fn try_start(&self, video: VideoId, now: Instant) -> Option<AutoSlot> {
        if self.backing_off(&video, now) {
            return None;
        }
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(AutoSlot {
            video,
            owner: self.clone(),
            _slot: slot,
        })
    }

    /// Whether `video` failed recently enough to be left alone at `now`.
    pub fn backing_off(&self, video: &VideoId, now: Instant) -> bool {
        self.lock().get(video).is_some_and(|b| now < b.until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VideoId, Backoff>> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, video: VideoId, ok: bool, now: Instant) {
        let mut map = self.lock();
        if ok {
            map.remove(&video);
            return;
        }
        let failures = map.get(&video).map_or(0, |b| b.failures).saturating_add(1);
        let wait = self
            .config
            .first_backoff
            .saturating_mul(1u32 << (failures - 1).min(20))
            .min(self.config.max_backoff);
        if map.len() >= MAX_BACKED_OFF && !map.contains_key(&video) {
            map.retain(|_, b| now < b.until);
            if map.len() >= MAX_BACKED_OFF {
                if let Some(first) = map.iter().min_by_key(|(_, b)| b.until).map(|(v, _)| *v) {
                    map.remove(&first);
                }
            }
        }
        map.insert(
            video,
            Backoff {
                failures,
                until: now + wait,
            },
        );
    }
}

impl AutoSlot {
    pub fn finished(self, ok: bool) {
        self.owner.record(self.video, ok, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidswarm_proto::Hash;

    fn video(n: u8) -> VideoId {
        VideoId(Hash::of(&[n]))
    }

    fn auto(max_running: usize) -> AutoFetch {
        AutoFetch::new(AutoFetchConfig {
            max_running,
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
        })
    }

    #[test]
    fn at_most_max_running_at_once_and_a_slot_comes_back_when_dropped() {
        let auto = auto(2);
        let now = Instant::now();
        let a = auto.try_start(video(1), now).unwrap();
        let _b = auto.try_start(video(2), now).unwrap();
        assert!(auto.try_start(video(3), now).is_none());
        a.finished(true);
        assert!(auto.try_start(video(3), now).is_some());
    }

    #[test]
    fn a_failed_video_backs_off_doubling_up_to_the_most_and_a_success_clears_it() {
        let auto = auto(1);
        let v = video(1);
        let t0 = Instant::now();
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            auto.record(v, false, now);
            let until = auto.lock()[&v].until;
            waits.push((until - now).as_secs());
            assert!(auto.try_start(v, now).is_none());
            assert!(auto
                .try_start(v, until - Duration::from_millis(1))
                .is_none());
            now = until;
            let slot = auto
                .try_start(v, now)
                .expect("tried again once the wait is over");
            drop(slot); // stopped: no outcome, the back-off stays as it was
        }
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
        auto.record(v, true, now);
        assert!(!auto.backing_off(&v, now));
        auto.record(v, false, now);
        assert_eq!((auto.lock()[&v].until - now).as_secs(), 30);
    }

    #[test]
    fn the_remembered_failures_are_bounded() {
        let auto = auto(1);
        let now = Instant::now();
        for i in 0..(MAX_BACKED_OFF + 10) {
            let v = VideoId(Hash::of(&i.to_le_bytes()));
            auto.record(v, false, now + Duration::from_millis(i as u64));
        }
        assert_eq!(auto.lock().len(), MAX_BACKED_OFF);
        // The newest failure is remembered; the ones whose wait ends first went.
        let newest = VideoId(Hash::of(&(MAX_BACKED_OFF + 9).to_le_bytes()));
        assert!(auto.backing_off(&newest, now));
        assert!(!auto
            .lock()
            .contains_key(&VideoId(Hash::of(&0usize.to_le_bytes()))));
    }
}
