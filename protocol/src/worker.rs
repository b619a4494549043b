//! `WorkerMachine`: a worker's side of the protocol as a state machine with no I/O and no
//! clock of its own (`handle(now, input) -> outputs`), the mirror of the coordinator's `Job`.
//! It decides which commands to believe (tags, replays, a broadcast's clock), what to search,
//! shrink, cancel and report, when to say Hello again, when it is orphaned, and how it says
//! goodbye; the shell (`worker-actor`'s actor, or a simulation) holds the searches and the
//! transport and only obeys. So the real worker logic can be driven in memory, both ends.
//!
//! Time: `now` is any monotonic clock the shell keeps (time since the worker started);
//! `Delivered` also carries the wall clock, which only a broadcast's freshness needs.

use crate::auth::{BroadcastVerifier, ReplayWindow, WorkerKey};
use crate::{ByeReason, Command, Epoch, EventBody, JobId, Mode, NonceRange, Puzzle, SealedCommand, ShardId};
use crate::{SignedBroadcast, WorkerId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How far a broadcast's clock may be from ours: beyond it, a keep-alive could be a capture
/// replayed to keep an orphaned fleet running.
pub const BROADCAST_SKEW: Duration = Duration::from_secs(60);

/// How often a worker looks at itself, whatever its heartbeat (which may be a minute over
/// SQS): the orphan timeout is kept to this precision.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What is fixed about a worker when it starts.
#[derive(Debug, Clone)]
pub struct WorkerRules {
    /// This worker.
    pub id: WorkerId,
    /// Its job.
    pub job: JobId,
    /// Where the coordinator reaches this worker (queue URL, `stdio://<id>`, `mem://<id>`).
    pub inbox: String,
    /// Hashing threads, told in `Hello`.
    pub cpus: u32,
    /// How often it reports.
    pub heartbeat: Duration,
    /// It stops when nothing has been heard from the coordinator for this long.
    pub orphan_timeout: Duration,
    /// Its own key: direct commands must open with it.
    pub key: WorkerKey,
    /// The job's broadcast key: broadcasts must be signed with it.
    pub broadcast: BroadcastVerifier,
}

/// A command as it arrived, still sealed.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// To the worker's own inbox.
    Direct(SealedCommand),
    /// On the job's control topic.
    Broadcast(SignedBroadcast),
}

/// Why a worker is asked to stop from inside its own process (needs no key: it never
/// crossed a network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The job or the launcher is done with us (a closed pipe, `stop_all`).
    Stopped,
    /// The platform is stopping us: SIGTERM (a Fargate Spot interruption, StopTask) or SIGINT.
    Terminated,
}

/// Why a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Told to stop (its job ended, or its launcher stopped it).
    Stopped,
    /// A signal from the platform (see [`Shutdown::Terminated`]).
    Terminated,
    /// Its coordinator went silent past the orphan timeout.
    Orphaned,
    /// A hashing thread failed, or a search could not start.
    Failed,
}

impl ExitReason {
    fn bye(self) -> ByeReason {
        match self {
            ExitReason::Stopped => ByeReason::Stopped,
            ExitReason::Terminated => ByeReason::Terminated,
            ExitReason::Orphaned => ByeReason::Orphaned,
            ExitReason::Failed => ByeReason::Failed,
        }
    }
}

/// What happens to a worker.
#[derive(Debug, Clone)]
pub enum WorkerInput {
    /// The worker is up: it says Hello.
    Start,
    /// A command arrived; `unix_ms` is the wall clock now.
    Delivered {
        /// What arrived, still sealed.
        delivery: Delivery,
        /// The wall clock now, Unix milliseconds (a broadcast's age is judged by it).
        unix_ms: u64,
    },
    /// Time passed (feed it by [`WorkerMachine::poll_timeout`]).
    Tick,
    /// This shard's search ended by itself (its `ShardDone` went out from its thread).
    ShardFinished(ShardId),
    /// A search failed or could not start: the worker leaves, so its range is re-sharded.
    Failed,
    /// A `first` shard's search found a golden nonce: the progress before it goes out first.
    FirstFound {
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// The nonce found.
        nonce: u64,
    },
    /// Stop, from inside the process.
    Shutdown(Shutdown),
}

/// What the worker asks its shell to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerOutput {
    /// Seal (with the worker's key) and send this event to the coordinator.
    Emit(EventBody),
    /// Start searching `range` as `shard` at `epoch`; answer `Failed` if it cannot.
    Search {
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// What to hash.
        puzzle: Puzzle,
        /// Which nonces.
        range: NonceRange,
        /// When a find ends the shard.
        mode: Mode,
        /// Leading zero bits that make a share.
        share_bits: u32,
    },
    /// Stop searching this shard and forget it (revoked, or replaced by a newer assignment).
    Cancel(ShardId),
    /// End this shard at `new_end`, or where its search has claimed up to if that is further,
    /// and emit `ShrinkAck` with the end it kept.
    Shrink {
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// The end asked for.
        new_end: u128,
    },
    /// Send a heartbeat built from the searches: the rate, each shard's newest segment with
    /// its finds and shares, the best hash.
    Beat,
    /// Stop every search after its current chunk (before the final `Beat`).
    Halt,
    /// A command was refused (the reason, for the log); nothing else changed.
    Refused(&'static str),
    /// The worker has ended (after its `Bye`): stop the shell. Nothing follows.
    Exit(ExitReason),
}

/// The replay windows of the streams (coordinator lives) a worker has heard from: a few, so
/// an adopting coordinator's commands are taken while an old life's replays still are not.
#[derive(Debug, Default)]
struct Streams(Vec<(u64, ReplayWindow)>);

impl Streams {
    const KEPT: usize = 4;

    fn accept(&mut self, stream: u64, seq: u64) -> bool {
        if let Some((_, w)) = self.0.iter_mut().find(|(s, _)| *s == stream) {
            return w.accept(seq);
        }
        if self.0.len() == Self::KEPT {
            self.0.remove(0);
        }
        let mut w = ReplayWindow::default();
        let ok = w.accept(seq);
        self.0.push((stream, w));
        ok
    }
}

/// The state machine. See the module docs.
#[derive(Debug)]
pub struct WorkerMachine {
    rules: WorkerRules,
    direct: Streams,
    broadcasts: Streams,
    /// Commands refused: tags that did not open, replays, broadcasts far from our clock.
    refused: u64,
    /// Shards being searched, with their epochs.
    shards: BTreeMap<ShardId, Epoch>,
    last_heard: Duration,
    last_check: Duration,
    last_beat: Duration,
    /// A direct command has arrived, so the coordinator knows us: stop repeating Hello.
    known: bool,
    /// The coordinator's incarnation from its keep-alives.
    incarnation: Option<u64>,
    /// `first` shards whose progress went out ahead of their first find.
    flushed: BTreeSet<ShardId>,
    /// Set when terminated by the platform before the stop, so the Bye says so.
    terminated: bool,
    exited: Option<ExitReason>,
    started: bool,
}

impl WorkerMachine {
    /// A worker that has not started (feed it [`WorkerInput::Start`]).
    pub fn new(rules: WorkerRules) -> WorkerMachine {
        WorkerMachine {
            rules,
            direct: Streams::default(),
            broadcasts: Streams::default(),
            refused: 0,
            shards: BTreeMap::new(),
            last_heard: Duration::ZERO,
            last_check: Duration::ZERO,
            last_beat: Duration::ZERO,
            known: false,
            incarnation: None,
            flushed: BTreeSet::new(),
            terminated: false,
            exited: None,
            started: false,
        }
    }

    /// What it was started with.
    pub fn rules(&self) -> &WorkerRules {
        &self.rules
    }

    /// Commands refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The shards it is searching, with their epochs.
    pub fn shards(&self) -> &BTreeMap<ShardId, Epoch> {
        &self.shards
    }

    /// How it ended, once it has.
    pub fn exited(&self) -> Option<ExitReason> {
        self.exited
    }

    /// The period of its look at itself: its heartbeat, or [`CHECK_INTERVAL`] if shorter.
    pub fn check_period(&self) -> Duration {
        self.rules.heartbeat.min(CHECK_INTERVAL).max(Duration::from_millis(1))
    }

    /// When it next needs a `Tick`: its next look at itself. `None` before `Start` and once
    /// it has ended.
    pub fn poll_timeout(&self) -> Option<Duration> {
        (self.started && self.exited.is_none()).then(|| self.last_check + self.check_period())
    }

    /// Feeds one input at time `now` and returns what to do.
    pub fn handle(&mut self, now: Duration, input: WorkerInput) -> Vec<WorkerOutput> {
        let mut out = Vec::new();
        if self.exited.is_some() {
            return out;
        }
        match input {
            WorkerInput::Start => {
                if !self.started {
                    self.started = true;
                    self.last_heard = now;
                    self.last_check = now;
                    self.last_beat = now;
                    out.push(WorkerOutput::Emit(self.hello()));
                }
            }
            WorkerInput::Delivered { delivery, unix_ms } => {
                self.on_delivery(now, delivery, unix_ms, &mut out)
            }
            WorkerInput::Tick => self.on_tick(now, &mut out),
            WorkerInput::ShardFinished(shard) => {
                self.shards.remove(&shard);
            }
            WorkerInput::Failed => self.exit(ExitReason::Failed, &mut out),
            WorkerInput::FirstFound { shard, epoch, nonce } => {
                // Once a shard: later finds of it follow at once (the job is ending anyway).
                if self.shards.get(&shard) == Some(&epoch) && self.flushed.insert(shard) {
                    self.beat(&mut out);
                }
                out.push(WorkerOutput::Emit(EventBody::Found { shard, epoch, nonce }));
            }
            WorkerInput::Shutdown(why) => {
                if why == Shutdown::Terminated {
                    self.terminated = true;
                }
                let reason = if self.terminated { ExitReason::Terminated } else { ExitReason::Stopped };
                self.exit(reason, &mut out);
            }
        }
        out
    }

    fn hello(&self) -> EventBody {
        EventBody::Hello { inbox: self.rules.inbox.clone(), cpus: self.rules.cpus }
    }

    fn beat(&mut self, out: &mut Vec<WorkerOutput>) {
        if !self.known {
            // Until the coordinator answers, our Hello may have been lost: say it again.
            out.push(WorkerOutput::Emit(self.hello()));
        }
        out.push(WorkerOutput::Beat);
    }

    fn on_tick(&mut self, now: Duration, out: &mut Vec<WorkerOutput>) {
        if !self.started {
            return;
        }
        self.last_check = now;
        if now > self.last_heard + self.rules.orphan_timeout {
            self.exit(ExitReason::Orphaned, out);
            return;
        }
        if now >= self.last_beat + self.rules.heartbeat {
            self.last_beat = now;
            self.beat(out);
        }
    }

    /// Ends the worker: the searches halt after their chunk, what they searched since the
    /// last heartbeat goes out in a final one (a worker interrupted mid-shard, as Fargate
    /// Spot's SIGTERM does with two minutes' notice, loses no work), then `Bye` with why, so
    /// the coordinator re-shards only the rest at once.
    fn exit(&mut self, reason: ExitReason, out: &mut Vec<WorkerOutput>) {
        out.push(WorkerOutput::Halt);
        if !self.shards.is_empty() {
            out.push(WorkerOutput::Beat);
        }
        self.shards.clear();
        out.push(WorkerOutput::Emit(EventBody::Bye { reason: reason.bye() }));
        out.push(WorkerOutput::Exit(reason));
        self.exited = Some(reason);
    }

    /// Opens a delivery, or says why not (and counts it).
    fn open(&mut self, delivery: Delivery, unix_ms: u64) -> Result<Command, &'static str> {
        let refusal = match &delivery {
            Delivery::Direct(c) if !self.rules.key.opens_command(c) => {
                Some("a command whose tag does not open with our key")
            }
            Delivery::Direct(c) if !self.direct.accept(c.stream, c.seq) => Some("a replayed command"),
            Delivery::Direct(_) => None,
            Delivery::Broadcast(b) if !self.rules.broadcast.opens(b) => {
                Some("a broadcast not signed with the job's key")
            }
            Delivery::Broadcast(b) if unix_ms.abs_diff(b.sent_at_ms) > BROADCAST_SKEW.as_millis() as u64 => {
                Some("a broadcast whose clock is far from ours")
            }
            Delivery::Broadcast(b) if !self.broadcasts.accept(b.stream, b.seq) => {
                Some("a replayed broadcast")
            }
            Delivery::Broadcast(_) => None,
        };
        if let Some(why) = refusal {
            self.refused += 1;
            return Err(why);
        }
        Ok(match delivery {
            Delivery::Direct(c) => c.command,
            Delivery::Broadcast(b) => b.command,
        })
    }

    fn on_delivery(&mut self, now: Duration, delivery: Delivery, unix_ms: u64, out: &mut Vec<WorkerOutput>) {
        let cmd = match self.open(delivery, unix_ms) {
            Ok(cmd) => cmd,
            Err(why) => {
                out.push(WorkerOutput::Refused(why));
                return;
            }
        };
        match cmd.job() {
            Some(job) if job != self.rules.job => return, // another job's message: not ours
            _ => self.last_heard = now,
        }
        if matches!(cmd, Command::Assign { .. } | Command::Shrink { .. } | Command::Revoke { .. }) {
            self.known = true;
        }
        match cmd {
            Command::Assign { shard, epoch, puzzle, range, mode, share_bits, .. } => {
                match self.shards.get(&shard) {
                    Some(&e) if e == epoch => return, // a duplicate delivery
                    // Same id from another coordinator life: the new assignment wins.
                    Some(_) => out.push(WorkerOutput::Cancel(shard)),
                    None => {}
                }
                self.shards.insert(shard, epoch);
                out.push(WorkerOutput::Search { shard, epoch, puzzle, range, mode, share_bits });
            }
            // An unknown shard has finished (or was revoked): its end stands as it was, and
            // ShardDone (already sent) tells the coordinator so.
            Command::Shrink { shard, epoch, new_end, .. } => {
                if self.shards.get(&shard) == Some(&epoch) {
                    out.push(WorkerOutput::Shrink { shard, epoch, new_end });
                }
            }
            Command::Revoke { shard, epoch, .. } => {
                if self.shards.get(&shard) == Some(&epoch) {
                    self.shards.remove(&shard);
                    out.push(WorkerOutput::Cancel(shard));
                }
            }
            Command::Stop { .. } => {
                let reason = if self.terminated { ExitReason::Terminated } else { ExitReason::Stopped };
                self.exit(reason, out);
            }
            Command::KeepAlive { incarnation, .. } => {
                if self.incarnation.is_some_and(|i| i != incarnation) {
                    // The coordinator restarted without us: introduce ourselves to the new one.
                    self.known = false;
                    out.push(WorkerOutput::Emit(self.hello()));
                }
                self.incarnation = Some(incarnation);
            }
        }
    }
}
