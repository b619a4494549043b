//! The coordinator's cost at scale: 10,000 simulated workers heartbeating once a second
//! against the real `Job` code, single-threaded. Prints the CPU time per simulated second.
//! Run: cargo bench -p nonce-core --bench scale [-- WORKERS SECONDS]

use nonce_core::job::{Input, Job, JobConfig, Output};
use protocol::{Command, Encoding, Event, EventBody, JobId, Mode, Puzzle, ShardProgress, WorkerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// User + system CPU seconds of this process, from /proc (no unsafe getrusage needed).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let workers = args.first().copied().unwrap_or(10_000);
    let seconds = args.get(1).copied().unwrap_or(30);
    let job = JobId(7);
    let puzzle = Puzzle::append(b"scale".to_vec(), Encoding::Be64, 256).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = JobConfig::new(job, puzzle.clone(), Mode::Exhaustive, puzzle.space(), workers);
    cfg.stall_timeout = Duration::from_secs(10);
    let mut j = Job::new(cfg);
    let mut shard_of: HashMap<String, (protocol::ShardId, u64, u128, u128)> = HashMap::new();
    let take = |outs: Vec<Output>, shard_of: &mut HashMap<String, _>| {
        for o in outs {
            if let Output::Send { worker, command: Command::Assign { shard, epoch, range, .. }, .. } = o {
                shard_of.insert(worker.0, (shard, epoch, range.start, range.end));
            }
        }
    };
    let outs = j.handle(Duration::ZERO, Input::Start);
    take(outs, &mut shard_of);
    for w in 0..workers {
        let ev = Event {
            job,
            worker: WorkerId(format!("w{w}")),
            body: EventBody::Hello { inbox: format!("q{w}"), cpus: 1 },
        };
        let outs = j.handle(Duration::from_millis(1), Input::Event(ev));
        take(outs, &mut shard_of);
    }
    assert_eq!(shard_of.len(), workers, "every worker has a shard");
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut heartbeats = 0u64;
    for sec in 1..=seconds as u64 {
        for w in 0..workers {
            let now =
                Duration::from_secs(sec) + Duration::from_micros((w as u64 * 1_000_000) / workers as u64);
            let name = format!("w{w}");
            let (shard, epoch, start, end) = shard_of[&name];
            let watermark = (start + (end - start) * u128::from(sec) / (seconds as u128 + 10)).min(end);
            let ev = Event {
                job,
                worker: WorkerId(name),
                body: EventBody::Heartbeat {
                    shards: vec![ShardProgress { shard, epoch, watermark, found: vec![] }],
                    rate: 1e7,
                    best: None,
                },
            };
            let _ = j.handle(now, Input::Event(ev));
            heartbeats += 1;
            if w % (workers / 10).max(1) == 0 {
                let _ = j.handle(now, Input::Tick);
            }
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    println!(
        "{workers} workers x {seconds} simulated seconds ({heartbeats} heartbeats): CPU {:.3} s, wall {:.3} s",
        cpu, wall
    );
    println!(
        "per simulated second: {:.1} ms CPU = {:.2}% of one core; {:.2} us per heartbeat; ledger intervals {}",
        cpu / seconds as f64 * 1000.0,
        cpu / seconds as f64 * 100.0,
        cpu / heartbeats as f64 * 1e6,
        j.ledger().len()
    );
}
