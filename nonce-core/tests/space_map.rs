//! `Job::space_map`: the picture of the nonce space the dashboard draws is the ledger's own
//! intervals, with each assigned one attributed to the worker holding it from its watermark.

use nonce_core::job::{Input, Job, JobConfig, MapState, Output};
use protocol::{
    Command, Encoding, Event, EventBody, JobId, Mode, NonceRange, Puzzle, ShardProgress, WorkerId,
};
use std::time::Duration;

const JOB: JobId = JobId(9);

fn event(job: &mut Job, at: u64, worker: &str, body: EventBody) -> Vec<Output> {
    job.handle(
        Duration::from_secs(at),
        Input::Event(Event { job: JOB, worker: WorkerId(worker.into()), body }),
    )
}

#[test]
fn the_map_is_the_ledger_with_owners_and_watermarks() {
    let puzzle = Puzzle::append(b"map".to_vec(), Encoding::Be32, 40).expect("valid");
    let mut job = Job::new(JobConfig::new(JOB, puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 20), 2));
    job.handle(Duration::ZERO, Input::Start);
    let mut assigned = Vec::new();
    for w in ["a", "b"] {
        for o in event(&mut job, 1, w, EventBody::Hello { inbox: format!("mem://{w}"), cpus: 1 }) {
            if let Output::Send { command: Command::Assign { shard, epoch, range, .. }, .. } = o {
                assigned.push((w, shard, epoch, range));
            }
        }
    }
    assert_eq!(assigned.len(), 2, "{assigned:?}");
    let (w, shard, epoch, range) = assigned[0];
    let watermark = range.start + 1000;
    let progress = ShardProgress { shard, epoch, watermark, found: vec![] };
    event(&mut job, 2, w, EventBody::Heartbeat { shards: vec![progress], rate: 1.0, best: None });

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
        && s.state == MapState::Assigned { worker: WorkerId(w.into()), shard_start: range.start }));
    let info = job.workers_info(Duration::from_secs(2));
    let a = info.iter().find(|i| i.worker == WorkerId(w.into())).expect("worker a");
    assert_eq!(a.ranges, vec![NonceRange::new(watermark, range.end)]);
    assert_eq!(job.space_map(1).intervals.len(), 1);
    assert!(job.space_map(1).truncated);
}
