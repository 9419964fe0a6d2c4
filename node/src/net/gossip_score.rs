//! Gossipsub peer scoring, tuned so that only misbehaviour costs: a peer whose announcements the
//! node rejects (`MessageAcceptance::Reject`) loses its mesh place, then its gossip, then is not
//! heard at all. Nothing here penalises an honest peer of a small or quiet swarm: no penalty for
//! delivering few messages (announcements come every 15 s, not in a steady stream) and none for
//! sharing an IP address (every node of a compose swarm or a loopback test does).

use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

/// Score per rejected announcement, squared by count (gossipsub's P4): one costs 20, two 80,
/// three 180. The thresholds below are gossipsub's defaults: below -10 no gossip is exchanged
/// with the peer, below -50 the node publishes nothing to it, below -80 everything it sends is
/// ignored. A peer's positive score is capped at `POSITIVE_CAP`, so at most three rejected
/// messages separate a well-behaved peer from an ignored one.
pub const REJECTED_WEIGHT: f64 = -20.0;
/// How long the count of rejected messages takes to halve: a peer that sent one by mistake (a
/// bug, a newer version) is heard fully again after a few minutes.
pub const REJECTED_HALF_LIFE: Duration = Duration::from_secs(60);
/// The most a peer can earn by delivering announcements first (P2) and by time in the mesh
/// (P1): enough to order honest peers, too little to buy room for rejected messages.
pub const POSITIVE_CAP: f64 = 10.0;

const DECAY_INTERVAL: Duration = Duration::from_secs(1);

/// The per-interval factor that halves a counter in `half_life`.
fn decay(half_life: Duration) -> f64 {
    0.5f64.powf(DECAY_INTERVAL.as_secs_f64() / half_life.as_secs_f64())
}

pub fn params(topic: TopicHash) -> (PeerScoreParams, PeerScoreThresholds) {
    let topic_params = TopicScoreParams {
        topic_weight: 1.0,
        // P1: up to 5 for a minute in the mesh.
        time_in_mesh_weight: 1.0,
        time_in_mesh_quantum: Duration::from_secs(12),
        time_in_mesh_cap: 5.0,
        // P2: up to 5 for announcements delivered first.
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: decay(Duration::from_secs(60)),
        first_message_deliveries_cap: 10.0,
        // P3, P3b: off. A mesh peer of a quiet swarm delivers few messages, rightly.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: rejected messages.
        invalid_message_deliveries_weight: REJECTED_WEIGHT,
        invalid_message_deliveries_decay: decay(REJECTED_HALF_LIFE),
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        topic_score_cap: POSITIVE_CAP,
        // No application score, and no IP colocation penalty (compose, loopback, NAT).
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        decay_interval: DECAY_INTERVAL,
        ..PeerScoreParams::default()
    };
    params.topics.insert(topic, topic_params);
    (params, PeerScoreThresholds::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_parameters_are_valid_and_three_rejections_reach_the_graylist() {
        let (params, thresholds) = params(TopicHash::from_raw("t"));
        params.validate().unwrap();
        thresholds.validate().unwrap();
        let worst_after = |n: f64| POSITIVE_CAP + REJECTED_WEIGHT * n * n;
        assert!(worst_after(1.0) > thresholds.publish_threshold);
        assert!(worst_after(3.0) < thresholds.graylist_threshold);
        let halves = decay(REJECTED_HALF_LIFE).powf(REJECTED_HALF_LIFE.as_secs_f64());
        assert!((halves - 0.5).abs() < 1e-9);
    }
}
