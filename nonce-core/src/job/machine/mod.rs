//! The state machine: every decision the coordinator makes about one search, with no I/O and
//! no clock of its own (`handle(now, input) -> outputs`).
//!
//! It never trusts a worker: a message counts only if its tag verifies under the key of the
//! worker it names (which only the workers this job launched have), a `Found` only once
//! [`protocol::verify`] agrees, progress only from the worker that currently owns the shard,
//! at the shard's epoch, and only with the shares that prove it. Messages of other jobs are
//! dropped and counted (no queue purge is ever needed).
//!
//! The decisions are split by what they are about: [`workers`] (messages in, liveness, stalls),
//! [`shards`] (assigning, stealing, shrinking), [`results`] (verified finds, the best hash),
//! [`proof`] (shares, suspects), [`spot`] (spot checks).
//! This file holds the state and the entry point, `handle`, and how a job ends.

mod proof;
mod results;
mod shards;
mod spot;
mod workers;

use super::{
    Input, JobConfig, MapSpan, MapState, Outcome, OutcomeKind, Output, Snapshot, SpaceMap, Stats, Status,
    Verification, WorkerInfo, MAX_FOUND,
};
use crate::ledger::{Ledger, Span};
use protocol::auth::{ReplayWindow, WorkerKey};
use protocol::{verify, Best, Command, Epoch, EventBody, JobId, Mode, NonceRange, ShardId, WorkerId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::outcome::WorkerHealth as Health;

#[derive(Debug)]
struct WorkerState {
    inbox: String,
    last_seen: Duration,
    shards: BTreeSet<ShardId>,
    rate: f64,
    health: Health,
    /// Waiting for a `ShrinkAck` that frees work for it.
    waiting_steal: bool,
    /// Launch to first Hello, when this worker was one the job launched.
    startup: Option<Duration>,
    key: WorkerKey,
    /// Sequence numbers seen from it.
    window: ReplayWindow,
    /// Nonces credited to it and the verified shares among them (the share test's input).
    credited: u128,
    shares: u64,
    /// Every range credited to it: what is reopened if it is caught.
    claims: proof::Claims,
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
    /// Workers launched that have not said Hello yet (nor failed), with their launch times.
    pending: BTreeMap<WorkerId, Duration>,
    /// Launches a paced launcher has not sent yet (see `JobConfig::paced_launches`).
    queued: BTreeSet<WorkerId>,
    /// Workers this life of the coordinator has named (for the next id).
    named: u64,
    /// Shares and spot checks, for the outcome.
    verification: Verification,
    /// Spot checks out for re-search, by their shard.
    checks: spot::Checks,
    /// Draws for spot checks: unpredictable to workers (seeded from the job's secret).
    choices: spot::Choices,
    /// Start-ups measured so far (launch to first Hello), for the planner's history.
    startups: Vec<Duration>,
    /// Last time any worker was live (for giving up when all are gone for good).
    last_live: Duration,
    shard_len: u128,
    started_at: Option<Duration>,
    last_keepalive: Duration,
    /// When the job last looked at its workers (`Input::Tick`).
    last_tick: Duration,
    /// The snapshot last handed out to keep, and when.
    persisted: Snapshot,
    last_persist: Duration,
    /// A new golden nonce: hand the snapshot out at once.
    persist_now: bool,
    stats: Stats,
    finished: Option<Outcome>,
    /// Time of the input being handled.
    now: Duration,
    /// When the coordinator's current self-check period began, and the nonces it searched
    /// itself in it (see `spot::SELF_CHECK_PERIOD`).
    self_checked: (Duration, u128),
    /// Something may have made a worker idle or freed work since the last `assign_idle`; keeps
    /// the per-heartbeat cost logarithmic instead of a scan of every worker.
    idle_dirty: bool,
}

impl Job {
    /// A job that has not started (feed it `Input::Start`); from `cfg.resume`, if given.
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
        let choices = spot::Choices::new(cfg.secret.choice_seed(cfg.job));
        let verification = Verification {
            share_bits: cfg.share_bits,
            false_alarm: cfg.false_alarm,
            ..Verification::default()
        };
        Job {
            ledger,
            choices,
            verification,
            checks: spot::Checks::default(),
            named: 0,
            cfg,
            workers: BTreeMap::new(),
            shards: BTreeMap::new(),
            // Each incarnation numbers from its own base, so a worker that outlived an earlier
            // coordinator can never mistake a new assignment for its old one.
            next_shard: base,
            next_epoch: base,
            found,
            best: None,
            pending: BTreeMap::new(),
            queued: BTreeSet::new(),
            startups: Vec::new(),
            last_live: Duration::ZERO,
            shard_len,
            started_at: None,
            last_keepalive: Duration::ZERO,
            last_tick: Duration::ZERO,
            persisted: Snapshot::default(),
            last_persist: Duration::ZERO,
            persist_now: false,
            stats: Stats::default(),
            finished: None,
            now: Duration::ZERO,
            self_checked: (Duration::ZERO, 0),
            idle_dirty: true,
        }
    }

    /// The period of the job's look at its workers: half a heartbeat, so a stall is seen
    /// within half a heartbeat of its timeout and a lost `Shrink` within as much of its grace
    /// (never under 20 ms: a busy loop buys nothing).
    pub fn tick_period(&self) -> Duration {
        (self.cfg.heartbeat / 2).max(Duration::from_millis(20))
    }

    /// When the job next needs an `Input::Tick`, in the time of `handle`'s `now`: the next
    /// look at its workers, or its deadline if that comes first (kept to the instant, not to a
    /// tick). `None` before `Start` and once it has finished: a shell with no timeout to keep
    /// waits for the next input, and one whose job finished stops its timer for good. Inputs
    /// other than ticks never move it later; a tick fed early is no harm.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.finished.is_some() {
            return None;
        }
        let started = self.started_at?;
        let look = self.last_tick + self.tick_period();
        Some(match self.cfg.deadline {
            Some(d) => look.min(started + d),
            None => look,
        })
    }

    /// Its id.
    pub fn id(&self) -> JobId {
        self.cfg.job
    }

    /// What it was started with.
    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    /// Which nonces are free, assigned and done.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// What a restarted coordinator needs to resume this job without redoing work.
    /// Claims whose spot checks are still out are left out: a restarted coordinator could not
    /// check them, so it searches them again rather than believe them.
    pub fn snapshot(&self) -> Snapshot {
        let mut ledger = self.ledger.clone();
        for r in self.unchecked() {
            ledger.reopen(r);
        }
        Snapshot {
            done: ledger.intervals().filter(|(_, st)| *st == Span::Done).map(|(r, _)| r).collect(),
            found: self.found.iter().copied().collect(),
        }
    }

    /// Start-ups of the workers that joined so far (launch request to first `Hello`), in the
    /// order they joined. See [`Outcome::startups`].
    pub fn startups(&self) -> &[Duration] {
        &self.startups
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.finished.as_ref()
    }

    /// Its progress now.
    pub fn status(&self) -> Status {
        Status {
            total: self.cfg.range.len(),
            stats: self.stats_now(),
            lowest: self.found.first().copied(),
            finished: self.finished.is_some(),
            verification: match &self.finished {
                Some(o) => o.verification.clone(),
                None => self.verification_now(),
            },
        }
    }

    /// Every worker the job has heard from, at time `now`.
    pub fn workers_info(&self, now: Duration) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|(id, w)| WorkerInfo {
                worker: id.clone(),
                health: w.health,
                shares: w.shares,
                shares_expected: crate::proof::expected_shares(w.credited, self.cfg.share_bits),
                rate: w.rate,
                shards: w.shards.len(),
                silent_for: now.saturating_sub(w.last_seen),
                ranges: w
                    .shards
                    .iter()
                    .filter_map(|id| self.shards.get(id))
                    .map(|s| NonceRange::new(s.watermark, s.end.max(s.watermark)))
                    .collect(),
                startup: w.startup,
            })
            .collect()
    }

    /// The nonce space as the ledger holds it, for pictures: each interval done, free, or
    /// assigned (to which worker, searched up to which watermark). At most `max` intervals,
    /// lowest first; `truncated` says when there were more.
    pub fn space_map(&self, max: usize) -> SpaceMap {
        let mut intervals = Vec::new();
        let mut truncated = false;
        for (range, span) in self.ledger.intervals() {
            if intervals.len() == max {
                truncated = true;
                break;
            }
            let state = match span {
                Span::Free => MapState::Free,
                Span::Done => MapState::Done,
                Span::Assigned(shard) => match self.shards.get(&shard) {
                    Some(s) => MapState::Assigned { worker: s.worker.clone(), shard_start: s.start },
                    None => MapState::Free,
                },
            };
            intervals.push(MapSpan { range, state });
        }
        SpaceMap { range: self.cfg.range, intervals, truncated }
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
                if let Input::Event(sealed) = &input {
                    if let (EventBody::Found { nonce, .. }, true) =
                        (&sealed.event.body, self.authentic(sealed))
                    {
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
            Input::LaunchSent { workers } => {
                for w in workers {
                    if self.queued.remove(&w) {
                        self.pending.insert(w, now);
                    }
                }
            }
            Input::LaunchFailed { workers, reason } => {
                tracing::warn!(count = workers.len(), %reason, "launch failed");
                for w in &workers {
                    self.pending.remove(w);
                    self.queued.remove(w);
                }
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
                self.lose_worker(&worker, Health::Gone);
                self.replace_lost(&mut out);
                self.assign_idle(now, &mut out);
                self.check_done(now, &mut out);
                if self.finished.is_none() && self.no_way_forward() {
                    self.finish(now, OutcomeKind::Failed("every worker was lost".into()), &mut out);
                }
            }
        }
        self.persist(now, &mut out);
        out
    }

    /// Hands out the snapshot to keep when it has changed: at once for a new golden nonce,
    /// otherwise once `persist_every` has passed since the last (checked on every input, so
    /// a job fed only events still persists; ticks bound the wait).
    fn persist(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.finished.is_some() || self.started_at.is_none() {
            return;
        }
        if !self.persist_now && now < self.last_persist + self.cfg.persist_every {
            return;
        }
        self.persist_now = false;
        self.last_persist = now;
        let snapshot = self.snapshot();
        if snapshot != self.persisted {
            self.persisted = snapshot.clone();
            out.push(Output::Persist(snapshot));
        }
    }

    fn start(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.started_at.is_some() {
            return;
        }
        self.started_at = Some(now);
        self.stats.resumed = self.ledger.done_len();
        self.last_keepalive = now;
        self.last_tick = now;
        self.last_persist = now;
        // What the job resumed from is kept already.
        self.persisted = self.snapshot();
        self.last_live = now;
        tracing::info!(puzzle = %self.cfg.puzzle.describe(), range = %self.cfg.range,
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
            let workers: Vec<WorkerId> = (0..count).map(|_| self.name_worker()).collect();
            for w in &workers {
                if self.cfg.paced_launches {
                    self.queued.insert(w.clone());
                } else {
                    self.pending.insert(w.clone(), self.now);
                }
            }
            out.push(Output::Launch { workers });
        }
    }

    /// A new worker's id: `w<n>-<incarnation>-<job>`, unique across the coordinator's lives
    /// (a resumed job adopts the previous life's workers while launching its own), short
    /// enough for an SQS queue name under the longest prefix, and made only of the
    /// characters queue names allow.
    fn name_worker(&mut self) -> WorkerId {
        let n = self.named;
        self.named += 1;
        WorkerId(format!("w{n}-{:08x}-{}", self.cfg.incarnation as u32, self.cfg.job))
    }

    /// Launches replacements so live + starting workers reach the planned fleet again.
    fn replace_lost(&mut self, out: &mut Vec<Output>) {
        let live = self.workers.values().filter(|w| w.health == Health::Live).count();
        let missing = self.cfg.workers.saturating_sub(live + self.pending.len() + self.queued.len());
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
            && self.workers.values().all(|w| matches!(w.health, Health::Gone | Health::Suspect))
            && self.pending.is_empty()
            && self.queued.is_empty()
            && self.stats.launched >= self.cfg.max_launches
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
        // An answer that rests on claims waits for the spot checks of those claims.
        if done && self.checks_outstanding() {
            return;
        }
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
            startups: self.startups.clone(),
            unstarted: if self.cfg.resume.is_none() {
                self.pending.values().map(|&at| now.saturating_sub(at)).collect()
            } else {
                Vec::new()
            },
            verification: self.verification_now(),
        };
        // The nonce as a number, or no field at all: `?` would log `"None"` / `"Some(5)"`.
        match outcome.nonce {
            Some(nonce) => tracing::info!(outcome = outcome.kind.name(), nonce,
                searched = %outcome.stats.searched, "job finished"),
            None => tracing::info!(outcome = outcome.kind.name(),
                searched = %outcome.stats.searched, "job finished"),
        }
        for w in self.workers.values_mut() {
            w.shards.clear();
        }
        self.shards.clear();
        self.checks.clear();
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
