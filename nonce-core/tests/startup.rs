//! The `Job` measures each launched worker's start-up (launch request to first `Hello`) and
//! reports it in its outcome; the planner's history learns from those samples.

mod common;

use common::{launched, secret, Voices};
use nonce_core::job::{Input, Job, JobConfig, Output, Snapshot};
use nonce_core::startup::{StartupBook, StartupSource};
use protocol::{Encoding, JobId, Mode, NonceRange, Puzzle, WorkerId};
use std::time::Duration;

const JOB: JobId = JobId(7);

fn config(workers: usize) -> JobConfig {
    let puzzle = Puzzle::append(b"startup".to_vec(), Encoding::Be32, 30).expect("valid");
    JobConfig::new(JOB, secret(), puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 20), workers)
}

fn hello(job: &mut Job, at: f64, worker: &WorkerId) -> Vec<Output> {
    job.handle(Duration::from_secs_f64(at), Voices::default().hello(JOB, worker))
}

fn secs(v: &[Duration]) -> Vec<f64> {
    v.iter().map(Duration::as_secs_f64).collect()
}

#[test]
fn each_launched_worker_yields_one_startup_sample() {
    let mut job = Job::new(config(3));
    let out = job.handle(Duration::from_secs(10), Input::Start);
    let w = launched(&out);
    assert_eq!(w.len(), 3);
    let mut voices = Voices::default();
    job.handle(Duration::from_secs(11), voices.hello(JOB, &w[0]));
    job.handle(Duration::from_secs_f64(13.5), voices.hello(JOB, &w[1]));
    // A duplicate Hello (a lost Assign, a worker back from a stall) is no new start-up.
    job.handle(Duration::from_secs(14), voices.hello(JOB, &w[0]));
    job.handle(Duration::from_secs(12), voices.hello(JOB, &w[2]));
    assert_eq!(secs(job.startups()), vec![1.0, 3.5, 2.0]);
    // A worker dies; its replacement is launched at t=20 and says Hello at t=27.
    let out = job.handle(Duration::from_secs(20), Input::WorkerExited(w[1].clone()));
    let d = launched(&out);
    assert_eq!(d.len(), 1);
    hello(&mut job, 27.0, &d[0]);
    // A Hello from a worker nobody launched is refused: no sample, counted as forged.
    hello(&mut job, 28.0, &WorkerId("stranger".into()));
    assert_eq!(job.status().stats.forged, 1);
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
    let w = launched(&job.handle(Duration::from_secs(100), Input::Start));
    hello(&mut job, 101.0, &w[0]);
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
fn a_resumed_job_measures_only_its_own_launches() {
    // After a coordinator restart, adopted workers of the previous incarnation say Hello
    // too: they are no start-up measurement, and are matched by name, not by order.
    let mut cfg = config(2);
    cfg.resume = Some(Snapshot::default());
    let mut job = Job::new(cfg);
    let w = launched(&job.handle(Duration::from_secs(0), Input::Start));
    hello(&mut job, 0.5, &WorkerId("w0-00000000-0000000000000007".into()));
    hello(&mut job, 4.0, &w[0]);
    assert_eq!(secs(job.startups()), vec![4.0]);
    assert_eq!(job.status().stats.forged, 0, "an adopted worker with a valid key is no forger");
}

#[test]
fn a_hello_without_the_key_or_with_a_foreign_inbox_is_refused() {
    let mut job = Job::new(config(1));
    let w = launched(&job.handle(Duration::ZERO, Input::Start));
    // Sealed with another job's secret: the tag does not verify.
    let key = protocol::auth::JobSecret::from_bytes([1; 32]).worker_key(JOB, &w[0]);
    let hello_body = protocol::EventBody::Hello { inbox: format!("mem://{}", w[0]), cpus: 1 };
    let forged = key.seal_event(1, protocol::Event { job: JOB, worker: w[0].clone(), body: hello_body });
    let out = job.handle(Duration::from_secs(1), Input::Event(forged));
    assert!(out.is_empty(), "nothing is sent to a forger: {out:?}");
    // The right key, someone else's queue: refused too.
    let mut voices = Voices::default();
    let body = protocol::EventBody::Hello { inbox: "mem://elsewhere".into(), cpus: 1 };
    let out = job.handle(Duration::from_secs(1), voices.say(JOB, &w[0], body));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(job.status().stats.forged, 2);
    assert!(job.workers_info(Duration::from_secs(1)).is_empty());
    // A replay of a real message is refused without being acted on twice.
    let hello = voices.hello(JOB, &w[0]);
    assert!(!job.handle(Duration::from_secs(2), hello.clone()).is_empty(), "the real Hello gets an Assign");
    assert!(job.handle(Duration::from_secs(3), hello).is_empty());
    assert_eq!(job.status().stats.replayed, 1);
}
