//! `Job::space_map`: the picture of the nonce space the dashboard draws is the ledger's own
//! intervals, with each assigned one attributed to the worker holding it from its watermark.

mod common;

use common::{launched, secret, Voices};
use nonce_core::job::{Input, Job, JobConfig, MapState, Output};
use protocol::{
    verify, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, ShardProgress, WorkerId,
};
use std::time::Duration;

const JOB: JobId = JobId(9);

#[test]
fn the_map_is_the_ledger_with_owners_and_watermarks() {
    let puzzle = Puzzle::append(b"map".to_vec(), Encoding::Be32, 40).expect("valid");
    let mut cfg =
        JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, NonceRange::new(0, 1 << 20), 2);
    cfg.share_bits = 8;
    cfg.spot_check = 0.0;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let workers = launched(&job.handle(Duration::ZERO, Input::Start));
    let mut assigned = Vec::new();
    for w in &workers {
        for o in job.handle(Duration::from_secs(1), voices.hello(JOB, w)) {
            if let Output::Send { command: Command::Assign { shard, epoch, range, .. }, .. } = o {
                assigned.push((w.clone(), shard, epoch, range));
            }
        }
    }
    assert_eq!(assigned.len(), 2, "{assigned:?}");
    let (w, shard, epoch, range) = assigned[0].clone();
    let watermark = range.start + 1000;
    // The shares of the segment, by brute force: what an honest worker proves it with.
    let shares: Vec<u64> =
        (range.start as u64..watermark as u64).filter(|&n| verify(&puzzle, n).leading_zeros >= 8).collect();
    let proven = shares.len() as u64;
    let progress = ShardProgress { shard, epoch, from: range.start, watermark, found: vec![], shares };
    let body = EventBody::Heartbeat { shards: vec![progress], rate: 1.0, best: None };
    job.handle(Duration::from_secs(2), voices.say(JOB, &w, body));

    let map = job.space_map(100);
    assert_eq!(map.range, NonceRange::new(0, 1 << 20));
    assert!(!map.truncated);
    // The intervals tile the range in order.
    let mut at = 0;
    for s in &map.intervals {
        assert_eq!(s.range.start, at, "{map:?}");
        at = s.range.end;
    }
    assert_eq!(at, 1 << 20);
    // The worker's searched part is done; the rest of its shard is its, from the watermark.
    assert!(map
        .intervals
        .iter()
        .any(|s| s.state == MapState::Done && s.range == NonceRange::new(range.start, watermark)));
    assert!(map.intervals.iter().any(|s| s.range.start == watermark
        && s.state == MapState::Assigned { worker: w.clone(), shard_start: range.start }));
    let info = job.workers_info(Duration::from_secs(2));
    let a = info.iter().find(|i| i.worker == w).expect("worker a");
    assert_eq!((a.shares, a.health), (proven, nonce_core::job::WorkerHealth::Live), "{a:?}");
    let _: &WorkerId = &a.worker;
    assert_eq!(a.ranges, vec![NonceRange::new(watermark, range.end)]);
    assert_eq!(job.space_map(1).intervals.len(), 1);
    assert!(job.space_map(1).truncated);
}
