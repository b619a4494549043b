//! The job state machine: every decision the coordinator makes about one search, with no
//! I/O and no clock of its own (`handle(now, input) -> outputs`), so it can be tested and
//! simulated exhaustively. The actors around it only move messages and time.
//!
//! It never trusts a worker: a `Found` counts only once [`protocol::verify`] agrees, and
//! progress counts only from the worker that currently owns the shard, at the shard's epoch.
//! Messages of other jobs are dropped and counted (no queue purge is ever needed).

use crate::ledger::{Ledger, Span};
use protocol::{
    verify, Best, Command, Epoch, Event, EventBody, JobId, Mode, NonceRange, Puzzle, ShardId, WorkerId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Golden nonces a job keeps (the lowest ones).
pub const MAX_FOUND: usize = 100;

/// What a restarted coordinator knows of a job's earlier life: the ranges known searched and
/// the golden nonces found (re-verified on load: a journal is trusted no more than a worker).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// As `"start..end"` strings: JSON numbers (and serde's tagged enums) cannot carry 2^64.
    #[serde(with = "range_strings")]
    pub done: Vec<NonceRange>,
    pub found: Vec<u64>,
}

mod range_strings {
    use protocol::NonceRange;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ranges: &[NonceRange], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ranges.iter().map(|r| r.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NonceRange>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| NonceRange::parse(t, 1u128 << 64).map_err(serde::de::Error::custom)).collect()
    }
}

/// Everything fixed about a job when it starts.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub job: JobId,
    pub puzzle: Puzzle,
    pub mode: Mode,
    pub range: NonceRange,
    /// Workers to launch at the start.
    pub workers: usize,
    /// Most workers the job may launch in all, replacements included.
    pub max_launches: usize,
    /// A worker silent this long loses its shards.
    pub stall_timeout: Duration,
    /// How often the coordinator broadcasts that it is alive.
    pub keepalive: Duration,
    /// End the job as `timed_out` at this time after the start.
    pub deadline: Option<Duration>,
    /// Smallest piece worth stealing from a busy worker.
    pub min_steal: u128,
    /// Smallest shard `lowest` hands out: each shard costs an `Assign` and a `ShardDone`,
    /// free in memory but a request each over SQS.
    pub min_shard: u128,
    /// With no worker live, none starting and no launches left for this long, the job fails
    /// (so it never waits forever); a launch that never says Hello is written off after it.
    pub abandon_after: Duration,
    /// Progress from an earlier run of this job, to resume from.
    pub resume: Option<Snapshot>,
    /// Which life of the coordinator this is; sent in keep-alives so workers that outlived
    /// an earlier one re-introduce themselves.
    pub incarnation: u64,
}

impl JobConfig {
    /// A config with the timings that suit in-process workers.
    pub fn new(job: JobId, puzzle: Puzzle, mode: Mode, range: NonceRange, workers: usize) -> Self {
        let workers = workers.max(1);
        JobConfig {
            job,
            puzzle,
            mode,
            range,
            workers,
            max_launches: workers * 2,
            stall_timeout: Duration::from_secs(3),
            keepalive: Duration::from_millis(500),
            deadline: None,
            // Above a worker's chunk (2^16) so a steal frees real work, not a claimed chunk.
            min_steal: 1 << 18,
            min_shard: 1 << 16,
            abandon_after: Duration::from_secs(60),
            resume: None,
            incarnation: 1,
        }
    }
}

/// What happens to a job.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin: launch the planned fleet.
    Start,
    /// A message from a worker (possibly stale, duplicated, or of another job).
    Event(Event),
    /// Time passed.
    Tick,
    /// The user cancelled.
    Cancel,
    /// The launcher could not start `count` of the workers asked for.
    LaunchFailed { count: usize, reason: String },
    /// The launcher knows this worker is gone (process exit, task stopped).
    WorkerExited(WorkerId),
}

/// What the job asks its shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send { worker: WorkerId, inbox: String, command: Command },
    Broadcast(Command),
    Launch { count: usize },
    StopWorkers,
    Finish(Outcome),
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Found,
    Exhausted,
    Cancelled,
    TimedOut,
    Failed(String),
}

impl OutcomeKind {
    pub fn name(&self) -> &'static str {
        match self {
            OutcomeKind::Found => "found",
            OutcomeKind::Exhausted => "exhausted",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::TimedOut => "timed_out",
            OutcomeKind::Failed(_) => "failed",
        }
    }
}

/// Counters the job keeps for users and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Nonces known searched (Done in the ledger).
    pub searched: u128,
    pub stalls: u64,
    pub reshards: u64,
    /// Messages of other jobs, dropped.
    pub ghosts: u64,
    /// Messages from the wrong owner or epoch, or of finished shards, ignored.
    pub stale: u64,
    /// `Found` claims that failed verification.
    pub rejected: u64,
    pub steals: u64,
    pub launched: usize,
    pub workers_live: usize,
    pub workers_seen: usize,
    /// Sum of the live workers' last reported rates, nonces per second.
    pub rate: f64,
}

/// The end of a job: its answer and its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The answer: the nonce that ended a `first` job, the lowest golden one otherwise.
    pub nonce: Option<u64>,
    /// Verified golden nonces, lowest first (at most [`MAX_FOUND`]).
    pub found: Vec<u64>,
    /// The verified hash with the most leading zero bits seen.
    pub best: Option<Best>,
    pub stats: Stats,
    pub elapsed: Duration,
}

/// One worker as the job sees it, for `workers.list`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    pub worker: WorkerId,
    pub health: &'static str,
    pub rate: f64,
    pub shards: usize,
    /// Time since the worker was last heard from.
    pub silent_for: Duration,
}

/// A snapshot for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub total: u128,
    pub stats: Stats,
    pub lowest: Option<u64>,
    pub finished: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Live,
    /// Silent past the stall timeout; may come back.
    Stalled,
    /// Known gone.
    Dead,
}

#[derive(Debug)]
struct WorkerState {
    inbox: String,
    last_seen: Duration,
    shards: BTreeSet<ShardId>,
    rate: f64,
    health: Health,
    /// Waiting for a `ShrinkAck` that frees work for it.
    waiting_steal: bool,
}

#[derive(Debug)]
struct Shard {
    worker: WorkerId,
    epoch: Epoch,
    start: u128,
    end: u128,
    watermark: u128,
    /// A `Shrink` is out for this shard.
    shrinking: bool,
    /// The idle worker waiting for what that `Shrink` frees, if it is a steal.
    thief: Option<WorkerId>,
    /// A shrink freed nothing: the owner has claimed all of it, so stealing is pointless.
    claimed_to_end: bool,
    assigned_at: Duration,
    shrink_sent_at: Duration,
}

/// The state machine. See the module docs.
#[derive(Debug)]
pub struct Job {
    cfg: JobConfig,
    ledger: Ledger,
    workers: BTreeMap<WorkerId, WorkerState>,
    shards: BTreeMap<ShardId, Shard>,
    next_shard: u64,
    next_epoch: Epoch,
    /// Lowest verified golden nonces.
    found: BTreeSet<u64>,
    best: Option<(Best, [u8; 32])>,
    /// Launch times of workers that have not said Hello yet (nor failed).
    pending: Vec<Duration>,
    /// Last time any worker was live (for giving up when all are gone for good).
    last_live: Duration,
    shard_len: u128,
    started_at: Option<Duration>,
    last_keepalive: Duration,
    stats: Stats,
    finished: Option<Outcome>,
    /// Time of the input being handled.
    now: Duration,
    /// Something may have made a worker idle or freed work since the last `assign_idle`; keeps
    /// the per-heartbeat cost logarithmic instead of a scan of every worker.
    idle_dirty: bool,
}

impl Job {
    pub fn new(cfg: JobConfig) -> Self {
        let range = cfg.range;
        let even = range.len().div_ceil(cfg.workers.max(1) as u128).max(1);
        // `lowest` wants the whole fleet near the bottom of the range, so it hands out many
        // small shards in order; the others split evenly and rely on stealing at the end.
        let shard_len = match cfg.mode {
            Mode::Lowest => (range.len() / (cfg.workers.max(1) as u128 * 64)).max(cfg.min_shard).min(even),
            Mode::First | Mode::Exhaustive => even,
        };
        let base = 1 + (u64::from(cfg.incarnation as u32) << 32);
        let mut ledger = Ledger::new(range);
        let mut found = BTreeSet::new();
        if let Some(snap) = &cfg.resume {
            for r in &snap.done {
                ledger.mark_done(*r);
            }
            found.extend(
                snap.found
                    .iter()
                    .copied()
                    .filter(|&n| range.contains(u128::from(n)) && verify(&cfg.puzzle, n).golden),
            );
            while found.len() > MAX_FOUND {
                found.pop_last();
            }
        }
        Job {
            ledger,
            cfg,
            workers: BTreeMap::new(),
            shards: BTreeMap::new(),
            // Each incarnation numbers from its own base, so a worker that outlived an earlier
            // coordinator can never mistake a new assignment for its old one.
            next_shard: base,
            next_epoch: base,
            found,
            best: None,
            pending: Vec::new(),
            last_live: Duration::ZERO,
            shard_len,
            started_at: None,
            last_keepalive: Duration::ZERO,
            stats: Stats::default(),
            finished: None,
            now: Duration::ZERO,
            idle_dirty: true,
        }
    }

    pub fn id(&self) -> JobId {
        self.cfg.job
    }

    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// What a restarted coordinator needs to resume this job without redoing work.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            done: self.ledger.intervals().filter(|(_, st)| *st == Span::Done).map(|(r, _)| r).collect(),
            found: self.found.iter().copied().collect(),
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.finished.as_ref()
    }

    pub fn status(&self) -> Status {
        Status {
            total: self.cfg.range.len(),
            stats: self.stats_now(),
            lowest: self.found.first().copied(),
            finished: self.finished.is_some(),
        }
    }

    /// Every worker the job has heard from, at time `now`.
    pub fn workers_info(&self, now: Duration) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|(id, w)| WorkerInfo {
                worker: id.clone(),
                health: match w.health {
                    Health::Live => "live",
                    Health::Stalled => "stalled",
                    Health::Dead => "gone",
                },
                rate: w.rate,
                shards: w.shards.len(),
                silent_for: now.saturating_sub(w.last_seen),
            })
            .collect()
    }

    fn stats_now(&self) -> Stats {
        let live = self.workers.values().filter(|w| w.health == Health::Live);
        Stats {
            searched: self.ledger.done_len(),
            workers_live: live.clone().count(),
            rate: live.map(|w| w.rate).sum(),
            workers_seen: self.workers.len(),
            ..self.stats.clone()
        }
    }

    /// Feeds one input at time `now` (time since any fixed origin) and returns what to do.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.now = now;
        if self.finished.is_some() {
            if let Input::Event(_) = input {
                self.stats.ghosts += 1;
            }
            return out;
        }
        // The deadline is checked on every input, not only on ticks: an answer that arrives
        // after it does not count as found in time (it is still reported with the outcome).
        if let (Some(deadline), Some(started)) = (self.cfg.deadline, self.started_at) {
            if now >= started + deadline {
                if let Input::Event(Event { body: EventBody::Found { nonce, .. }, job, .. }) = &input {
                    if *job == self.cfg.job {
                        self.on_found_late(*nonce);
                    }
                }
                self.finish(now, OutcomeKind::TimedOut, &mut out);
                return out;
            }
        }
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Event(ev) => self.on_event(now, ev, &mut out),
            Input::Tick => self.on_tick(now, &mut out),
            Input::Cancel => self.finish(now, OutcomeKind::Cancelled, &mut out),
            Input::LaunchFailed { count, reason } => {
                tracing::warn!(job = %self.cfg.job, count, %reason, "launch failed");
                let n = count.min(self.pending.len());
                self.pending.drain(..n);
                self.replace_lost(&mut out);
                if self.no_way_forward() {
                    self.finish(
                        now,
                        OutcomeKind::Failed(format!("no worker could be started: {reason}")),
                        &mut out,
                    );
                }
            }
            Input::WorkerExited(worker) => {
                self.lose_worker(&worker, Health::Dead);
                self.replace_lost(&mut out);
                self.assign_idle(now, &mut out);
                self.check_done(now, &mut out);
                if self.finished.is_none() && self.no_way_forward() {
                    self.finish(now, OutcomeKind::Failed("every worker was lost".into()), &mut out);
                }
            }
        }
        out
    }

    fn start(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.started_at.is_some() {
            return;
        }
        self.started_at = Some(now);
        self.last_keepalive = now;
        self.last_live = now;
        tracing::info!(job = %self.cfg.job, puzzle = %self.cfg.puzzle.describe(), range = %self.cfg.range,
            mode = %self.cfg.mode, workers = self.cfg.workers, resumed_done = %self.ledger.done_len(), "job started");
        if self.cfg.mode == Mode::Lowest {
            if let Some(&n) = self.found.first() {
                self.trim_above(now, u128::from(n), out);
            }
        }
        self.check_done(now, out);
        if self.finished.is_none() {
            self.launch(self.cfg.workers, out);
        }
    }

    fn launch(&mut self, count: usize, out: &mut Vec<Output>) {
        let count = count.min(self.cfg.max_launches.saturating_sub(self.stats.launched));
        if count > 0 {
            self.stats.launched += count;
            self.pending.extend(std::iter::repeat_n(self.now, count));
            out.push(Output::Launch { count });
        }
    }

    /// Launches replacements so live + starting workers reach the planned fleet again.
    fn replace_lost(&mut self, out: &mut Vec<Output>) {
        let live = self.workers.values().filter(|w| w.health == Health::Live).count();
        let missing = self.cfg.workers.saturating_sub(live + self.pending.len());
        if missing > 0 && !self.remaining_work_is_empty() {
            self.launch(missing, out);
        }
    }

    fn remaining_work_is_empty(&self) -> bool {
        self.ledger.is_complete()
    }

    /// No worker alive, none starting, and none may be launched: waiting would be forever.
    /// A resumed job never decides this at once: workers that outlived the previous
    /// coordinator may still introduce themselves (the tick's patience rule decides).
    fn no_way_forward(&self) -> bool {
        self.cfg.resume.is_none()
            && self.workers.values().all(|w| w.health == Health::Dead)
            && self.pending.is_empty()
            && self.stats.launched >= self.cfg.max_launches
    }

    fn on_event(&mut self, now: Duration, ev: Event, out: &mut Vec<Output>) {
        if ev.job != self.cfg.job {
            self.stats.ghosts += 1;
            return;
        }
        let worker = ev.worker;
        if let EventBody::Hello { inbox, .. } = &ev.body {
            self.on_hello(now, worker.clone(), inbox.clone());
            self.assign_idle(now, out);
            return;
        }
        // A Found is checked on its merits, whoever sends it and whenever.
        if let EventBody::Found { nonce, .. } = ev.body {
            self.touch(now, &worker);
            self.on_found(now, nonce, out);
            return;
        }
        if !self.workers.contains_key(&worker) {
            self.stats.stale += 1;
            return;
        }
        self.touch(now, &worker);
        match ev.body {
            EventBody::Heartbeat { shards, rate, best } => {
                let reported: Vec<ShardId> = shards.iter().map(|p| p.shard).collect();
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.rate = if rate.is_finite() && rate >= 0.0 { rate } else { 0.0 };
                }
                for p in shards {
                    // Finds first, then the watermark that covers them.
                    for &nonce in &p.found {
                        self.take_found(now, nonce, out);
                    }
                    match self.owned_shard(&worker, p.shard, p.epoch) {
                        Some(_) => self.advance(p.shard, p.watermark),
                        None => {
                            // Work we no longer want (revoked while the worker was away).
                            self.stats.stale += 1;
                            self.send(
                                &worker,
                                Command::Revoke { job: self.cfg.job, shard: p.shard, epoch: p.epoch },
                                out,
                            );
                        }
                    }
                }
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                self.reclaim_unreported(now, &worker, &reported);
            }
            EventBody::ShardDone { shard, epoch, best, end, found } => {
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                for nonce in found {
                    self.take_found(now, nonce, out);
                }
                if self.owned_shard(&worker, shard, epoch).is_some() {
                    // Only what the worker says it searched is Done; the rest (a shrink whose
                    // ack was lost) goes back to Free with the shard.
                    self.advance(shard, end);
                    self.drop_shard(shard);
                } else {
                    self.stats.stale += 1;
                }
            }
            EventBody::ShrinkAck { shard, epoch, end } => {
                if self.owned_shard(&worker, shard, epoch).is_some() {
                    self.shrunk(shard, end);
                } else {
                    self.stats.stale += 1;
                }
            }
            EventBody::Bye => self.lose_worker(&worker, Health::Dead),
            EventBody::Hello { .. } | EventBody::Found { .. } => {}
        }
        self.assign_idle(now, out);
        self.check_done(now, out);
    }

    /// Shards the worker should hold but has not mentioned for a whole grace period (an
    /// `Assign` lost on the way, or a `ShardDone` lost back) are taken back and re-sharded.
    fn reclaim_unreported(&mut self, now: Duration, worker: &WorkerId, reported: &[ShardId]) {
        let grace = self.cfg.stall_timeout;
        let Some(w) = self.workers.get(worker) else { return };
        let lost: Vec<ShardId> = w
            .shards
            .iter()
            .copied()
            .filter(|id| !reported.contains(id))
            .filter(|id| self.shards.get(id).is_some_and(|s| now > s.assigned_at + grace))
            .collect();
        for shard in lost {
            tracing::warn!(job = %self.cfg.job, %worker, %shard, "shard not reported by its worker; re-sharding it");
            self.stats.reshards += 1;
            self.drop_shard(shard);
        }
    }

    fn on_hello(&mut self, now: Duration, worker: WorkerId, inbox: String) {
        self.idle_dirty = true;
        match self.workers.get_mut(&worker) {
            Some(w) => {
                // A duplicate Hello, or a worker back from a stall: it keeps nothing it lost.
                w.inbox = inbox;
                w.last_seen = now;
                if w.health != Health::Live {
                    w.health = Health::Live;
                }
            }
            None => {
                if !self.pending.is_empty() {
                    self.pending.remove(0);
                }
                tracing::info!(job = %self.cfg.job, %worker, "worker joined");
                self.workers.insert(
                    worker,
                    WorkerState {
                        inbox,
                        last_seen: now,
                        shards: BTreeSet::new(),
                        rate: 0.0,
                        health: Health::Live,
                        waiting_steal: false,
                    },
                );
            }
        }
    }

    fn touch(&mut self, now: Duration, worker: &WorkerId) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.last_seen = now;
            if w.health == Health::Stalled {
                tracing::info!(job = %self.cfg.job, %worker, "stalled worker is back");
                w.health = Health::Live;
                self.idle_dirty = true;
            }
        }
    }

    fn owned_shard(&self, worker: &WorkerId, shard: ShardId, epoch: Epoch) -> Option<&Shard> {
        self.shards.get(&shard).filter(|s| &s.worker == worker && s.epoch == epoch)
    }

    /// Records that every nonce of `shard` below `watermark` is searched.
    fn advance(&mut self, shard: ShardId, watermark: u128) {
        let Some(s) = self.shards.get_mut(&shard) else { return };
        let w = watermark.min(s.end);
        if w > s.watermark {
            self.ledger.mark_done(NonceRange::new(s.watermark, w));
            s.watermark = w;
        }
    }

    fn drop_shard(&mut self, shard: ShardId) {
        if let Some(s) = self.shards.remove(&shard) {
            self.idle_dirty = true;
            // Whatever was not searched goes back to Free.
            self.ledger.release(NonceRange::new(s.watermark, s.end), shard);
            if let Some(w) = self.workers.get_mut(&s.worker) {
                w.shards.remove(&shard);
            }
            self.end_steal_wait(s.thief);
        }
    }

    fn shrunk(&mut self, shard: ShardId, end: u128) {
        let Some(s) = self.shards.get_mut(&shard) else { return };
        self.idle_dirty = true;
        s.shrinking = false;
        let thief = s.thief.take();
        if end >= s.end {
            s.claimed_to_end = true;
        }
        if end < s.end {
            let freed = NonceRange::new(end.max(s.watermark), s.end);
            s.end = end.max(s.watermark);
            tracing::debug!(job = %self.cfg.job, %shard, %freed, "shard shrunk");
            self.ledger.release(freed, shard);
        }
        self.end_steal_wait(thief);
    }

    /// A steal was answered (or became moot): its thief may look for work again.
    fn end_steal_wait(&mut self, thief: Option<WorkerId>) {
        if let Some(w) = thief.and_then(|t| self.workers.get_mut(&t)) {
            w.waiting_steal = false;
            self.idle_dirty = true;
        }
    }

    /// A nonce listed with progress: taken like a `Found` unless already known (or unable to
    /// enter the kept list), so repeated lists cost a lookup, not a hash.
    fn take_found(&mut self, now: Duration, nonce: u64, out: &mut Vec<Output>) {
        let known = self.found.contains(&nonce);
        let cannot_enter = self.found.len() >= MAX_FOUND && self.found.last().is_some_and(|&max| nonce > max);
        if !known && !cannot_enter && self.finished.is_none() {
            self.on_found(now, nonce, out);
        }
    }

    fn on_found(&mut self, now: Duration, nonce: u64, out: &mut Vec<Output>) {
        let v = verify(&self.cfg.puzzle, nonce);
        if !v.golden || !self.cfg.range.contains(u128::from(nonce)) {
            self.stats.rejected += 1;
            tracing::warn!(job = %self.cfg.job, nonce, "rejected a Found that does not verify");
            return;
        }
        self.offer_best(nonce);
        let new_lowest = self.found.first().is_none_or(|&low| nonce < low);
        if self.found.insert(nonce) {
            tracing::info!(job = %self.cfg.job, nonce, hash = %hex::encode(v.hash), "golden nonce verified");
        }
        if self.found.len() > MAX_FOUND {
            self.found.pop_last();
        }
        match self.cfg.mode {
            Mode::First => self.finish(now, OutcomeKind::Found, out),
            Mode::Lowest if new_lowest => {
                self.trim_above(now, u128::from(nonce), out);
                self.check_done(now, out);
            }
            Mode::Lowest | Mode::Exhaustive => self.check_done(now, out),
        }
    }

    /// A verified nonce that arrived after the deadline: kept for the report, not as success.
    fn on_found_late(&mut self, nonce: u64) {
        if verify(&self.cfg.puzzle, nonce).golden && self.cfg.range.contains(u128::from(nonce)) {
            self.found.insert(nonce);
            if self.found.len() > MAX_FOUND {
                self.found.pop_last();
            }
            self.offer_best(nonce);
        }
    }

    /// `lowest` mode: nothing at or above `n` is needed any more.
    fn trim_above(&mut self, now: Duration, n: u128, out: &mut Vec<Output>) {
        let over: Vec<ShardId> = self.shards.iter().filter(|(_, s)| s.end > n).map(|(&id, _)| id).collect();
        for id in over {
            let Some(s) = self.shards.get(&id) else { continue };
            let (worker, epoch) = (s.worker.clone(), s.epoch);
            if s.watermark >= n {
                self.send(&worker, Command::Revoke { job: self.cfg.job, shard: id, epoch }, out);
                self.drop_shard(id);
            } else {
                self.send(&worker, Command::Shrink { job: self.cfg.job, shard: id, epoch, new_end: n }, out);
                if let Some(s) = self.shards.get_mut(&id) {
                    s.shrinking = true;
                    s.shrink_sent_at = now;
                }
            }
        }
        self.assign_idle(now, out);
    }

    /// Considers `nonce` for the best hash, after verifying it ourselves.
    fn offer_best(&mut self, nonce: u64) {
        if !self.cfg.range.contains(u128::from(nonce)) {
            return;
        }
        let v = verify(&self.cfg.puzzle, nonce);
        if self.best.is_none_or(|(_, h)| v.hash < h) {
            self.best = Some((Best { nonce, leading_zeros: v.leading_zeros }, v.hash));
        }
    }

    fn on_tick(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.started_at.is_none() {
            return;
        }
        // A periodic look at idle workers bounds any missed wake-up to one tick.
        self.idle_dirty = true;
        // Launches that never said Hello are written off, so they can be replaced.
        let patience = self.cfg.abandon_after.max(self.cfg.stall_timeout * 10);
        self.pending.retain(|&at| now <= at + patience);
        if self.workers.values().any(|w| w.health == Health::Live) || !self.pending.is_empty() {
            self.last_live = now;
        } else if now > self.last_live + patience && self.stats.launched >= self.cfg.max_launches {
            // No worker alive, none starting, none may be launched, and none back for long.
            self.finish(now, OutcomeKind::Failed("every worker was lost".into()), out);
            return;
        }
        if now >= self.last_keepalive + self.cfg.keepalive {
            self.last_keepalive = now;
            out.push(Output::Broadcast(Command::KeepAlive {
                job: self.cfg.job,
                incarnation: self.cfg.incarnation,
            }));
        }
        let stalled: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.health == Health::Live && now > w.last_seen + self.cfg.stall_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in &stalled {
            tracing::warn!(job = %self.cfg.job, %worker, "worker stalled");
            self.lose_worker(worker, Health::Stalled);
        }
        // Keep the planned fleet: replace the stalled, the gone, and launches that never came.
        self.replace_lost(out);
        // A Shrink or its ack lost: stop waiting for it (the owner keeps the shard as it was).
        let grace = self.cfg.stall_timeout;
        let expired: Vec<(ShardId, Option<WorkerId>)> = self
            .shards
            .iter_mut()
            .filter(|(_, s)| s.shrinking && now > s.shrink_sent_at + grace)
            .map(|(&id, s)| {
                s.shrinking = false;
                (id, s.thief.take())
            })
            .collect();
        for (_, thief) in expired {
            self.end_steal_wait(thief);
        }
        self.assign_idle(now, out);
        self.check_done(now, out);
    }

    /// Takes every shard from `worker`; what it had not searched goes back to Free.
    fn lose_worker(&mut self, worker: &WorkerId, health: Health) {
        let Some(w) = self.workers.get_mut(worker) else { return };
        if w.health == Health::Dead {
            return;
        }
        let had_work = !w.shards.is_empty();
        if health == Health::Stalled || had_work {
            self.stats.stalls += 1;
        }
        w.health = health;
        w.waiting_steal = false;
        w.rate = 0.0;
        let shards: Vec<ShardId> = std::mem::take(&mut w.shards).into_iter().collect();
        for shard in shards {
            if let Some(s) = self.shards.get(&shard) {
                if s.watermark < s.end {
                    self.stats.reshards += 1;
                    tracing::warn!(job = %self.cfg.job, %worker, %shard,
                        range = %NonceRange::new(s.watermark, s.end), "re-sharding a lost worker's range");
                }
            }
            self.drop_shard(shard);
        }
    }

    /// Gives work to every live worker without any: free ranges first, then a steal.
    fn assign_idle(&mut self, now: Duration, out: &mut Vec<Output>) {
        if !std::mem::take(&mut self.idle_dirty) {
            return;
        }
        let idle: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.health == Health::Live && w.shards.is_empty() && !w.waiting_steal)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in idle {
            if let Some(range) = self.ledger.lowest_free(self.cutoff(), self.shard_len) {
                self.assign(now, &worker, range, out);
            } else if !self.steal_for(now, &worker, out) {
                break;
            }
        }
    }

    /// In `lowest` mode nothing at or above the lowest verified nonce is worth searching.
    fn cutoff(&self) -> u128 {
        match (self.cfg.mode, self.found.first()) {
            (Mode::Lowest, Some(&n)) => u128::from(n),
            _ => u128::MAX,
        }
    }

    fn assign(&mut self, now: Duration, worker: &WorkerId, range: NonceRange, out: &mut Vec<Output>) {
        let shard = ShardId(self.next_shard);
        self.next_shard += 1;
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.ledger.assign(range, shard);
        self.shards.insert(
            shard,
            Shard {
                worker: worker.clone(),
                epoch,
                start: range.start,
                end: range.end,
                watermark: range.start,
                shrinking: false,
                thief: None,
                claimed_to_end: false,
                assigned_at: now,
                shrink_sent_at: Duration::ZERO,
            },
        );
        if let Some(w) = self.workers.get_mut(worker) {
            w.shards.insert(shard);
        }
        tracing::debug!(job = %self.cfg.job, %worker, %shard, %range, "assigned");
        let cmd = Command::Assign {
            job: self.cfg.job,
            shard,
            epoch,
            puzzle: self.cfg.puzzle.clone(),
            range,
            mode: self.cfg.mode,
        };
        self.send(worker, cmd, out);
    }

    /// Asks the owner of the largest remaining shard to give up its upper half.
    fn steal_for(&mut self, now: Duration, thief: &WorkerId, out: &mut Vec<Output>) -> bool {
        let cutoff = self.cutoff();
        let victim = self
            .shards
            .iter()
            .filter(|(_, s)| !s.shrinking && !s.claimed_to_end && &s.worker != thief)
            .map(|(&id, s)| (s.end.min(cutoff).saturating_sub(s.watermark), id))
            .filter(|&(left, _)| left >= 2 * self.cfg.min_steal)
            .max();
        let Some((left, shard)) = victim else { return false };
        let Some(s) = self.shards.get_mut(&shard) else { return false };
        s.shrinking = true;
        s.shrink_sent_at = now;
        s.thief = Some(thief.clone());
        let new_end = s.watermark + left / 2;
        let (owner, epoch) = (s.worker.clone(), s.epoch);
        self.stats.steals += 1;
        if let Some(w) = self.workers.get_mut(thief) {
            w.waiting_steal = true;
        }
        tracing::debug!(job = %self.cfg.job, %shard, %owner, %thief, new_end, "stealing work");
        self.send(&owner, Command::Shrink { job: self.cfg.job, shard, epoch, new_end }, out);
        true
    }

    fn send(&self, worker: &WorkerId, command: Command, out: &mut Vec<Output>) {
        if let Some(w) = self.workers.get(worker) {
            out.push(Output::Send { worker: worker.clone(), inbox: w.inbox.clone(), command });
        }
    }

    fn check_done(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.finished.is_some() {
            return;
        }
        let lowest = self.found.first().copied();
        let done = match (self.cfg.mode, lowest) {
            (Mode::Lowest, Some(n)) => self.ledger.done_below(u128::from(n)),
            _ => self.ledger.is_complete(),
        };
        if done {
            let kind = if lowest.is_some() { OutcomeKind::Found } else { OutcomeKind::Exhausted };
            self.finish(now, kind, out);
        }
    }

    fn finish(&mut self, now: Duration, kind: OutcomeKind, out: &mut Vec<Output>) {
        let nonce = match self.cfg.mode {
            // `first` ends on the nonce that arrived; it is the only one, or the lowest seen.
            Mode::First | Mode::Lowest | Mode::Exhaustive => self.found.first().copied(),
        };
        let outcome = Outcome {
            kind,
            nonce,
            found: self.found.iter().copied().collect(),
            best: self.best.map(|(b, _)| b),
            stats: self.stats_now(),
            elapsed: now.saturating_sub(self.started_at.unwrap_or(now)),
        };
        tracing::info!(job = %self.cfg.job, outcome = outcome.kind.name(), nonce = ?outcome.nonce,
            searched = %outcome.stats.searched, "job finished");
        for w in self.workers.values_mut() {
            w.shards.clear();
        }
        self.shards.clear();
        out.push(Output::Broadcast(Command::Stop { job: Some(self.cfg.job) }));
        out.push(Output::StopWorkers);
        out.push(Output::Finish(outcome.clone()));
        self.finished = Some(outcome);
    }

    /// Checks the invariants that hold between any two inputs. For tests and simulations.
    pub fn check(&self) -> Result<(), String> {
        self.ledger.check()?;
        for (&id, s) in &self.shards {
            if s.watermark < s.start || s.watermark > s.end {
                return Err(format!("{id}: watermark {} outside {}..{}", s.watermark, s.start, s.end));
            }
            if s.watermark < s.end && self.ledger.state_at(s.watermark) != Some(Span::Assigned(id)) {
                return Err(format!("{id}: unsearched part not assigned to it in the ledger"));
            }
        }
        if let Some(o) = &self.finished {
            if let Some(n) = o.nonce {
                if !verify(&self.cfg.puzzle, n).golden {
                    return Err(format!("answer {n} does not verify"));
                }
                if self.cfg.mode == Mode::Lowest
                    && o.kind == OutcomeKind::Found
                    && !self.ledger.done_below(u128::from(n))
                {
                    return Err(format!("lowest answer {n} with unsearched nonces below it"));
                }
            }
        }
        Ok(())
    }
}
