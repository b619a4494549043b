//! The worker actor: takes commands from its inbox, runs shard searches on hashing threads,
//! and reports Hello, heartbeats, finds and completions through an [`EventSink`].
//!
//! It never hashes on the actor thread. It stops itself when the coordinator goes silent for
//! longer than the orphan timeout, so a dead coordinator never leaves a fleet running.
//!
//! Everything it sends is sealed with its key; a command is obeyed only if it opens with the
//! same key (to its inbox) or the job's broadcast key (on the topic), and was not seen before.

use crate::kernel::Backend;
use crate::search::{SearchEvent, ShardSearch};
use actix::prelude::*;
use protocol::auth::{BroadcastVerifier, ReplayWindow, WorkerKey};
use protocol::{
    ByeReason, Command, Epoch, Event, EventBody, JobId, SealedCommand, SealedEvent, ShardId, ShardProgress,
    SignedBroadcast, WorkerId,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a worker's events go: the coordinator, over whatever transport connects them.
/// Called from the actor and from hashing threads, so it must not block for long.
pub trait EventSink: Send + Sync + 'static {
    fn send(&self, event: SealedEvent);
}

/// A command as it arrived at the worker, still sealed: the actor opens it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Inbox {
    Direct(SealedCommand),
    Broadcast(SignedBroadcast),
}

/// Stop, from inside the worker's own process (a signal, a closed pipe, the launcher of
/// in-process workers): needs no key, since it never crossed a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum Shutdown {
    /// The job or the launcher is done with us (a closed pipe, `stop_all`).
    Stopped,
    /// The platform is stopping us: SIGTERM (a Fargate Spot interruption, StopTask) or SIGINT.
    Terminated,
}

/// Decodes one command as a transport carries it (a stdin line, an SQS body) and hands it to
/// the actor. Answers false for anything else: the caller counts it; nothing is fatal.
pub fn deliver_text(actor: &Addr<WorkerActor>, text: &str) -> bool {
    match protocol::codec::decode_text(text) {
        Ok(protocol::Message::Command(cmd)) => {
            actor.do_send(Inbox::Direct(cmd));
            true
        }
        Ok(protocol::Message::Broadcast(b)) => {
            actor.do_send(Inbox::Broadcast(b));
            true
        }
        Ok(protocol::Message::Event(_)) => false,
        Err(e) => {
            tracing::warn!(error = %e, "dropping an undecodable command");
            false
        }
    }
}

/// Seals this worker's events: its key and its sequence numbers (shared with the hashing
/// threads, which report finds and completions themselves).
#[derive(Debug)]
pub struct Sealer {
    key: WorkerKey,
    job: JobId,
    worker: WorkerId,
    seq: AtomicU64,
}

impl Sealer {
    pub fn new(key: WorkerKey, job: JobId, worker: WorkerId) -> Self {
        Sealer { key, job, worker, seq: AtomicU64::new(0) }
    }

    pub fn seal(&self, body: EventBody) -> SealedEvent {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.key.seal_event(seq, Event { job: self.job, worker: self.worker.clone(), body })
    }
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

/// How far a broadcast's clock may be from ours: beyond it, a keep-alive could be a capture
/// replayed to keep an orphaned fleet running.
pub const BROADCAST_SKEW: Duration = Duration::from_secs(60);

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How one worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: WorkerId,
    pub job: JobId,
    /// Address the coordinator uses to reach this worker (queue URL, or a name in memory).
    pub inbox: String,
    pub threads: usize,
    pub heartbeat: Duration,
    /// Stop when nothing has been heard from the coordinator for this long.
    pub orphan_timeout: Duration,
    pub backend: Backend,
    /// This worker's key, given at launch (`NONCE_WORKER_KEY`).
    pub key: WorkerKey,
    /// The job's broadcast key (`NONCE_BROADCAST_KEY`).
    pub broadcast: BroadcastVerifier,
}

/// Why a worker actor stopped; given to the `on_exit` hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Stopped,
    /// A signal from the platform (see [`Shutdown::Terminated`]).
    Terminated,
    Orphaned,
    /// A hashing thread panicked.
    Failed,
}

struct RunningShard {
    epoch: Epoch,
    search: ShardSearch,
}

/// The actor. See the module docs.
pub struct WorkerActor {
    cfg: WorkerConfig,
    sink: Arc<dyn EventSink>,
    sealer: Arc<Sealer>,
    direct: Streams,
    broadcasts: Streams,
    /// Commands refused: tags that did not open, replays, broadcasts far from our clock.
    refused: u64,
    shards: BTreeMap<ShardId, RunningShard>,
    hashed: Arc<AtomicU64>,
    last_heard: Instant,
    rate_mark: (Instant, u64),
    exit: ExitReason,
    on_exit: Option<Box<dyn FnOnce(ExitReason) + Send>>,
    /// A direct command has arrived, so the coordinator knows us: stop repeating Hello.
    known: bool,
    /// The coordinator's incarnation from its keep-alives.
    incarnation: Option<u64>,
    /// Checks (orphan, failed threads) run every tick; a heartbeat goes every `beat_every` ticks.
    ticks: u64,
    /// `first` shards whose progress went out ahead of their first find.
    flushed: std::collections::BTreeSet<ShardId>,
}

/// How often a worker checks on itself, whatever its heartbeat interval (which may be a
/// minute over SQS): the orphan timeout is kept to this precision.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for WorkerActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerActor").field("id", &self.cfg.id).field("shards", &self.shards.len()).finish()
    }
}

impl WorkerActor {
    pub fn new(cfg: WorkerConfig, sink: Arc<dyn EventSink>) -> Self {
        let sealer = Arc::new(Sealer::new(cfg.key.clone(), cfg.job, cfg.id.clone()));
        WorkerActor {
            cfg,
            sink,
            sealer,
            direct: Streams::default(),
            broadcasts: Streams::default(),
            refused: 0,
            shards: BTreeMap::new(),
            hashed: Arc::new(AtomicU64::new(0)),
            last_heard: Instant::now(),
            rate_mark: (Instant::now(), 0),
            exit: ExitReason::Stopped,
            on_exit: None,
            known: false,
            incarnation: None,
            ticks: 0,
            flushed: std::collections::BTreeSet::new(),
        }
    }

    /// Runs `hook` once the actor has stopped (e.g. to end the process).
    pub fn on_exit(mut self, hook: impl FnOnce(ExitReason) + Send + 'static) -> Self {
        self.on_exit = Some(Box::new(hook));
        self
    }

    fn emit(&self, body: EventBody) {
        self.sink.send(self.sealer.seal(body));
    }

    /// Opens a command, or says why not (and counts it).
    fn open(&mut self, delivery: Inbox) -> Option<Command> {
        let (ok, what) = match &delivery {
            Inbox::Direct(c) => {
                if !self.cfg.key.opens_command(c) {
                    (false, "a command whose tag does not open with our key")
                } else if !self.direct.accept(c.stream, c.seq) {
                    (false, "a replayed command")
                } else {
                    (true, "")
                }
            }
            Inbox::Broadcast(b) => {
                let skew = unix_ms().abs_diff(b.sent_at_ms);
                if !self.cfg.broadcast.opens(b) {
                    (false, "a broadcast not signed with the job's key")
                } else if skew > BROADCAST_SKEW.as_millis() as u64 {
                    (false, "a broadcast whose clock is far from ours")
                } else if !self.broadcasts.accept(b.stream, b.seq) {
                    (false, "a replayed broadcast")
                } else {
                    (true, "")
                }
            }
        };
        if !ok {
            self.refused += 1;
            tracing::warn!(worker = %self.cfg.id, refused = self.refused, "dropped {what}");
            return None;
        }
        Some(match delivery {
            Inbox::Direct(c) => c.command,
            Inbox::Broadcast(b) => b.command,
        })
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.last_heard.elapsed() > self.cfg.orphan_timeout {
            tracing::warn!(worker = %self.cfg.id, "coordinator silent past the orphan timeout; stopping");
            self.exit = ExitReason::Orphaned;
            ctx.stop();
            return;
        }
        if self.shards.values().any(|s| s.search.failed()) {
            // Leave, so the coordinator re-shards the range instead of waiting on it forever.
            tracing::error!(worker = %self.cfg.id, "a hashing thread failed; leaving the job");
            self.exit = ExitReason::Failed;
            ctx.stop();
            return;
        }
        // Finished shards already reported ShardDone from their last thread.
        self.shards.retain(|_, s| !s.search.is_finished());
        self.ticks += 1;
        let check = self.cfg.heartbeat.min(CHECK_INTERVAL);
        let beat_every = (self.cfg.heartbeat.as_millis() / check.as_millis().max(1)).max(1) as u64;
        if !self.ticks.is_multiple_of(beat_every) {
            return;
        }
        self.beat();
    }

    /// One heartbeat: the rate, each shard's newest segment with its shares, the best hash.
    fn beat(&mut self) {
        let now = Instant::now();
        let total = self.hashed.load(Ordering::Relaxed);
        let secs = now.duration_since(self.rate_mark.0).as_secs_f64();
        let rate = if secs > 0.0 { (total - self.rate_mark.1) as f64 / secs } else { 0.0 };
        self.rate_mark = (now, total);
        let shards = self
            .shards
            .iter()
            .map(|(&shard, s)| {
                // The segment first, then the finds: every golden nonce below it is then listed.
                let seg = s.search.take_segment();
                ShardProgress {
                    shard,
                    epoch: s.epoch,
                    from: seg.from,
                    watermark: seg.to,
                    found: s.search.found(),
                    shares: seg.shares,
                }
            })
            .collect();
        let best = self.shards.values().filter_map(|s| s.search.best()).max_by_key(|b| b.leading_zeros);
        if !self.known {
            // Until the coordinator answers, our Hello may have been lost: say it again.
            self.emit(EventBody::Hello { inbox: self.cfg.inbox.clone(), cpus: self.cfg.threads as u32 });
        }
        self.emit(EventBody::Heartbeat { shards, rate, best });
        // A finished shard whose shares outran its segments ends after the last of them.
        for s in self.shards.values() {
            s.search.finish_drained();
        }
    }

    fn assign(&mut self, shard: ShardId, epoch: Epoch, cmd: &Command, ctx: &mut Context<Self>) {
        let Command::Assign { puzzle, range, mode, share_bits, .. } = cmd else { return };
        match self.shards.get(&shard) {
            Some(s) if s.epoch == epoch => return, // a duplicate delivery
            Some(_) => {
                // Same id from another coordinator life: the new assignment wins.
                if let Some(old) = self.shards.remove(&shard) {
                    old.search.cancel();
                }
            }
            None => {}
        }
        let (sink, sealer) = (Arc::clone(&self.sink), Arc::clone(&self.sealer));
        // In `first` mode a find ends the job: the work before it goes out first (through the
        // actor, as a heartbeat), or the report would say nothing was searched.
        let (me, first) = (ctx.address(), *mode == protocol::Mode::First);
        let report = move |e: SearchEvent| {
            let body = match e {
                SearchEvent::Golden(nonce) if first => {
                    me.do_send(GoldenFound { shard, epoch, nonce });
                    return;
                }
                SearchEvent::Golden(nonce) => EventBody::Found { shard, epoch, nonce },
                SearchEvent::Finished { best, from, end, found, shares } => {
                    EventBody::ShardDone { shard, epoch, best, from, end, found, shares }
                }
            };
            sink.send(sealer.seal(body));
        };
        tracing::debug!(worker = %self.cfg.id, %shard, %range, "assigned");
        let started = ShardSearch::start(
            puzzle,
            *range,
            *mode,
            *share_bits,
            self.cfg.threads,
            self.cfg.backend,
            Arc::clone(&self.hashed),
            Box::new(report),
        );
        match started {
            Ok(search) => {
                self.shards.insert(shard, RunningShard { epoch, search });
            }
            Err(e) => {
                // Leave: the coordinator re-shards our range to workers that can hash.
                tracing::error!(worker = %self.cfg.id, error = %e, "cannot hash; leaving the job");
                self.exit = ExitReason::Failed;
                ctx.stop();
            }
        }
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        self.emit(EventBody::Hello { inbox: self.cfg.inbox.clone(), cpus: self.cfg.threads as u32 });
        ctx.run_interval(self.cfg.heartbeat.min(CHECK_INTERVAL), |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // The threads stop after their chunk; what they searched since the last heartbeat
        // goes out in a final one, so a worker interrupted mid-shard (Fargate Spot's SIGTERM
        // gives two minutes) loses no work, and the Bye right after re-shards only the rest.
        for s in self.shards.values_mut() {
            s.search.halt();
        }
        if !self.shards.is_empty() {
            self.beat();
        }
        self.shards.clear();
        let reason = match self.exit {
            ExitReason::Stopped => ByeReason::Stopped,
            ExitReason::Terminated => ByeReason::Terminated,
            ExitReason::Orphaned => ByeReason::Orphaned,
            ExitReason::Failed => ByeReason::Failed,
        };
        self.emit(EventBody::Bye { reason });
        if let Some(hook) = self.on_exit.take() {
            hook(self.exit);
        }
    }
}

/// A golden nonce of a `first` shard, from its hashing thread.
#[derive(Message)]
#[rtype(result = "()")]
struct GoldenFound {
    shard: ShardId,
    epoch: Epoch,
    nonce: u64,
}

impl Handler<GoldenFound> for WorkerActor {
    type Result = ();

    fn handle(&mut self, f: GoldenFound, _: &mut Context<Self>) {
        // Once a shard: later finds of it follow at once (the job is ending anyway).
        if self.shards.get(&f.shard).is_some_and(|s| s.epoch == f.epoch) && self.flushed.insert(f.shard) {
            self.beat();
        }
        self.emit(EventBody::Found { shard: f.shard, epoch: f.epoch, nonce: f.nonce });
    }
}

impl Handler<Shutdown> for WorkerActor {
    type Result = ();

    fn handle(&mut self, why: Shutdown, ctx: &mut Context<Self>) {
        if why == Shutdown::Terminated && self.exit == ExitReason::Stopped {
            self.exit = ExitReason::Terminated;
        }
        ctx.stop();
    }
}

impl Handler<Inbox> for WorkerActor {
    type Result = ();

    fn handle(&mut self, delivery: Inbox, ctx: &mut Context<Self>) {
        let Some(cmd) = self.open(delivery) else { return };
        match cmd.job() {
            Some(job) if job != self.cfg.job => return, // another job's message: not ours
            _ => self.last_heard = Instant::now(),
        }
        if matches!(cmd, Command::Assign { .. } | Command::Shrink { .. } | Command::Revoke { .. }) {
            self.known = true;
        }
        match &cmd {
            Command::Assign { shard, epoch, .. } => self.assign(*shard, *epoch, &cmd, ctx),
            Command::Shrink { shard, epoch, new_end, .. } => {
                // An unknown shard has finished (or was revoked): its end stands as it was, and
                // ShardDone (already sent) tells the coordinator so.
                if let Some(s) = self.shards.get(shard).filter(|s| s.epoch == *epoch) {
                    let end = s.search.shrink(*new_end);
                    self.emit(EventBody::ShrinkAck { shard: *shard, epoch: *epoch, end });
                }
            }
            Command::Revoke { shard, epoch, .. } => {
                if self.shards.get(shard).is_some_and(|s| s.epoch == *epoch) {
                    if let Some(s) = self.shards.remove(shard) {
                        s.search.cancel();
                    }
                }
            }
            Command::Stop { .. } => ctx.stop(),
            Command::KeepAlive { incarnation, .. } => {
                if self.incarnation.is_some_and(|i| i != *incarnation) {
                    // The coordinator restarted without us: introduce ourselves to the new one.
                    tracing::info!(worker = %self.cfg.id, "coordinator restarted; saying Hello again");
                    self.known = false;
                    self.emit(EventBody::Hello {
                        inbox: self.cfg.inbox.clone(),
                        cpus: self.cfg.threads as u32,
                    });
                }
                self.incarnation = Some(*incarnation);
            }
        }
    }
}
