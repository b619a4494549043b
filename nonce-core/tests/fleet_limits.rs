//! What Fargate's limits change in a job: launches a paced launcher has not sent yet are
//! neither timed nor written off (their start-up counts from the request), and a worker its
//! platform interrupts (Spot's SIGTERM) is counted, credited with its final progress, and its
//! range re-sharded from there.

mod common;

use common::{launched, secret, Voices};
use nonce_core::job::{Input, Job, JobConfig, Output};
use protocol::{
    verify, ByeReason, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, ShardProgress,
};
use std::time::Duration;

const JOB: JobId = JobId(23);
const BITS: u32 = 4;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_paced_launch_is_timed_from_its_request_and_never_written_off_while_queued() {
    let puzzle = Puzzle::append(b"paced".to_vec(), Encoding::Be32, 60).expect("valid");
    let mut cfg = JobConfig::new(JOB, secret(), puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 30), 2);
    cfg.paced_launches = true;
    cfg.max_launches = 2;
    let patience = cfg.abandon_after.max(cfg.stall_timeout * 10);
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    assert_eq!(w.len(), 2);
    // The first request goes out at once; the second waits on the quotas far past the patience
    // a sent launch gets, and is not written off (nor replaced: there are no launches left).
    job.handle(Duration::ZERO, Input::LaunchSent { workers: vec![w[0].clone()] });
    job.handle(secs(2.0), voices.hello(JOB, &w[0]));
    let late = patience + secs(30.0);
    for t in 1..=late.as_secs() {
        let out = job.handle(Duration::from_secs(t), Input::Tick);
        assert!(!out.iter().any(|o| matches!(o, Output::Finish(_))), "the job waits for its queued launch");
    }
    job.handle(late, Input::LaunchSent { workers: vec![w[1].clone()] });
    job.handle(late + secs(40.0), voices.hello(JOB, &w[1]));
    let startups = job.startups().to_vec();
    // Each from its own request: 2 s and 40 s, not 40 s + the time it queued.
    assert_eq!(startups, vec![secs(2.0), secs(40.0)]);
}

#[test]
fn an_interrupted_worker_is_counted_credited_and_re_sharded_from_its_last_progress() {
    let puzzle = Puzzle::append(b"spot".to_vec(), Encoding::Be32, 60).expect("valid");
    let range = NonceRange::new(0, 1 << 16);
    let mut cfg = JobConfig::new(JOB, secret(), puzzle.clone(), Mode::Exhaustive, range, 2);
    cfg.share_bits = BITS;
    cfg.spot_check = 0.0;
    cfg.spot_check_lowest = 0.0;
    let mut job = Job::new(cfg);
    let mut voices = Voices::default();
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    let mut shard_of = std::collections::HashMap::new();
    for worker in &w {
        for o in job.handle(secs(0.1), voices.hello(JOB, worker)) {
            if let Output::Send { worker, command: Command::Assign { shard, epoch, range, .. }, .. } = o {
                shard_of.insert(worker, (shard, epoch, range));
            }
        }
    }
    let (shard, epoch, r) = shard_of[&w[0]];
    // The final heartbeat of its SIGTERM: half its shard done, with the shares that prove it.
    let half = NonceRange::new(r.start, r.start + r.len() / 2);
    let shares =
        (half.start..half.end).map(|n| n as u64).filter(|&n| verify(&puzzle, n).leading_zeros >= BITS);
    let progress = ShardProgress {
        shard,
        epoch,
        from: half.start,
        watermark: half.end,
        found: vec![],
        shares: shares.collect(),
    };
    job.handle(
        secs(1.0),
        voices.say(JOB, &w[0], EventBody::Heartbeat { shards: vec![progress], rate: 1e6, best: None }),
    );
    let out = job.handle(secs(1.0), voices.say(JOB, &w[0], EventBody::Bye { reason: ByeReason::Terminated }));
    let status = job.status();
    assert_eq!(status.stats.interruptions, 1);
    assert_eq!(status.stats.searched, half.len(), "its last progress is kept");
    // What is left of its shard, and only that, goes to the other worker once it is free.
    let (s1, e1, r1) = shard_of[&w[1]];
    let shares: Vec<u64> =
        (r1.start..r1.end).map(|n| n as u64).filter(|&n| verify(&puzzle, n).leading_zeros >= BITS).collect();
    let done = EventBody::ShardDone {
        shard: s1,
        epoch: e1,
        best: None,
        from: r1.start,
        end: r1.end,
        found: vec![],
        shares,
    };
    let mut out = out;
    out.extend(job.handle(secs(1.5), voices.say(JOB, &w[1], done)));
    let reassigned: Vec<NonceRange> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { command: Command::Assign { range, .. }, .. } => Some(*range),
            _ => None,
        })
        .collect();
    assert!(
        reassigned.iter().all(|x| x.start >= half.end) && reassigned.iter().any(|x| x.start == half.end),
        "re-sharded from its watermark: {reassigned:?} (its shard {r:?})"
    );
    // A worker told to stop, or one that leaves idle, is no interruption.
    job.handle(secs(2.0), voices.say(JOB, &w[1], EventBody::Bye { reason: ByeReason::Stopped }));
    assert_eq!(job.status().stats.interruptions, 1);
}
