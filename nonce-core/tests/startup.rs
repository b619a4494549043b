//! The `Job` measures each launched worker's start-up (launch request to first `Hello`) and
//! reports it in its outcome; the planner's history learns from those samples.

use nonce_core::job::{Input, Job, JobConfig, Output, Snapshot};
use nonce_core::startup::{StartupBook, StartupSource};
use protocol::{Encoding, Event, EventBody, JobId, Mode, NonceRange, Puzzle, WorkerId};
use std::time::Duration;

const JOB: JobId = JobId(7);

fn config(workers: usize) -> JobConfig {
    let puzzle = Puzzle::append(b"startup".to_vec(), Encoding::Be32, 30).expect("valid");
    JobConfig::new(JOB, puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 20), workers)
}

fn hello(job: &mut Job, at: f64, worker: &str) -> Vec<Output> {
    let body = EventBody::Hello { inbox: format!("mem://{worker}"), cpus: 1 };
    job.handle(
        Duration::from_secs_f64(at),
        Input::Event(Event { job: JOB, worker: WorkerId(worker.into()), body }),
    )
}

fn launched(out: &[Output]) -> usize {
    out.iter().map(|o| if let Output::Launch { count } = o { *count } else { 0 }).sum()
}

fn secs(v: &[Duration]) -> Vec<f64> {
    v.iter().map(Duration::as_secs_f64).collect()
}

#[test]
fn each_launched_worker_yields_one_startup_sample() {
    let mut job = Job::new(config(3));
    let out = job.handle(Duration::from_secs(10), Input::Start);
    assert_eq!(launched(&out), 3);
    hello(&mut job, 11.0, "a");
    hello(&mut job, 13.5, "b");
    // A duplicate Hello (a lost Assign, a worker back from a stall) is no new start-up.
    hello(&mut job, 14.0, "a");
    hello(&mut job, 12.0, "c");
    assert_eq!(secs(job.startups()), vec![1.0, 3.5, 2.0]);
    // A worker dies; its replacement is launched at t=20 and says Hello at t=27.
    let out = job.handle(Duration::from_secs(20), Input::WorkerExited(WorkerId("b".into())));
    assert_eq!(launched(&out), 1);
    hello(&mut job, 27.0, "d");
    // A Hello from a worker nobody launched for (all launches accounted for) is not a sample.
    hello(&mut job, 28.0, "stranger");
    let out = job.handle(Duration::from_secs(30), Input::Cancel);
    let outcome = out
        .iter()
        .find_map(|o| if let Output::Finish(o) = o { Some(o.clone()) } else { None })
        .expect("finished");
    assert_eq!(secs(&outcome.startups), vec![1.0, 3.5, 2.0, 7.0]);

    // Those samples are what the planner plans with: p95 of 4 samples is the largest.
    let mut book = StartupBook::default();
    assert!(outcome.unstarted.is_empty(), "every launch said Hello");
    book.record("ecs", &outcome.startups, &outcome.unstarted);
    let e = book.estimate("ecs").expect("known launcher");
    assert_eq!(e.seconds, 7.0);
    assert_eq!(e.source, StartupSource::Measured { percentile: 95, samples: 4 });
}

#[test]
fn launches_without_a_hello_at_the_end_are_reported_as_censored() {
    let mut cfg = config(3);
    cfg.deadline = Some(Duration::from_secs(5));
    let mut job = Job::new(cfg);
    job.handle(Duration::from_secs(100), Input::Start);
    hello(&mut job, 101.0, "fast");
    // The deadline passes with two launches still starting: they took longer than 5 s.
    let out = job.handle(Duration::from_secs(105), Input::Tick);
    let outcome = out
        .iter()
        .find_map(|o| if let Output::Finish(o) = o { Some(o.clone()) } else { None })
        .expect("timed out");
    assert_eq!(secs(&outcome.startups), vec![1.0]);
    assert_eq!(secs(&outcome.unstarted), vec![5.0, 5.0]);
    let mut book = StartupBook::default();
    book.record("ecs", &outcome.startups, &outcome.unstarted);
    // Dropping the censored two would claim p95 = 1 s; all that is known is "beyond 5 s".
    assert_eq!(book.estimate("ecs").map(|e| e.seconds), Some(5.0));
}

#[test]
fn a_resumed_job_measures_nothing() {
    // After a coordinator restart, the first Hellos may be adopted workers of the previous
    // incarnation: pairing them with this incarnation's launches would invent start-ups.
    let mut cfg = config(2);
    cfg.resume = Some(Snapshot::default());
    let mut job = Job::new(cfg);
    job.handle(Duration::from_secs(0), Input::Start);
    hello(&mut job, 0.5, "adopted");
    hello(&mut job, 4.0, "new");
    assert!(job.startups().is_empty());
}
