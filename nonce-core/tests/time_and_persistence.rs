//! The job owns its time and its persistence: it says when it next needs a tick
//! (`poll_timeout`) and what to keep (`Output::Persist`), and a shell that only obeys keeps
//! a deadline to the instant and loses no verified nonce.

mod common;

use common::{launched, secret, Voices};
use nonce_core::job::{Input, Job, JobConfig, OutcomeKind, Output, Snapshot};
use protocol::{verify, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, ShardProgress};
use std::time::Duration;

const JOB: JobId = JobId(11);
const SHARE_BITS: u32 = 4;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn puzzle() -> Puzzle {
    Puzzle::append(b"time-and-persistence".to_vec(), Encoding::Be32, 8).expect("valid")
}

fn config(mode: Mode) -> JobConfig {
    let mut cfg = JobConfig::new(JOB, secret(), puzzle(), mode, NonceRange::new(0, 1 << 16), 1);
    cfg.heartbeat = ms(400);
    cfg.persist_every = ms(1000);
    cfg.share_bits = SHARE_BITS;
    // No spot checks: a claim out for a check is left out of the snapshot, and this test is
    // about when the snapshot is handed out, not what is in it.
    cfg.spot_check = 0.0;
    cfg.spot_check_lowest = 0.0;
    cfg
}

fn persisted(out: &[Output]) -> Option<Snapshot> {
    out.iter().find_map(|o| if let Output::Persist(s) = o { Some(s.clone()) } else { None })
}

/// Every golden nonce of the puzzle in `range`, by brute force through `verify`.
fn golden_in(range: std::ops::Range<u64>) -> Vec<u64> {
    let p = puzzle();
    range.filter(|&n| verify(&p, n).golden).collect()
}

#[test]
fn the_job_says_when_it_needs_a_tick_and_keeps_its_deadline_to_the_instant() {
    let mut cfg = config(Mode::Exhaustive);
    cfg.deadline = Some(ms(1234));
    let mut job = Job::new(cfg);
    assert_eq!(job.poll_timeout(), None, "nothing to wait for before the start");
    job.handle(ms(5000), Input::Start);
    // Half a heartbeat after the start.
    assert_eq!(job.poll_timeout(), Some(ms(5200)));
    // An event does not move it.
    job.handle(ms(5100), Input::LaunchSent { workers: vec![] });
    assert_eq!(job.poll_timeout(), Some(ms(5200)));
    // A shell that only obeys: tick exactly when told, until the job ends.
    let mut ticks = Vec::new();
    let ended = loop {
        let at = job.poll_timeout().expect("running");
        ticks.push(at);
        let out = job.handle(at, Input::Tick);
        if let Some(o) =
            out.iter().find_map(|o| if let Output::Finish(o) = o { Some(o.clone()) } else { None })
        {
            break o;
        }
        assert!(ticks.len() < 100, "the job never ended: {ticks:?}");
    };
    assert_eq!(ticks, [5200, 5400, 5600, 5800, 6000, 6200, 6234].map(ms));
    assert_eq!(ended.kind, OutcomeKind::TimedOut);
    assert_eq!(ended.elapsed, ms(1234), "kept to the instant, not to the tick");
    assert_eq!(job.poll_timeout(), None, "a finished job needs no more time");
}

#[test]
fn the_tick_is_never_faster_than_twenty_milliseconds() {
    let mut cfg = config(Mode::Exhaustive);
    cfg.heartbeat = ms(1);
    let mut job = Job::new(cfg);
    job.handle(ms(0), Input::Start);
    assert_eq!(job.poll_timeout(), Some(ms(20)));
}

#[test]
fn progress_is_handed_out_to_keep_at_most_every_period_and_a_golden_nonce_at_once() {
    let mut job = Job::new(config(Mode::Exhaustive));
    let w = launched(&job.handle(ms(0), Input::Start)).remove(0);
    let mut voices = Voices::default();
    let out = job.handle(ms(100), voices.hello(JOB, &w));
    let (shard, epoch, range) = out
        .iter()
        .find_map(|o| match o {
            Output::Send { command: Command::Assign { shard, epoch, range, .. }, .. } => {
                Some((*shard, *epoch, *range))
            }
            _ => None,
        })
        .expect("assigned");
    assert_eq!(range, NonceRange::new(0, 1 << 16));
    let golden = golden_in(0..1 << 16);
    assert!(golden.len() >= 2, "the puzzle has golden nonces to find: {golden:?}");
    let progress = |from: u64, to: u64| {
        let found: Vec<u64> = golden.iter().copied().filter(|&n| n >= from && n < to).collect();
        let p = puzzle();
        let shares = (from..to).filter(|&n| verify(&p, n).leading_zeros >= SHARE_BITS).collect();
        EventBody::Heartbeat {
            shards: vec![ShardProgress {
                shard,
                epoch,
                from: u128::from(from),
                watermark: u128::from(to),
                found,
                shares,
            }],
            rate: 1e6,
            best: None,
        }
    };
    // Up to just below the first golden nonce: progress, but within the period of the start.
    let first = golden[0];
    let out = job.handle(ms(300), voices.say(JOB, &w, progress(0, first)));
    assert_eq!(persisted(&out), None, "not yet a period since the start");
    // The first golden nonce is handed out at once, with the progress that holds it.
    let out = job.handle(ms(400), voices.say(JOB, &w, progress(first, first + 1)));
    let kept = persisted(&out).expect("a new golden nonce is kept at once");
    assert_eq!(kept.found, vec![first]);
    assert_eq!(kept.done, vec![NonceRange::new(0, u128::from(first) + 1)]);
    // More progress, no new nonce: kept only once the period has passed, by a tick or by any
    // input, and only when it changed.
    let next = golden[1];
    let out = job.handle(ms(900), voices.say(JOB, &w, progress(first + 1, next)));
    assert_eq!(persisted(&out), None, "within the period of the last");
    let out = job.handle(ms(1400), Input::Tick);
    let kept = persisted(&out).expect("a period later");
    assert_eq!(kept.done, vec![NonceRange::new(0, u128::from(next))]);
    assert_eq!(kept.found, vec![first]);
    let out = job.handle(ms(2500), Input::Tick);
    assert_eq!(persisted(&out), None, "nothing changed since");
    // The end hands nothing out: the finish carries the outcome.
    let out = job.handle(ms(2600), Input::Cancel);
    assert_eq!(persisted(&out), None);
    assert!(matches!(out.last(), Some(Output::Finish(_))), "Finish comes last: {out:?}");
}

#[test]
fn a_resumed_job_does_not_hand_back_what_it_resumed_from() {
    let mut cfg = config(Mode::Exhaustive);
    let golden = golden_in(0..1 << 12);
    let resume = Snapshot { done: vec![NonceRange::new(0, 1 << 12)], found: golden.clone() };
    cfg.resume = Some(resume);
    let mut job = Job::new(cfg);
    job.handle(ms(0), Input::Start);
    let out = job.handle(ms(5000), Input::Tick);
    assert_eq!(persisted(&out), None, "the journal holds it already");
}
