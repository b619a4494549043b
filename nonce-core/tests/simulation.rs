//! Deterministic simulation of the sans-IO `Job` and `Ledger` under seeded faults: message
//! loss, duplication, reordering and delay; workers that stall and come back, crash (noticed
//! by the launcher or not), run fast or slow, lie about finds, skip half of their work, or
//! miscompute (drop shares and golden nonces); a forger without keys; launches that fail.
//! Invariants are checked after every step, and the answer must equal the truth.
//!
//! Both ends are the real logic: the coordinator's `Job`, and each worker's
//! `protocol::worker::WorkerMachine` (which commands to believe, what to search, shrink and
//! cancel, when to beat, say Hello again or leave), every command sealed as the supervisor
//! seals it. Only the hashing (a cursor over precomputed answers) and a worker's conduct
//! (what it reports of its segments) are simulated.
//!
//! `NONCE_SIM_SEEDS=100000` runs more seeds; `NONCE_SIM_SEED=N` replays one.

use nonce_core::job::{InboxRule, Input, Job, JobConfig, OutcomeKind, Output, Snapshot, MAX_FOUND};
use protocol::auth::JobSecret;
use protocol::worker::{Delivery, WorkerInput, WorkerMachine, WorkerOutput, WorkerRules};
use protocol::{
    verify, Encoding, Event, EventBody, JobId, Mode, NonceRange, Puzzle, SealedEvent, ShardId, ShardProgress,
    WorkerId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const STEP: Duration = Duration::from_millis(10);
const MAX_STEPS: u64 = 60_000;
const JOB: JobId = JobId(0x51);
/// Shares of 2 bits: ~7,500 per run. Simulated claims are tiny, so the share count alone
/// gives little evidence; every claim is spot-checked instead (see `Sim::new`).
const SHARE_BITS: u32 = 2;
/// The simulation's wall clock at step 0 (broadcasts carry it; workers check its freshness).
const EPOCH_MS: u64 = 1_800_000_000_000;

/// A few puzzles with their golden and share sets, computed once (hashing is the expensive part).
struct World {
    puzzles: Vec<(Puzzle, NonceRange, BTreeSet<u64>, BTreeSet<u64>)>,
}

impl World {
    fn new() -> World {
        let mut puzzles = Vec::new();
        for (i, d) in [10u32, 11, 12, 13, 16, 18].into_iter().enumerate() {
            let p = Puzzle::append(format!("sim-{i}").into_bytes(), Encoding::Be32, d).expect("valid");
            let range = NonceRange::new(1000 * i as u128, 1000 * i as u128 + 30_000);
            let verdicts: Vec<_> = (range.start as u64..range.end as u64).map(|n| verify(&p, n)).collect();
            let golden = verdicts.iter().filter(|v| v.golden).map(|v| v.nonce).collect();
            let shares = verdicts.iter().filter(|v| v.leading_zeros >= SHARE_BITS).map(|v| v.nonce).collect();
            puzzles.push((p, range, golden, shares));
        }
        World { puzzles }
    }
}

/// How a simulated worker behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conduct {
    Honest,
    /// Sends random `Found`s (rejected by verification).
    LiesAboutFinds,
    /// Claims every segment but reports the shares (and finds) of its lower half only.
    SkipsHalf,
    /// A miscomputing core: loses one in four of the shares and golden nonces it finds.
    Miscomputes,
}

#[derive(Debug, Clone, PartialEq)]
enum Health {
    Alive,
    Stalled { until: u64 },
    Crashed,
}

struct SimShard {
    epoch: u64,
    cursor: u128,
    end: u128,
    /// Reported in a segment up to here.
    reported: u128,
}

struct SimWorker {
    id: WorkerId,
    shards: BTreeMap<ShardId, SimShard>,
    speed: u128,
    health: Health,
    stopped: bool,
    conduct: Conduct,
    /// Sequence numbers of its sealed events.
    seq: u64,
    hello_at: u64,
    said_hello: bool,
    /// Its protocol logic, the real one.
    machine: WorkerMachine,
    inbox: Vec<Delivery>,
}

enum Msg {
    ToJob(SealedEvent),
    ToWorker(usize, Delivery),
}

struct Faults {
    loss: f64,
    dup: f64,
    max_delay: u64,
    stall: f64,
    crash: f64,
    launch_fail: f64,
}

struct Sim {
    rng: StdRng,
    job: Job,
    workers: Vec<SimWorker>,
    net: Vec<(u64, u64, Msg)>, // (due step, tiebreak, message)
    faults: Faults,
    step: u64,
    seq: u64,
    golden: BTreeSet<u64>,
    shares: BTreeSet<u64>,
    secret: JobSecret,
    /// An attacker without keys injects forged events now and then.
    forger: bool,
    done_before: u128,
    suspects_before: usize,
    launched: usize,
    starts: BTreeMap<(usize, ShardId), u128>,
    /// Step at which the coordinator restarts from its snapshot (its workers die with it).
    restart_at: Option<u64>,
    /// The newest snapshot the job handed out to keep (`Output::Persist`): all a restarted
    /// coordinator has, as the daemon's journal is.
    kept: Snapshot,
    /// Sequence numbers of the coordinator's sealed commands and broadcasts.
    command_seq: u64,
}

impl Sim {
    fn new(seed: u64, world: &World) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let (puzzle, range, golden, shares) = world.puzzles[rng.gen_range(0..world.puzzles.len())].clone();
        let mode = [Mode::First, Mode::Lowest, Mode::Exhaustive][rng.gen_range(0..3)];
        let workers = rng.gen_range(1..6);
        let secret = JobSecret::from_bytes(rng.gen());
        let mut cfg = JobConfig::new(JOB, secret.clone(), puzzle, mode, range, workers);
        cfg.inbox = InboxRule::new("sim://", "");
        cfg.share_bits = SHARE_BITS;
        // Simulated claims are small: check all of them, so that every lie is caught for sure
        // and the answer must equal the truth on every seed (real jobs check 1/1024 and rely
        // on the share count, which has the evidence of billions of nonces).
        cfg.spot_check = 1.0;
        cfg.spot_check_lowest = 1.0;
        cfg.stall_timeout = Duration::from_millis(rng.gen_range(300..1500));
        cfg.keepalive = Duration::from_millis(500);
        // Ticks every 50 ms (5 steps), when the job's `poll_timeout` says.
        cfg.heartbeat = Duration::from_millis(100);
        cfg.persist_every = Duration::from_millis(rng.gen_range(10..500));
        cfg.min_steal = rng.gen_range(1..2000);
        cfg.max_launches = workers * rng.gen_range(1..4);
        let restart = rng.gen_bool(0.25);
        let faults = Faults {
            loss: if rng.gen_bool(0.5) { rng.gen_range(0.0..0.05) } else { 0.0 },
            dup: rng.gen_range(0.0..0.1),
            max_delay: rng.gen_range(0..30),
            stall: if rng.gen_bool(0.6) { rng.gen_range(0.0..0.003) } else { 0.0 },
            crash: if rng.gen_bool(0.3) { rng.gen_range(0.0..0.001) } else { 0.0 },
            launch_fail: if rng.gen_bool(0.2) { 0.3 } else { 0.0 },
        };
        let restart_at = restart.then(|| rng.gen_range(5..400));
        let forger = rng.gen_bool(0.3);
        Sim {
            rng,
            job: Job::new(cfg),
            workers: Vec::new(),
            net: Vec::new(),
            faults,
            step: 0,
            seq: 0,
            golden,
            shares,
            secret,
            forger,
            done_before: 0,
            suspects_before: 0,
            launched: 0,
            starts: BTreeMap::new(),
            restart_at,
            kept: Snapshot::default(),
            command_seq: 0,
        }
    }

    fn now(&self) -> Duration {
        STEP * self.step as u32
    }

    fn unix_ms(&self) -> u64 {
        EPOCH_MS + self.now().as_millis() as u64
    }

    /// Puts a message on the network, maybe losing, duplicating or delaying it.
    fn send(&mut self, msg: Msg) {
        if self.rng.gen_bool(self.faults.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let due = self.step + 1 + self.rng.gen_range(0..=self.faults.max_delay);
            self.seq += 1;
            let m = match &msg {
                Msg::ToJob(e) => Msg::ToJob(e.clone()), // a duplicate: same seq, a replay
                Msg::ToWorker(w, c) => Msg::ToWorker(*w, c.clone()), // a duplicate: a replay
            };
            self.net.push((due, self.seq, m));
        }
    }

    fn feed(&mut self, input: Input) {
        let outs = self.job.handle(self.now(), input);
        for o in outs {
            match o {
                // Sealed as the supervisor seals them: the worker's key or the job's signature,
                // this coordinator life's stream.
                Output::Send { worker, command, .. } => {
                    if let Some(i) = self.workers.iter().position(|w| w.id == worker) {
                        self.command_seq += 1;
                        let stream = self.job.config().incarnation;
                        let sealed = self.secret.worker_key(JOB, &worker).seal_command(
                            stream,
                            self.command_seq,
                            command,
                        );
                        self.send(Msg::ToWorker(i, Delivery::Direct(sealed)));
                    }
                }
                Output::Broadcast(command) => {
                    self.command_seq += 1;
                    let stream = self.job.config().incarnation;
                    let signed = self.secret.broadcast_signer(JOB).sign(
                        stream,
                        self.command_seq,
                        self.unix_ms(),
                        command,
                    );
                    for i in 0..self.workers.len() {
                        self.send(Msg::ToWorker(i, Delivery::Broadcast(signed.clone())));
                    }
                }
                Output::Launch { workers } => {
                    for id in workers {
                        if self.rng.gen_bool(self.faults.launch_fail) {
                            let outs_input =
                                Input::LaunchFailed { workers: vec![id], reason: "simulated".into() };
                            self.feed(outs_input);
                            continue;
                        }
                        self.launched += 1;
                        let fast = self.rng.gen_bool(0.5);
                        let conduct = match self.rng.gen_range(0..20) {
                            0 | 1 => Conduct::LiesAboutFinds,
                            2 => Conduct::SkipsHalf,
                            3 => Conduct::Miscomputes,
                            _ => Conduct::Honest,
                        };
                        let machine = WorkerMachine::new(WorkerRules {
                            id: id.clone(),
                            job: JOB,
                            inbox: format!("sim://{id}"),
                            cpus: 1,
                            heartbeat: Duration::from_millis(250),
                            orphan_timeout: Duration::from_secs(10),
                            key: self.secret.worker_key(JOB, &id),
                            broadcast: self.secret.broadcast_signer(JOB).verifier(),
                        });
                        self.workers.push(SimWorker {
                            id,
                            shards: BTreeMap::new(),
                            speed: if fast {
                                self.rng.gen_range(200..800)
                            } else {
                                self.rng.gen_range(5..60)
                            },
                            health: Health::Alive,
                            stopped: false,
                            conduct,
                            seq: 0,
                            hello_at: self.step + self.rng.gen_range(0..50),
                            said_hello: false,
                            machine,
                            inbox: Vec::new(),
                        });
                    }
                }
                Output::Evict { worker } => {
                    // The launcher kills it: it says nothing more.
                    if let Some(i) = self.workers.iter().position(|w| w.id == worker) {
                        self.workers[i].health = Health::Crashed;
                    }
                }
                Output::Persist(snapshot) => self.kept = snapshot,
                Output::StopWorkers | Output::Finish(_) => {}
            }
        }
    }

    fn event(&mut self, w: usize, body: EventBody) {
        self.workers[w].seq += 1;
        let id = self.workers[w].id.clone();
        let key = self.secret.worker_key(JOB, &id);
        let sealed = key.seal_event(self.workers[w].seq, Event { job: JOB, worker: id, body });
        self.send(Msg::ToJob(sealed));
    }

    /// An attacker who knows the job and the workers' names, but no key: claims that a real
    /// worker finished a shard with nothing found, or introduces itself.
    fn forge(&mut self) {
        let stranger = WorkerId(format!("w0-{:08x}-{JOB}", self.rng.gen::<u32>()));
        let victim = if self.workers.is_empty() {
            stranger.clone()
        } else {
            self.workers[self.rng.gen_range(0..self.workers.len())].id.clone()
        };
        let body = match self.rng.gen_range(0..3) {
            0 => EventBody::Hello { inbox: format!("sim://{victim}"), cpus: 1 },
            1 => EventBody::ShardDone {
                shard: ShardId(self.rng.gen_range(0..100)),
                epoch: self.rng.gen_range(0..100),
                best: None,
                from: 0,
                end: u128::MAX,
                found: vec![],
                shares: vec![],
            },
            _ => EventBody::Heartbeat { shards: vec![], rate: 1e12, best: None },
        };
        let wrong = JobSecret::from_bytes(self.rng.gen()).worker_key(JOB, &victim);
        let sealed = wrong.seal_event(self.rng.gen(), Event { job: JOB, worker: victim, body });
        self.send(Msg::ToJob(sealed));
    }

    /// What a worker of this conduct reports of a segment's `all` nonces (shares or golden).
    fn reported(&mut self, w: usize, all: Vec<u64>, from: u128, to: u128) -> Vec<u64> {
        match self.workers[w].conduct {
            Conduct::SkipsHalf => {
                let mid = from + (to - from) / 2;
                all.into_iter().filter(|&n| u128::from(n) < mid).collect()
            }
            Conduct::Miscomputes => {
                let salt = self.workers[w].seq;
                all.into_iter()
                    .filter(|&n| !(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt).is_multiple_of(4))
                    .collect()
            }
            Conduct::Honest | Conduct::LiesAboutFinds => all,
        }
    }

    fn segment_shares(&mut self, w: usize, from: u128, to: u128) -> Vec<u64> {
        let all: Vec<u64> = self.shares.range(from as u64..to as u64).copied().collect();
        self.reported(w, all, from, to)
    }

    /// Feeds worker `w`'s machine and carries out what it asks, as the worker actor does.
    fn drive(&mut self, w: usize, input: WorkerInput) {
        let now = self.now();
        let outs = self.workers[w].machine.handle(now, input);
        for o in outs {
            match o {
                WorkerOutput::Emit(body) => self.event(w, body),
                WorkerOutput::Search { shard, epoch, range, .. } => {
                    self.starts.entry((w, shard)).or_insert(range.start);
                    self.workers[w].shards.insert(
                        shard,
                        SimShard { epoch, cursor: range.start, end: range.end, reported: range.start },
                    );
                }
                WorkerOutput::Cancel(shard) => {
                    self.workers[w].shards.remove(&shard);
                }
                WorkerOutput::Shrink { shard, epoch, new_end } => {
                    let ack = self.workers[w].shards.get_mut(&shard).filter(|s| s.epoch == epoch).map(|s| {
                        s.end = new_end.max(s.cursor).min(s.end);
                        s.end
                    });
                    if let Some(end) = ack {
                        self.event(w, EventBody::ShrinkAck { shard, epoch, end });
                    }
                }
                WorkerOutput::Beat => self.beat(w),
                WorkerOutput::Halt | WorkerOutput::Refused(_) => {}
                WorkerOutput::Exit(_) => {
                    self.workers[w].stopped = true;
                    self.workers[w].shards.clear();
                }
            }
        }
    }

    /// Golden nonces a worker has seen in a shard below `upto` (what its search reports).
    fn shard_found(&mut self, w: usize, shard: ShardId, upto: u128) -> Vec<u64> {
        let start = self.starts.get(&(w, shard)).copied().unwrap_or(upto);
        let all: Vec<u64> = self.golden.range(start as u64..upto as u64).copied().collect();
        match self.workers[w].conduct {
            // Whatever it dropped from its shares it drops from its finds too (same nonces).
            Conduct::SkipsHalf | Conduct::Miscomputes => {
                let shares: BTreeSet<u64> = self.segment_shares(w, start, upto).into_iter().collect();
                all.into_iter().filter(|n| shares.contains(n)).collect()
            }
            Conduct::Honest | Conduct::LiesAboutFinds => all,
        }
    }

    fn work(&mut self, w: usize) {
        if !self.workers[w].said_hello {
            if self.step >= self.workers[w].hello_at {
                self.workers[w].said_hello = true;
                self.drive(w, WorkerInput::Start);
            }
            return;
        }
        if self.rng.gen_bool(self.faults.stall) {
            let until = self.step + self.rng.gen_range(50..400);
            self.workers[w].health = Health::Stalled { until };
            return;
        }
        if self.rng.gen_bool(self.faults.crash) {
            self.workers[w].health = Health::Crashed;
            if self.rng.gen_bool(0.5) {
                let id = self.workers[w].id.clone();
                self.feed(Input::WorkerExited(id)); // the launcher noticed
            }
            return;
        }
        let pending = std::mem::take(&mut self.workers[w].inbox);
        for delivery in pending {
            let unix_ms = self.unix_ms();
            self.drive(w, WorkerInput::Delivered { delivery, unix_ms });
        }
        if self.workers[w].stopped {
            return;
        }
        let n = self.workers[w].shards.len().max(1) as u128;
        let speed = self.workers[w].speed / n + 1;
        let ids: Vec<ShardId> = self.workers[w].shards.keys().copied().collect();
        for id in ids {
            let (epoch, from, to, end) = {
                let s = &self.workers[w].shards[&id];
                (s.epoch, s.cursor, (s.cursor + speed).min(s.end), s.end)
            };
            let all: Vec<u64> = self.golden.range(from as u64..to as u64).copied().collect();
            let found = self.reported(w, all, from, to);
            for nonce in found {
                self.event(w, EventBody::Found { shard: id, epoch, nonce });
            }
            if let Some(s) = self.workers[w].shards.get_mut(&id) {
                s.cursor = to;
            }
            if to >= end {
                let Some(s) = self.workers[w].shards.remove(&id) else { continue };
                let found = self.shard_found(w, id, end);
                let shares = self.segment_shares(w, s.reported, end);
                let body = EventBody::ShardDone {
                    shard: id,
                    epoch,
                    best: None,
                    from: s.reported,
                    end,
                    found,
                    shares,
                };
                self.event(w, body);
                self.drive(w, WorkerInput::ShardFinished(id));
            }
        }
        if self.forger && self.rng.gen_bool(0.01) {
            self.forge();
        }
        if self.workers[w].conduct == Conduct::LiesAboutFinds && self.rng.gen_bool(0.02) {
            let nonce = self.rng.gen_range(0..1_000_000u64);
            self.event(w, EventBody::Found { shard: ShardId(0), epoch: 0, nonce });
        }
        if self.workers[w].machine.poll_timeout().is_some_and(|at| self.now() >= at) {
            self.drive(w, WorkerInput::Tick);
        }
    }

    /// A heartbeat, as the actor builds one from its searches: each shard's newest segment
    /// with what this worker's conduct reports of it.
    fn beat(&mut self, w: usize) {
        let segments: Vec<(ShardId, u64, u128, u128)> = self.workers[w]
            .shards
            .iter_mut()
            .map(|(&shard, s)| {
                let from = std::mem::replace(&mut s.reported, s.cursor);
                (shard, s.epoch, from, s.cursor)
            })
            .collect();
        let mut shards = Vec::new();
        for (shard, epoch, from, cursor) in segments {
            let found = self.shard_found(w, shard, cursor);
            let shares = self.segment_shares(w, from, cursor);
            shards.push(ShardProgress { shard, epoch, from, watermark: cursor, found, shares });
        }
        self.event(w, EventBody::Heartbeat { shards, rate: 1000.0, best: None });
    }

    fn run(&mut self) -> Result<(), String> {
        self.feed(Input::Start);
        while self.step < MAX_STEPS {
            self.step += 1;
            // Deliver what is due, in a random order among equals (reordering).
            let mut due: Vec<(u64, u64, Msg)> = Vec::new();
            let mut keep = Vec::new();
            for m in self.net.drain(..) {
                if m.0 <= self.step {
                    due.push(m);
                } else {
                    keep.push(m);
                }
            }
            self.net = keep;
            for i in (1..due.len()).rev() {
                let j = self.rng.gen_range(0..=i);
                due.swap(i, j);
            }
            for (_, _, m) in due {
                match m {
                    Msg::ToJob(ev) => self.feed(Input::Event(ev)),
                    Msg::ToWorker(w, cmd) => match self.workers[w].health {
                        Health::Crashed => {}
                        _ => self.workers[w].inbox.push(cmd),
                    },
                }
            }
            if self.job.poll_timeout().is_some_and(|at| self.now() >= at) {
                self.feed(Input::Tick);
            }
            if self.restart_at == Some(self.step) && self.job.outcome().is_none() {
                // The coordinator dies and comes back from its journal. Some workers die with it
                // (pipes, threads); the others (as on AWS) outlive it and must be adopted.
                let mut cfg = self.job.config().clone();
                // It resumes from what it last handed out to keep, not from its memory: the
                // progress since is searched again, but no verified nonce may be missing.
                let snapshot = self.kept.clone();
                if let Some(n) = self.job.snapshot().found.iter().find(|n| !snapshot.found.contains(n)) {
                    return Err(format!("golden nonce {n} verified but never handed out to keep"));
                }
                self.done_before = snapshot.done.iter().map(|r| r.len()).sum();
                cfg.resume = Some(snapshot);
                cfg.incarnation += 1;
                self.job = Job::new(cfg);
                for w in 0..self.workers.len() {
                    if self.rng.gen_bool(0.5) {
                        self.workers[w].health = Health::Crashed;
                    }
                }
                self.feed(Input::Start);
                let done = self.job.ledger().done_len();
                if done < self.done_before {
                    return Err(format!("restart lost progress: {} -> {done}", self.done_before));
                }
            }
            for w in 0..self.workers.len() {
                match self.workers[w].health {
                    Health::Alive => self.work(w),
                    Health::Stalled { until } if self.step >= until => self.workers[w].health = Health::Alive,
                    _ => {}
                }
            }
            self.job.check()?;
            let done = self.job.ledger().done_len();
            let suspects = self.job.status().verification.suspects.len();
            if done < self.done_before && suspects == self.suspects_before {
                return Err(format!("Done shrank from {} to {done} with no suspect", self.done_before));
            }
            self.done_before = done;
            self.suspects_before = suspects;
            if let Some(o) = self.job.outcome() {
                return self.judge(o.clone());
            }
        }
        let alive = self.workers.iter().filter(|w| w.health != Health::Crashed).count();
        Err(format!("the job waits forever: {alive} workers not crashed, {} launched", self.launched))
    }

    fn judge(&self, o: nonce_core::job::Outcome) -> Result<(), String> {
        let cfg = self.job.config();
        for s in &o.verification.suspects {
            let w = self.workers.iter().find(|w| w.id == s.worker).ok_or("a suspect nobody launched")?;
            if matches!(w.conduct, Conduct::Honest | Conduct::LiesAboutFinds) {
                return Err(format!("honest worker {} made suspect: {}", s.worker, s.reason));
            }
        }
        let truth: Vec<u64> = self.golden.iter().copied().collect();
        match o.kind {
            OutcomeKind::Found => {
                let n = o.nonce.ok_or("found without a nonce")?;
                if !self.golden.contains(&n) {
                    return Err(format!("answer {n} is not golden"));
                }
                if cfg.mode == Mode::Lowest && Some(&n) != truth.first() {
                    return Err(format!("lowest answer {n}, truth {:?}", truth.first()));
                }
                if cfg.mode == Mode::Exhaustive {
                    let want: Vec<u64> = truth.iter().copied().take(MAX_FOUND).collect();
                    if o.found != want {
                        let conducts: Vec<_> = self.workers.iter().map(|w| (&w.id.0, w.conduct)).collect();
                        return Err(format!(
                            "exhaustive found {:?}, truth {want:?}; workers {conducts:?}; {:?}; restart {:?}",
                            o.found, o.verification, self.restart_at
                        ));
                    }
                }
            }
            OutcomeKind::Exhausted => {
                if !truth.is_empty() {
                    let conducts: Vec<_> = self.workers.iter().map(|w| (&w.id.0, w.conduct)).collect();
                    return Err(format!(
                        "exhausted, but {} golden nonces exist; workers {conducts:?}; {:?}",
                        truth.len(),
                        o.verification
                    ));
                }
                if o.stats.searched != cfg.range.len() {
                    return Err("exhausted without searching everything".into());
                }
            }
            OutcomeKind::Failed(why) => {
                let crashed = self.workers.iter().all(|w| w.health == Health::Crashed || !w.said_hello);
                if !crashed {
                    let states: Vec<String> = self
                        .workers
                        .iter()
                        .map(|w| {
                            format!(
                                "{}:{:?} hello={} exited={:?} stopped={}",
                                w.id,
                                w.health,
                                w.said_hello,
                                w.machine.exited(),
                                w.stopped
                            )
                        })
                        .collect();
                    return Err(format!(
                        "failed ({why}) while workers were alive: {states:?}; loss {:.3} stall {:.4} crash {:.4}; stall timeout {:?}",
                        self.faults.loss, self.faults.stall, self.faults.crash, cfg.stall_timeout
                    ));
                }
            }
            other => return Err(format!("unexpected outcome {other:?}")),
        }
        Ok(())
    }
}

#[test]
fn seeded_fault_simulation() {
    let world = World::new();
    let seeds: Vec<u64> = match std::env::var("NONCE_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("NONCE_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("NONCE_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000u64);
            (0..n).collect()
        }
    };
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut suspects, mut forged) = (0, 0);
    for seed in seeds.iter().copied() {
        let mut sim = Sim::new(seed, &world);
        if let Err(e) = sim.run() {
            panic!(
                "seed {seed} failed at step {}: {e}\nreplay: NONCE_SIM_SEED={seed} cargo test -p coordinator --test simulation",
                sim.step
            );
        }
        let kind = sim.job.outcome().map_or("none", |o| o.kind.name());
        *outcomes.entry(kind).or_default() += 1;
        if let Some(o) = sim.job.outcome() {
            suspects += o.verification.suspects.len();
            forged += o.stats.forged;
        }
    }
    println!(
        "{} seeds: {outcomes:?}, {suspects} suspects caught, {forged} forged messages dropped",
        seeds.len()
    );
    if seeds.len() >= 1000 {
        // The faults must actually have been exercised, not just the happy path.
        assert!(outcomes.get("found").copied().unwrap_or(0) > seeds.len() / 2);
        assert!(outcomes.get("exhausted").copied().unwrap_or(0) > 0);
        assert!(suspects > 0 && forged > 0, "liars and forgers were exercised");
    }
}
