//! What became of a download's chunk requests, counted: the end-of-fetch summary a person (or a
//! benchmark) reads to see where a slow fetch spent its asking.

use std::fmt;
use std::time::Duration;

use super::{ChunkRequest, Outcome};

/// The log target of one line per answered chunk request: to whom, how long it took, what came
/// back, named as the tally counts it (`VIDSWARM_LOG=warn,vidswarm_requests=debug`; the line's
/// own time is when the answer came). Where a swarm's request time goes.
pub const REQUESTS: &str = "vidswarm_requests";

/// What an answer counts as: the one naming shared by the tally and the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stored,
    /// A chunk had before it came (the end game's second answers).
    Redundant,
    Declined,
    Busy,
    NotHeld,
    Failed,
    BadBytes,
}

impl Kind {
    /// The kind of `outcome`; `already`: the chunk was had before it came.
    fn of(outcome: &Outcome, already: bool) -> Self {
        match outcome {
            Outcome::Stored if !already => Kind::Stored,
            Outcome::Stored | Outcome::Redundant => Kind::Redundant,
            Outcome::Declined { .. } => Kind::Declined,
            Outcome::Busy => Kind::Busy,
            Outcome::NotHeld => Kind::NotHeld,
            Outcome::Failed(_) => Kind::Failed,
            Outcome::BadBytes(_) => Kind::BadBytes,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Stored => "stored",
            Kind::Redundant => "redundant",
            Kind::Declined => "declined",
            Kind::Busy => "busy",
            Kind::NotHeld => "not_held",
            Kind::Failed => "failed",
            Kind::BadBytes => "bad_bytes",
        }
    }
}

/// Logs `outcome` of `req` to [`REQUESTS`]; `already`: the chunk was had before it came.
pub(super) fn log_answer(req: &ChunkRequest, outcome: &Outcome, already: bool, took: Duration) {
    if !tracing::enabled!(target: REQUESTS, tracing::Level::DEBUG) {
        return;
    }
    let reason = match outcome {
        Outcome::Failed(r) | Outcome::BadBytes(r) => r.as_str(),
        _ => "",
    };
    tracing::debug!(
        target: REQUESTS,
        peer = %req.peer,
        fragment = req.fragment,
        chunk = req.chunk,
        took_ms = took.as_millis() as u64,
        kind = Kind::of(outcome, already).name(),
        reason,
        "answered"
    );
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Chunks verified and written.
    pub stored: u64,
    /// Answers that came after the chunk was had (the end game's second requests).
    pub redundant: u64,
    pub declined: u64,
    pub busy: u64,
    pub not_held: u64,
    /// Timeouts and broken streams.
    pub failed: u64,
    pub bad_bytes: u64,
    /// Peers not asked again after too many failures.
    pub gave_up: u64,
    /// From asking to the verified answer, over the stored chunks.
    pub wait_total: Duration,
    pub wait_max: Duration,
}

impl Tally {
    pub(super) fn count(&mut self, outcome: &Outcome, already: bool, took: Duration) {
        match Kind::of(outcome, already) {
            Kind::Stored => {
                self.stored += 1;
                self.wait_total += took;
                self.wait_max = self.wait_max.max(took);
            }
            Kind::Redundant => self.redundant += 1,
            Kind::Declined => self.declined += 1,
            Kind::Busy => self.busy += 1,
            Kind::NotHeld => self.not_held += 1,
            Kind::Failed => self.failed += 1,
            Kind::BadBytes => self.bad_bytes += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mean = self.wait_total.as_millis() / u128::from(self.stored.max(1));
        write!(
            f,
            "stored={} redundant={} declined={} busy={} not_held={} failed={} bad={} gave_up={} \
             wait_mean_ms={} wait_max_ms={}",
            self.stored,
            self.redundant,
            self.declined,
            self.busy,
            self.not_held,
            self.failed,
            self.bad_bytes,
            self.gave_up,
            mean,
            self.wait_max.as_millis()
        )
    }
}

/// What a download is waiting for at one moment: the per-second view a person (or a benchmark)
/// reads to see why a fetch asks for less than its links could carry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub in_flight: usize,
    /// Of those, asked of holders of the whole fragment.
    pub at_whole: usize,
    /// Chunks not handed out yet.
    pub todo: usize,
    /// Of those: no peer known to have them.
    pub no_holder: usize,
    /// Held, but every holder has its fill of our requests (or cools off after `Busy`, or was
    /// given up on).
    pub holders_full: usize,
    /// Held by a peer with room, but it declined them lately.
    pub declined: usize,
    /// Peers with their fill of our requests in flight.
    pub peers_full: usize,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in_flight={} at_whole={} todo={} no_holder={} holders_full={} declined={} peers_full={}",
            self.in_flight,
            self.at_whole,
            self.todo,
            self.no_holder,
            self.holders_full,
            self.declined,
            self.peers_full
        )
    }
}
