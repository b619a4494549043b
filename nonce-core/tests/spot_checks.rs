//! Spot checks at their edges: a checker that holds a check without finishing it, a window
//! that ends at the top of a 64-bit space, and share bits for a target with no leading zero.

mod common;

use common::{launched, secret, Voices};
use nonce_core::job::{Input, Job, JobConfig, Output};
use protocol::{
    verify, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, ShardId, ShardProgress, WorkerId,
};
use std::collections::HashMap;
use std::time::Duration;

const JOB: JobId = JobId(11);
const BITS: u32 = 4;

fn shares(p: &Puzzle, r: NonceRange) -> Vec<u64> {
    (r.start..r.end).map(|n| n as u64).filter(|&n| verify(p, n).leading_zeros >= BITS).collect()
}

/// Every `Assign` in `out`: worker -> (shard, epoch, range).
fn assigns(out: &[Output]) -> Vec<(WorkerId, ShardId, u64, NonceRange)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { worker, command: Command::Assign { shard, epoch, range, .. }, .. } => {
                Some((worker.clone(), *shard, *epoch, *range))
            }
            _ => None,
        })
        .collect()
}

fn heartbeat(shards: Vec<ShardProgress>) -> EventBody {
    EventBody::Heartbeat { shards, rate: 1e6, best: None }
}

fn segment(shard: ShardId, epoch: u64, from: u128, to: u128, shares: Vec<u64>) -> ShardProgress {
    ShardProgress { shard, epoch, from, watermark: to, found: vec![], shares }
}

#[test]
fn a_check_its_checker_holds_without_finishing_is_given_out_again() {
    let puzzle = Puzzle::append(b"spot".to_vec(), Encoding::Be32, 30).expect("valid");
    let mut cfg =
        JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, NonceRange::new(0, 3 << 20), 3);
    cfg.share_bits = BITS;
    cfg.spot_check = 1.0;
    let grace = cfg.stall_timeout;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    let mut own: HashMap<WorkerId, (ShardId, u64, NonceRange)> = HashMap::new();
    for worker in &w {
        let out = job.handle(Duration::from_millis(100), voices.hello(JOB, worker));
        for (to, shard, epoch, range) in assigns(&out) {
            own.insert(to, (shard, epoch, range));
        }
    }
    assert_eq!(own.len(), 3, "each worker has a shard");
    // The first worker proves 256 nonces: at fraction 1 every window of them is checked by
    // one of the other two.
    let (shard, epoch, range) = own[&w[0]];
    let proven = NonceRange::new(range.start, range.start + 256);
    let body = heartbeat(vec![segment(shard, epoch, proven.start, proven.end, shares(&puzzle, proven))]);
    let out = job.handle(Duration::from_secs(1), voices.say(JOB, &w[0], body));
    let checks: Vec<_> = assigns(&out).into_iter().filter(|(to, ..)| *to != w[0]).collect();
    assert!(!checks.is_empty(), "windows of the proven segment go out for checking: {out:?}");
    // Every worker heartbeats each second; the checkers mention their checks but never
    // progress on them (a checker sitting on its work, or one that never gets to it).
    let mut held: HashMap<ShardId, (WorkerId, u64)> =
        checks.iter().map(|(to, id, e, _)| (*id, (to.clone(), *e))).collect();
    let mut given_again = Vec::new();
    let mut t = 2;
    while Duration::from_secs(t) < grace * 6 && given_again.is_empty() {
        for worker in &w {
            let (s, e, r) = own[worker];
            let mut segs =
                vec![segment(s, e, r.start.max(proven.end * u128::from(*worker == w[0])), r.start, vec![])];
            if *worker == w[0] {
                segs = vec![segment(s, e, proven.end, proven.end, vec![])];
            }
            for (id, (holder, he)) in &held {
                if holder == worker {
                    let window = checks.iter().find(|c| c.1 == *id).map(|c| c.3).expect("a check");
                    segs.push(segment(*id, *he, window.start, window.start, vec![]));
                }
            }
            let out = job.handle(Duration::from_secs(t), voices.say(JOB, worker, heartbeat(segs)));
            for (to, id, e, _) in assigns(&out) {
                if let Some(h) = held.get_mut(&id) {
                    assert_ne!(e, h.1, "a check given out again has a new epoch");
                    given_again.push((id, Duration::from_secs(t)));
                    *h = (to, e);
                }
            }
        }
        t += 1;
    }
    let (_, at) = given_again.first().copied().expect("a check held unfinished is given out again");
    assert!(at > grace * 4, "not before four grace periods ({at:?})");
    assert!(job.status().verification.suspects.is_empty(), "holding a check is no proof of lying");
}

#[test]
fn a_window_ending_at_the_top_of_a_64_bit_space_is_checked_to_its_last_nonce() {
    // A lone worker: the coordinator checks the window itself. The window is the whole
    // range, 2^64 - 64 .. 2^64, and the worker leaves out its last share.
    let puzzle = Puzzle::append(b"top".to_vec(), Encoding::Be64, 40).expect("valid");
    let range = NonceRange::new((1u128 << 64) - 64, 1u128 << 64);
    let all = shares(&puzzle, range);
    assert!(!all.is_empty(), "the window holds shares to hide");
    let mut cfg = JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, range, 1);
    cfg.share_bits = BITS;
    cfg.spot_check = 1.0;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    let out = job.handle(Duration::from_millis(100), voices.hello(JOB, &w[0]));
    let (_, shard, epoch, r) = assigns(&out).into_iter().next().expect("assigned");
    assert_eq!(r, range);
    let hidden = all[..all.len() - 1].to_vec();
    let body = heartbeat(vec![segment(shard, epoch, range.start, range.end, hidden)]);
    job.handle(Duration::from_secs(1), voices.say(JOB, &w[0], body));
    let v = job.status().verification;
    assert_eq!(v.spot_checks, 1);
    assert_eq!(v.suspects.len(), 1, "the hidden share is found: {v:?}");
    assert!(v.suspects[0].reason.contains("not reported"), "{:?}", v.suspects[0].reason);
}

#[test]
fn a_target_without_leading_zero_bits_still_gets_one_share_bit() {
    // nBits 0x2100ffff: a target whose first bit is already one (easier than regtest's).
    let layout = protocol::Layout::Header { header: vec![0u8; 80] };
    let puzzle = Puzzle::new(layout, protocol::Target::Compact(0x2100_ffff)).expect("a valid target");
    assert_eq!(puzzle.max_share_bits(), 0, "a target with no leading zero bit");
    let cfg = JobConfig::new(JOB, secret(), puzzle.clone(), Mode::First, puzzle.space(), 1);
    assert_eq!(cfg.share_bits, 1, "at least one bit: a share is never every nonce");
    let puzzle = Puzzle::append(b"easy".to_vec(), Encoding::Be32, 0).expect("difficulty 0 is a puzzle");
    let cfg = JobConfig::new(JOB, secret(), puzzle.clone(), Mode::First, puzzle.space(), 1);
    assert_eq!(cfg.share_bits, 1, "at least one bit: a share is never every nonce");
}

#[test]
fn a_checker_caught_lying_leaves_its_check_to_another_worker() {
    let puzzle = Puzzle::append(b"spot".to_vec(), Encoding::Be32, 30).expect("valid");
    let mut cfg =
        JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, NonceRange::new(0, 3 << 20), 3);
    cfg.share_bits = BITS;
    cfg.spot_check = 1.0;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    let mut own: HashMap<WorkerId, (ShardId, u64, NonceRange)> = HashMap::new();
    for worker in &w {
        let out = job.handle(Duration::from_millis(100), voices.hello(JOB, worker));
        for (to, shard, epoch, range) in assigns(&out) {
            own.insert(to, (shard, epoch, range));
        }
    }
    let (shard, epoch, range) = own[&w[0]];
    let proven = NonceRange::new(range.start, range.start + 64);
    let body = heartbeat(vec![segment(shard, epoch, proven.start, proven.end, shares(&puzzle, proven))]);
    let out = job.handle(Duration::from_secs(1), voices.say(JOB, &w[0], body));
    let (checker, id, check_epoch, window) =
        assigns(&out).into_iter().find(|(to, ..)| *to != w[0]).expect("a check goes out");
    // The checker answers with a share that is none (its hash lacks the bits).
    let bogus = (window.start as u64..window.end as u64)
        .find(|&n| verify(&puzzle, n).leading_zeros < BITS)
        .expect("a nonce that is no share");
    let body = heartbeat(vec![segment(id, check_epoch, window.start, window.end, vec![bogus])]);
    let out = job.handle(Duration::from_secs(2), voices.say(JOB, &checker, body));
    let v = job.status().verification;
    assert_eq!(v.suspects.iter().map(|s| &s.worker).collect::<Vec<_>>(), vec![&checker], "{v:?}");
    let again: Vec<_> = assigns(&out).into_iter().filter(|(to, i, ..)| *i == id && *to != checker).collect();
    assert!(!again.is_empty(), "the claimant's window goes to another worker: {out:?}");
    assert_eq!(again[0].3, window);
}

#[test]
fn a_lone_fast_worker_cannot_make_the_coordinator_hash_more_than_its_budget() {
    // At fraction 1 every window of a lone worker's claims would be searched by the
    // coordinator itself, on the arbiter all jobs share: 2^21 claimed at once is ~0.4 s of
    // hashing there. It searches 2^20 a period at most; the rest waits.
    let bits = 10;
    let puzzle = Puzzle::append(b"budget".to_vec(), Encoding::Be32, 40).expect("valid");
    let range = NonceRange::new(0, 1 << 22);
    let mut cfg = JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, range, 1);
    cfg.share_bits = bits;
    cfg.spot_check = 1.0;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    let out = job.handle(Duration::from_millis(100), voices.hello(JOB, &w[0]));
    let (_, shard, epoch, r) = assigns(&out).into_iter().next().expect("assigned");
    let honest = |r: NonceRange| -> Vec<u64> {
        (r.start..r.end).map(|n| n as u64).filter(|&n| verify(&puzzle, n).leading_zeros >= bits).collect()
    };
    let first = NonceRange::new(r.start, r.start + (1 << 21));
    let body = heartbeat(vec![segment(shard, epoch, first.start, first.end, honest(first))]);
    job.handle(Duration::from_secs(1), voices.say(JOB, &w[0], body));
    let at_once = job.status().verification.spot_checked_nonces;
    assert!(at_once > 0, "some of it is checked at once");
    assert!(at_once <= 1 << 20, "{at_once} nonces hashed by the coordinator at once");
    // A period later, the next claim lets it check more.
    let next = NonceRange::new(first.end, first.end + 4096);
    let body = heartbeat(vec![segment(shard, epoch, first.end, next.end, honest(next))]);
    job.handle(Duration::from_secs(6), voices.say(JOB, &w[0], body));
    let later = job.status().verification.spot_checked_nonces;
    assert!(later > at_once && later <= 2 << 20, "{at_once} then {later}");
    assert!(job.status().verification.suspects.is_empty(), "an honest worker");
}
