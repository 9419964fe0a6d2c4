//! The schedule's rules, step by step, with no I/O.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::*;
use crate::fetch::test_support::{bytes, manifest, CS};

/// A download whose peers take `per_peer` requests from the first: for the rules other than the
/// window's own growth.
fn fixed(m: &Manifest, missing: &[u32], per_peer: usize, now: Instant) -> Download {
    let mut d = Download::new(m, missing, per_peer, now);
    d.first_window = d.per_peer;
    d
}

/// One fragment of `chunks` full chunks, held by `holders` fresh peers.
fn one_fragment(chunks: usize, holders: usize, per_peer: usize) -> (Download, Vec<PeerId>) {
    let m = manifest(&[bytes(1, chunks * CS as usize)]);
    let mut d = fixed(&m, &[0], per_peer, Instant::now());
    let peers: Vec<PeerId> = (0..holders).map(|_| PeerId::random()).collect();
    d.add_holders(0, peers.clone());
    (d, peers)
}

fn count(requests: &[ChunkRequest], peer: PeerId) -> usize {
    requests.iter().filter(|r| r.peer == peer).count()
}

#[test]
fn one_fragment_is_spread_over_several_holders() {
    let (mut d, peers) = one_fragment(8, 2, 4);
    let out = d.hand_out(Instant::now());
    assert_eq!(out.len(), 8);
    assert_eq!(count(&out, peers[0]), 4);
    assert_eq!(count(&out, peers[1]), 4);
    let mut chunks: Vec<u32> = out.iter().map(|r| r.chunk).collect();
    chunks.sort();
    assert_eq!(chunks, (0..8).collect::<Vec<_>>());
    assert!(out
        .iter()
        .all(|r| r.offset == u64::from(r.chunk) * u64::from(CS) && r.len == CS));
}

#[test]
fn the_last_chunk_is_as_long_as_what_is_left() {
    let m = manifest(&[bytes(2, CS as usize + 7)]);
    let mut d = fixed(&m, &[0], 4, Instant::now());
    d.add_holders(0, [PeerId::random()]);
    let mut out = d.hand_out(Instant::now());
    out.sort_by_key(|r| r.chunk);
    assert_eq!(out.iter().map(|r| r.len).collect::<Vec<_>>(), [CS, 7]);
}

#[test]
fn rarer_fragments_are_handed_out_first() {
    let m = manifest(&[bytes(3, CS as usize), bytes(4, CS as usize)]);
    let mut d = fixed(&m, &[0, 1], 1, Instant::now());
    let (common, rare_holder) = (PeerId::random(), PeerId::random());
    d.add_holders(0, [common, rare_holder]);
    d.add_holders(1, [common]);
    // Fragment 1 has one holder: it goes first, to that holder; fragment 0 to the other.
    let out = d.hand_out(Instant::now());
    assert_eq!(out[0].fragment, 1);
    assert_eq!(out[0].peer, common);
    assert_eq!(out[1].fragment, 0);
    assert_eq!(out[1].peer, rare_holder);
}

#[test]
fn the_end_game_asks_a_second_holder_and_the_first_answer_wins() {
    let (mut d, peers) = one_fragment(2, 2, 2);
    let now = Instant::now();
    let out = d.hand_out(now);
    // Two chunks, one per holder, then each outstanding chunk also of the other holder.
    assert_eq!(out.len(), 4, "{out:?}");
    for chunk in 0..2 {
        let askees: Vec<PeerId> = out
            .iter()
            .filter(|r| r.chunk == chunk)
            .map(|r| r.peer)
            .collect();
        assert_eq!(askees.len(), 2);
        assert_ne!(askees[0], askees[1]);
    }
    let first = out
        .iter()
        .find(|r| r.chunk == 0 && r.peer == peers[0])
        .unwrap();
    let second = out
        .iter()
        .find(|r| r.chunk == 0 && r.peer == peers[1])
        .unwrap();
    assert_eq!(
        d.on_outcome(first, Outcome::Stored, now),
        Verdict::Gained {
            bytes: CS,
            complete: false
        }
    );
    // The duplicate counts for nothing, and a failure of it is not retried.
    assert_eq!(d.on_outcome(second, Outcome::Stored, now), Verdict::Nothing);
    assert_eq!(d.received()[&peers[0]], u64::from(CS));
    assert!(!d.received().contains_key(&peers[1]));
    let c1: Vec<ChunkRequest> = out.iter().filter(|r| r.chunk == 1).cloned().collect();
    assert_eq!(
        d.on_outcome(&c1[0], Outcome::Failed("gone".into()), now),
        Verdict::Nothing
    );
    // Not requeued: chunk 1 is still asked of the other holder.
    assert!(d.unfinished().len() == 1 && d.in_flight() == 1);
    assert_eq!(
        d.on_outcome(&c1[1], Outcome::Stored, now),
        Verdict::Gained {
            bytes: CS,
            complete: true
        }
    );
    assert!(d.is_complete());
    assert_eq!(d.in_flight(), 0);
}

#[test]
fn a_bad_chunk_is_asked_again_of_another_holder_and_its_sender_never_again() {
    // Enough chunks that the end game does not start.
    let (mut d, peers) = one_fragment(40, 2, 4);
    let now = Instant::now();
    let out = d.hand_out(now);
    let from_liar = out.iter().find(|r| r.peer == peers[0]).unwrap().clone();
    let verdict = d.on_outcome(&from_liar, Outcome::BadBytes("flipped".into()), now);
    assert_eq!(
        verdict,
        Verdict::Misbehaved {
            reason: "flipped".into()
        }
    );
    // The liar has room again but is excluded: the chunk goes to the other holder.
    for r in out.iter().filter(|r| r.peer == peers[1]) {
        d.on_outcome(r, Outcome::Stored, now);
    }
    let retry = d.hand_out(now);
    assert!(
        retry
            .iter()
            .any(|r| r.chunk == from_liar.chunk && r.peer == peers[1]),
        "{retry:?}"
    );
    assert!(retry.iter().all(|r| r.peer != peers[0]), "{retry:?}");
}

#[test]
fn a_busy_peer_cools_down_then_is_asked_again() {
    let (mut d, _peers) = one_fragment(1, 1, 1);
    let now = Instant::now();
    let out = d.hand_out(now);
    assert_eq!(d.on_outcome(&out[0], Outcome::Busy, now), Verdict::Nothing);
    assert!(
        d.hand_out(now).is_empty(),
        "asked again before the back-off"
    );
    let later = d.hand_out(now + BUSY_BACKOFF);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].chunk, out[0].chunk);
}

/// A holder may decline a chunk once (it sent it elsewhere a moment ago); asked again after the
/// back-off, it may not: a peer that keeps asking it for every chunk cannot make it decline
/// them to us for ever (`hostile.rs`, the greedy peer).
#[test]
fn a_chunk_declined_once_is_asked_again_without_leave_to_decline() {
    let (mut d, _peers) = one_fragment(1, 1, 1);
    let now = Instant::now();
    let out = d.hand_out(now);
    assert!(out[0].may_decline);
    assert_eq!(
        d.on_outcome(&out[0], Outcome::Declined { also: vec![] }, now),
        Verdict::Nothing
    );
    assert!(
        d.hand_out(now).is_empty(),
        "asked again before the back-off"
    );
    let again = d.hand_out(now + DECLINE_BACKOFF);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].chunk, out[0].chunk);
    assert!(!again[0].may_decline);
}

/// A decline that names the fragment's other chunks the holder would decline now: none of
/// them is asked of it until the back-off ends (each would cost a round trip to be declined),
/// the others are; names that are no chunk of the fragment change nothing.
#[test]
fn chunks_a_decline_names_are_not_asked_of_that_holder_for_a_while() {
    let (mut d, peers) = one_fragment(8, 1, 1);
    let now = Instant::now();
    let out = d.hand_out(now);
    let first = out[0].chunk;
    let named: Vec<u32> = (0..8).filter(|k| *k != first).take(3).collect();
    let mut also: Vec<u64> = named
        .iter()
        .map(|k| u64::from(*k) * u64::from(CS))
        .collect();
    also.extend([7, u64::from(CS) * 100, u64::MAX]);
    d.on_outcome(&out[0], Outcome::Declined { also }, now);
    let mut asked = Vec::new();
    for _ in 0..8 {
        let Some(r) = d.hand_out(now).pop() else {
            break;
        };
        assert_eq!(r.peer, peers[0]);
        asked.push(r.chunk);
        d.on_outcome(&r, Outcome::Stored, now);
    }
    asked.sort_unstable();
    let rest: Vec<u32> = (0..8)
        .filter(|k| *k != first && !named.contains(k))
        .collect();
    assert_eq!(asked, rest, "all but the declined and the named");
    let later: Vec<u32> = d
        .hand_out(now + DECLINE_BACKOFF)
        .iter()
        .map(|r| r.chunk)
        .collect();
    assert!(!later.is_empty(), "asked again after the back-off");
    assert!(later.iter().all(|k| *k == first || named.contains(k)));
}

/// A holder that names every chunk in every decline (it sends them all to a greedy peer) keeps
/// each from us once, not for ever: named again, a chunk is asked of it all the same.
#[test]
fn a_chunk_is_kept_from_a_holder_by_name_only_once() {
    let (mut d, _peers) = one_fragment(4, 1, 1);
    let now = Instant::now();
    let every = || (0..4).map(|k| k * u64::from(CS)).collect::<Vec<_>>();
    let first = d.hand_out(now).pop().unwrap();
    d.on_outcome(&first, Outcome::Declined { also: every() }, now);
    assert!(d.hand_out(now).is_empty(), "all named or declined");
    let later = now + DECLINE_BACKOFF;
    let second = d
        .hand_out(later)
        .pop()
        .expect("asked again after the back-off");
    d.on_outcome(&second, Outcome::Declined { also: every() }, later);
    assert!(
        !d.hand_out(later).is_empty(),
        "named a second time: asked anyway"
    );
}

#[test]
fn a_peer_that_keeps_failing_is_given_up_and_the_rest_continue() {
    let (mut d, peers) = one_fragment(1, 2, 1);
    let now = Instant::now();
    let mut gave_up = false;
    for _ in 0..MAX_PEER_FAILURES * 2 {
        let out = d.hand_out(now);
        let Some(r) = out.iter().find(|r| r.peer == peers[0]).cloned() else {
            break;
        };
        for other in out.iter().filter(|o| o.peer != peers[0]) {
            d.on_outcome(other, Outcome::Failed("timeout".into()), now);
        }
        gave_up |= matches!(
            d.on_outcome(&r, Outcome::Failed("timeout".into()), now),
            Verdict::GaveUp { .. }
        );
    }
    assert!(gave_up);
    let out = d.hand_out(now);
    assert!(out.iter().all(|r| r.peer != peers[0]), "{out:?}");
}

#[test]
fn a_peer_without_the_fragment_is_no_longer_a_holder() {
    let (mut d, peers) = one_fragment(2, 2, 1);
    let now = Instant::now();
    let out = d.hand_out(now);
    let r = out.iter().find(|r| r.peer == peers[0]).unwrap().clone();
    d.on_outcome(&r, Outcome::NotHeld, now);
    for o in out.iter().filter(|o| o.peer == peers[1]) {
        d.on_outcome(o, Outcome::Stored, now);
    }
    let again = d.hand_out(now);
    assert!(
        again.iter().all(|x| x.peer == peers[1]) && !again.is_empty(),
        "{again:?}"
    );
}

#[test]
fn the_playback_window_goes_first_in_playback_order_then_rarest_first() {
    let frags: Vec<Vec<u8>> = (0..6).map(|i| bytes(10 + i, CS as usize)).collect();
    let m = manifest(&frags);
    let mut d = fixed(&m, &[0, 1, 2, 3, 4, 5], 1, Instant::now());
    let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
    for i in 0..6u32 {
        // Fragment 5 is the rarest (one holder); the others have all six.
        let holders = if i == 5 {
            vec![peers[0]]
        } else {
            peers.clone()
        };
        d.add_holders(i, holders);
    }
    d.set_playhead(Some(2));
    assert_eq!(&d.order()[..4], &[2, 3, 4, 5]);
    d.set_playhead(None);
    assert_eq!(d.order()[0], 5, "without a viewer, rarest first");
}

#[test]
fn urgent_chunks_go_to_the_holder_that_answers_soonest_and_the_playhead_has_its_own_end_game() {
    let m = manifest(&[bytes(20, 8 * CS as usize), bytes(21, 4 * CS as usize)]);
    let t0 = Instant::now();
    let mut d = fixed(&m, &[0, 1], 8, t0);
    let (fast, slow) = (PeerId::random(), PeerId::random());
    d.add_holders(0, [fast, slow]);
    // Learn their speeds from fragment 0: 2 ms an answer against 200 ms.
    let first = d.hand_out(t0);
    assert!(first.iter().all(|r| r.fragment == 0));
    for r in &first {
        let took = if r.peer == fast { 2 } else { 200 };
        d.on_outcome(
            r,
            Outcome::Stored,
            t0 + std::time::Duration::from_millis(took),
        );
    }
    d.add_holders(1, [fast, slow]);
    d.set_playhead(Some(1));
    let now = t0 + std::time::Duration::from_millis(300);
    let out = d.hand_out(now);
    let urgent: Vec<&ChunkRequest> = out.iter().filter(|r| r.fragment == 1).collect();
    assert!(!urgent.is_empty());
    assert_eq!(
        urgent[0].peer, fast,
        "the first urgent chunk goes to the fast holder"
    );
    // Every chunk of the playhead's fragment is out: each is also asked of the other holder,
    // though far more than the general end game's threshold may be in flight.
    let asked_twice = |c: u32| {
        out.iter()
            .filter(|r| r.fragment == 1 && r.chunk == c)
            .count()
    };
    assert!((0..4).all(|c| asked_twice(c) == 2), "{out:?}");
}

/// `chunks` as a bitmap in `PartialFragment::have`'s layout.
fn bitmap(chunks: &[u32], of: u32) -> Vec<u8> {
    let mut have = vec![false; of as usize];
    for &c in chunks {
        have[c as usize] = true;
    }
    PartialFragment::bitmap(&have).into_vec()
}

#[test]
fn fetching_peers_are_asked_for_what_they_have_and_the_seeder_for_what_nobody_has() {
    let (mut d, peers) = one_fragment(8, 1, 2);
    let (seeder, fetcher) = (peers[0], PeerId::random());
    d.add_partial_holders(0, vec![(fetcher, bitmap(&[1, 2, 5], 8))]);
    let out = d.hand_out(Instant::now());
    let mut from_fetcher: Vec<u32> = out
        .iter()
        .filter(|r| r.peer == fetcher)
        .map(|r| r.chunk)
        .collect();
    from_fetcher.sort();
    assert_eq!(from_fetcher.len(), 2, "{out:?}");
    assert!(from_fetcher.iter().all(|c| [1, 2, 5].contains(c)));
    // The seeder's two requests go to chunks the fetcher does not have.
    let from_seeder: Vec<u32> = out
        .iter()
        .filter(|r| r.peer == seeder)
        .map(|r| r.chunk)
        .collect();
    assert_eq!(from_seeder.len(), 2, "{out:?}");
    assert!(
        from_seeder.iter().all(|c| ![1, 2, 5].contains(c)),
        "{out:?}"
    );
}

#[test]
fn the_seeder_is_asked_for_the_rarest_chunk_of_any_fragment_not_of_the_first_in_order() {
    // Fragment 0 has fewer copies in all, so it comes first in the order; but each of its chunks
    // is held by a fetching peer too, while chunk 3 of fragment 1 is held by the seeder alone.
    let m = manifest(&[bytes(20, 4 * CS as usize), bytes(21, 4 * CS as usize)]);
    let mut d = fixed(&m, &[0, 1], 1, Instant::now());
    let seeder = PeerId::random();
    d.add_holders(0, [seeder]);
    d.add_holders(1, [seeder]);
    d.add_partial_holders(0, vec![(PeerId::random(), bitmap(&[0, 1, 2, 3], 4))]);
    let others: Vec<(PeerId, Vec<u8>)> = (0..3)
        .map(|_| (PeerId::random(), bitmap(&[0, 1, 2], 4)))
        .collect();
    d.add_partial_holders(1, others);
    assert_eq!(d.order(), [0, 1]);
    let out = d.hand_out(Instant::now());
    let to_seeder: Vec<(u32, u32)> = out
        .iter()
        .filter(|r| r.peer == seeder)
        .map(|r| (r.fragment, r.chunk))
        .collect();
    assert_eq!(to_seeder, [(1, 3)], "{out:?}");
}

#[test]
fn a_fetching_peer_without_a_chunk_is_not_asked_for_it_again_but_stays_a_source() {
    let m = manifest(&[bytes(9, 4 * CS as usize)]);
    let mut d = fixed(&m, &[0], 4, Instant::now());
    let fetcher = PeerId::random();
    d.add_partial_holders(0, vec![(fetcher, bitmap(&[0, 1], 4))]);
    let now = Instant::now();
    let out = d.hand_out(now);
    assert_eq!(out.len(), 2, "only the chunks it has: {out:?}");
    let denied = out.iter().find(|r| r.chunk == 0).unwrap();
    assert_eq!(
        d.on_outcome(denied, Outcome::NotHeld, now),
        Verdict::Nothing
    );
    // A stale announcement with the same bits does not bring chunk 0 back.
    d.add_partial_holders(0, vec![(fetcher, bitmap(&[0, 1, 2], 4))]);
    let again = d.hand_out(now);
    assert!(again.iter().all(|r| r.chunk != 0), "{again:?}");
    assert!(
        again.iter().any(|r| r.chunk == 2 && r.peer == fetcher),
        "{again:?}"
    );
}

#[test]
fn progress_lists_the_fragments_begun_with_their_verified_chunks() {
    let m = manifest(&[bytes(10, 3 * CS as usize), bytes(11, CS as usize)]);
    let mut d = fixed(&m, &[0, 1], 8, Instant::now());
    d.add_holders(0, [PeerId::random()]);
    d.add_holders(1, [PeerId::random()]);
    let now = Instant::now();
    let out = d.hand_out(now);
    assert!(d.progress(false).is_empty(), "nothing verified yet");
    let fetching = d.progress(true);
    assert_eq!(fetching.len(), 2, "every fragment, before any chunk");
    assert!(fetching.iter().all(|p| p.have.iter().all(|b| *b == 0)));
    let chunk = |f: u32, c: u32| {
        out.iter()
            .find(|r| r.fragment == f && r.chunk == c)
            .unwrap()
    };
    d.on_outcome(chunk(0, 2), Outcome::Stored, now);
    d.on_outcome(chunk(1, 0), Outcome::Stored, now);
    // Fragment 1 is complete: announced whole, not as progress.
    let progress = d.progress(false);
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].index, 0);
    assert_eq!(progress[0].hash, m.fragments[0].blake3);
    assert!(!progress[0].has(0) && !progress[0].has(1) && progress[0].has(2));
}

#[test]
fn downloads_of_one_fragment_start_at_different_chunks() {
    let m = manifest(&[bytes(12, 64 * CS as usize)]);
    let seeder = PeerId::random();
    let firsts: BTreeSet<u32> = (0..8)
        .map(|_| {
            let mut d = fixed(&m, &[0], 1, Instant::now());
            d.add_holders(0, [seeder]);
            d.hand_out(Instant::now())[0].chunk
        })
        .collect();
    // Eight random starts among 64 chunks: all equal has odds of 64^-7.
    assert!(firsts.len() > 1, "{firsts:?}");
}

#[test]
fn a_video_of_many_fragments_over_many_peers_begins_at_most_max_open_fragments() {
    // 1000 one-chunk fragments, 200 holders of everything with room for 4 requests each: without
    // a bound, 800 fragments would be begun (and their files opened) in the first round.
    let fragments: Vec<Vec<u8>> = (0..1000).map(|i| bytes(i, 100)).collect();
    let m = manifest(&fragments);
    let all: Vec<u32> = (0..1000).collect();
    let mut d = fixed(&m, &all, 4, Instant::now());
    let peers: Vec<PeerId> = (0..200).map(|_| PeerId::random()).collect();
    for i in 0..1000 {
        d.add_holders(i, peers.clone());
    }
    let begun = |out: &[ChunkRequest]| out.iter().map(|r| r.fragment).collect::<BTreeSet<u32>>();
    let now = Instant::now();
    let first = d.hand_out(now);
    assert_eq!(begun(&first).len(), MAX_OPEN_FRAGMENTS);
    // Nothing more is begun while those are open.
    assert!(d.hand_out(now).is_empty());
    // Each one that completes lets one more begin.
    for r in first.iter().take(10) {
        d.on_outcome(r, Outcome::Stored, now);
    }
    let next = d.hand_out(now);
    assert_eq!(begun(&next).len(), 10);
    assert!(begun(&next).is_disjoint(&begun(&first)));
}

#[test]
fn the_tally_counts_what_became_of_each_request() {
    let (mut d, _) = one_fragment(4, 2, 2);
    let t = Instant::now();
    let out = d.hand_out(t);
    assert_eq!(out.len(), 4, "{out:?}");
    let later = t + std::time::Duration::from_millis(300);
    d.on_outcome(&out[0], Outcome::Stored, later);
    d.on_outcome(&out[1], Outcome::Declined { also: vec![] }, later);
    d.on_outcome(&out[2], Outcome::Busy, later);
    d.on_outcome(&out[3], Outcome::Failed("timeout".into()), later);
    // The stored chunk answered again, as an end game's second request would be.
    d.in_flight += 1;
    d.peers.get_mut(&out[0].peer).unwrap().in_flight += 1;
    d.on_outcome(&out[0], Outcome::Stored, later);
    let tally = d.tally();
    assert_eq!(
        (
            tally.stored,
            tally.redundant,
            tally.declined,
            tally.busy,
            tally.failed
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(tally.wait_max, std::time::Duration::from_millis(300));
    assert!(
        tally.to_string().contains("stored=1 redundant=1"),
        "{tally}"
    );
}

#[test]
fn the_snapshot_says_why_chunks_are_left_unasked() {
    // 6 chunks, one whole holder taking 2 at a time, a partial holder with chunk 5.
    let m = manifest(&[bytes(1, 6 * CS as usize), bytes(2, CS as usize)]);
    let t = Instant::now();
    let mut d = fixed(&m, &[0, 1], 2, t);
    let (whole, partial) = (PeerId::random(), PeerId::random());
    d.add_holders(0, [whole]);
    d.add_partial_holders(0, vec![(partial, bitmap(&[5], 6))]);
    let out = d.hand_out(t);
    assert_eq!(
        out.len(),
        3,
        "two to the whole holder, chunk 5 to the partial one: {out:?}"
    );
    let declined = out.iter().find(|r| r.peer == partial).unwrap().clone();
    d.on_outcome(&declined, Outcome::Declined { also: vec![] }, t);
    let snap = d.snapshot(t);
    assert_eq!(snap.in_flight, 2);
    assert_eq!(snap.at_whole, 2);
    assert_eq!(snap.peers_full, 1, "the whole holder has its fill");
    // Fragment 1 has no holder; fragment 0's three left wait for the full holder, and chunk 5,
    // held by the partial holder too, was declined by it.
    assert_eq!(snap.todo, 5);
    assert_eq!(snap.no_holder, 1);
    assert_eq!(snap.holders_full, 3);
    assert_eq!(snap.declined, 1);
    assert!(
        snap.to_string().contains("in_flight=2 at_whole=2 todo=5"),
        "{snap}"
    );
}

#[test]
fn a_peer_s_window_grows_with_what_it_delivers_and_shrinks_when_it_stops() {
    let m = manifest(&[bytes(9, 64 * CS as usize)]);
    let t0 = Instant::now();
    let mut d = Download::new(&m, &[0], 16, t0);
    let peer = PeerId::random();
    d.add_holders(0, [peer]);
    let out = d.hand_out(t0);
    assert_eq!(count(&out, peer), 1, "an unmeasured peer gets one request");
    // Each answer with data widens the window by one while it counts (slow start).
    let mut pending = out;
    let mut now = t0;
    for expect in [2, 4, 8, 16] {
        now += Duration::from_millis(50);
        for r in pending.drain(..) {
            d.on_outcome(&r, Outcome::Stored, now);
        }
        pending = d.hand_out(now);
        assert_eq!(count(&pending, peer), expect, "window after the answers");
    }
    assert_eq!(d.hand_out(now).len(), 0, "at most per_peer in flight");
    // A second later only what came in that second counts: one chunk, and declines, which
    // bring nothing: a window of two.
    now += RATE_WINDOW + Duration::from_millis(1);
    let last = pending.pop().expect("16 in flight");
    for r in pending.drain(..) {
        d.on_outcome(&r, Outcome::Declined { also: vec![] }, now);
    }
    d.on_outcome(&last, Outcome::Stored, now);
    assert_eq!(count(&d.hand_out(now), peer), 2);
}
