//! The coordinator's cost at scale: 10,000 simulated workers heartbeating once a second
//! against the real `Job` code, single-threaded, every message sealed and checked, every
//! heartbeat proving its segment with about eight real shares (each verified: one double
//! hash). Prints the CPU time per simulated second.
//! Run: cargo bench -p nonce-core --bench scale [-- WORKERS SECONDS]

use nonce_core::job::{Input, Job, JobConfig, Output};
use protocol::auth::JobSecret;
use protocol::{verify, Command, Encoding, Event, EventBody, JobId, Mode, Puzzle, ShardProgress, WorkerId};
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
    let secret = JobSecret::from_bytes([9; 32]);
    let mut cfg =
        JobConfig::new(job, secret.clone(), puzzle.clone(), Mode::Exhaustive, puzzle.space(), workers);
    cfg.stall_timeout = Duration::from_secs(10);
    // Eight shares a heartbeat: 128 nonces a second at 4 bits (the bench's workers advance
    // slowly so that their shares can be found by brute force before the clock starts).
    cfg.share_bits = 4;
    let step: u128 = 128;
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
    let names: Vec<WorkerId> = outs
        .iter()
        .flat_map(|o| if let Output::Launch { workers } = o { workers.clone() } else { vec![] })
        .collect();
    take(outs, &mut shard_of);
    let keys: Vec<_> = names.iter().map(|w| secret.worker_key(job, w)).collect();
    let mut seqs = vec![0u64; workers];
    for (w, name) in names.iter().enumerate() {
        let body = EventBody::Hello { inbox: format!("mem://{name}"), cpus: 1 };
        seqs[w] += 1;
        let sealed = keys[w].seal_event(seqs[w], Event { job, worker: name.clone(), body });
        let outs = j.handle(Duration::from_millis(1), Input::Event(sealed));
        take(outs, &mut shard_of);
    }
    assert_eq!(shard_of.len(), workers, "every worker has a shard");
    // Every share of every segment, by brute force, before the clock starts.
    let shares: Vec<Vec<Vec<u64>>> = names
        .iter()
        .map(|name| {
            let (_, _, start, _) = shard_of[&name.0];
            (0..seconds as u128)
                .map(|k| {
                    let (a, b) = (start + k * step, start + (k + 1) * step);
                    (a as u64..b as u64).filter(|&n| verify(&puzzle, n).leading_zeros >= 4).collect()
                })
                .collect()
        })
        .collect();
    // Every heartbeat sealed before the clock starts too: sealing is the workers' cost, and
    // the figure is the coordinator's.
    let mut sealed_by_second = Vec::with_capacity(seconds);
    for sec in 1..=seconds as u64 {
        let mut this_second = Vec::with_capacity(workers);
        for w in 0..workers {
            let name = &names[w];
            let (shard, epoch, start, end) = shard_of[&name.0];
            let from = start + step * u128::from(sec - 1);
            let watermark = (from + step).min(end);
            let segment = ShardProgress {
                shard,
                epoch,
                from,
                watermark,
                found: vec![],
                shares: shares[w][sec as usize - 1].clone(),
            };
            let body = EventBody::Heartbeat { shards: vec![segment], rate: 1e7, best: None };
            seqs[w] += 1;
            this_second.push(keys[w].seal_event(seqs[w], Event { job, worker: name.clone(), body }));
        }
        sealed_by_second.push(this_second);
    }
    drop(shares);
    // The verification alone, on copies of the same messages: every tag checked and every
    // share hashed, as `Job` does, without the bookkeeping around them.
    let copies = sealed_by_second.clone();
    let cpu_v0 = cpu_seconds();
    let mut verified = 0u64;
    for this_second in &copies {
        for (w, sealed) in this_second.iter().enumerate() {
            assert!(keys[w].opens_event(sealed), "a bench message does not open");
            if let EventBody::Heartbeat { shards, .. } = &sealed.event.body {
                for n in shards.iter().flat_map(|s| &s.shares) {
                    verified += u64::from(verify(&puzzle, *n).leading_zeros >= 4);
                }
            }
        }
    }
    let cpu_verify = cpu_seconds() - cpu_v0;
    drop(copies);
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut heartbeats = 0u64;
    for (sec, this_second) in (1..=seconds as u64).zip(sealed_by_second) {
        for (w, sealed) in this_second.into_iter().enumerate() {
            let now =
                Duration::from_secs(sec) + Duration::from_micros((w as u64 * 1_000_000) / workers as u64);
            let _ = j.handle(now, Input::Event(sealed));
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
    let v = j.status().verification;
    println!(
        "per simulated second: {:.1} ms CPU = {:.2}% of one core; {:.2} us per heartbeat; ledger intervals {}",
        cpu / seconds as f64 * 1000.0,
        cpu / seconds as f64 * 100.0,
        cpu / heartbeats as f64 * 1e6,
        j.ledger().len()
    );
    println!(
        "of which verifying the MACs and the {verified} shares alone: {:.1} ms CPU a simulated second = {:.2}% of one core",
        cpu_verify / seconds as f64 * 1000.0,
        cpu_verify / seconds as f64 * 100.0,
    );
    println!(
        "verified {} shares ({:.1} a heartbeat) and {heartbeats} MACs; suspects {}, forged {}",
        v.shares_verified,
        v.shares_verified as f64 / heartbeats as f64,
        v.suspects.len(),
        j.status().stats.forged
    );
    assert!(v.suspects.is_empty(), "honest workers made suspect: {:?}", v.suspects);
}
