//! The upload rate limit (`--max-upload-rate`): each chunk answer is given a start time so that
//! the answers leave at no more than the rate on average. Times are handed out in the order the
//! answers are ready, and a peer has one chunk request served at a time (`uploads.rs`), so peers
//! asking at once share the limited upload in turn, whatever each keeps in flight.

use std::time::{Duration, Instant};

pub(super) struct Pacer {
    bytes_per_sec: f64,
    /// When the bytes reserved so far have all left at the rate.
    free_at: Instant,
}

impl Pacer {
    pub fn new(bytes_per_sec: u64, now: Instant) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            free_at: now,
        }
    }

    /// How long an answer of `bytes` ready at `now` waits before it is sent. The first answer
    /// after an idle spell goes at once; an idle spell earns no burst.
    pub fn reserve(&mut self, bytes: usize, now: Instant) -> Duration {
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        start - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_spaced_at_the_rate_and_idle_time_is_not_saved_up() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1 << 20, t0);
        assert_eq!(p.reserve(256 << 10, t0), Duration::ZERO);
        assert_eq!(p.reserve(256 << 10, t0), Duration::from_millis(250));
        assert_eq!(p.reserve(512 << 10, t0), Duration::from_millis(500));
        // At t0 + 1 s everything reserved has left: the next goes at once.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(1 << 20, later), Duration::ZERO);
        assert_eq!(p.reserve(1, later), Duration::from_secs(1));
    }
}
