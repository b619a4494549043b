//! The worker actor: the shell around [`WorkerMachine`] (`protocol::worker`), which makes
//! every decision (which commands to believe, what to search, shrink, cancel and report,
//! when to say Hello again, when it is orphaned, how it says goodbye). The actor holds the
//! shard searches on their hashing threads and the transport, feeds the machine its inputs
//! and the time, keeps one timer at its `poll_timeout`, and carries out its outputs.
//!
//! It never hashes on the actor thread. Everything it sends is sealed with its key.

use crate::alarm::Alarm;
use crate::search::{SearchEvent, ShardSearch};
use actix::prelude::*;
use nonce_kernel::Backend;
use protocol::auth::{BroadcastVerifier, WorkerKey};
use protocol::worker::{Delivery, WorkerInput, WorkerMachine, WorkerOutput, WorkerRules};
pub use protocol::worker::{ExitReason, Shutdown, BROADCAST_SKEW};
use protocol::{Epoch, Event, EventBody, JobId, SealedEvent, ShardId, ShardProgress, WorkerId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a worker's events go: the coordinator, over whatever transport connects them.
/// Called from the actor and from hashing threads, so it must not block for long.
pub trait EventSink: Send + Sync + 'static {
    /// Sends `event` (or queues it to be sent).
    fn send(&self, event: SealedEvent);
}

/// A command as it arrived at the worker, still sealed: the machine opens it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Inbox(pub Delivery);

/// Stop, from inside the worker's own process (a signal, a closed pipe, the launcher of
/// in-process workers): needs no key, since it never crossed a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct LocalStop(pub Shutdown);

/// Decodes one command as a transport carries it (a stdin line, an SQS body) and hands it to
/// the actor. Answers false for anything else: the caller counts it; nothing is fatal.
pub fn deliver_text(actor: &Addr<WorkerActor>, text: &str) -> bool {
    match protocol::codec::decode_text(text) {
        Ok(protocol::Message::Command(cmd)) => {
            actor.do_send(Inbox(Delivery::Direct(cmd)));
            true
        }
        Ok(protocol::Message::Broadcast(b)) => {
            actor.do_send(Inbox(Delivery::Broadcast(b)));
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
    /// Seals events of `worker` in `job` with its key.
    pub fn new(key: WorkerKey, job: JobId, worker: WorkerId) -> Self {
        Sealer { key, job, worker, seq: AtomicU64::new(0) }
    }

    /// `body` sealed: the next sequence number, tagged with the worker's key.
    pub fn seal(&self, body: EventBody) -> SealedEvent {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.key.seal_event(seq, Event { job: self.job, worker: self.worker.clone(), body })
    }
}

/// How one worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Which worker this is.
    pub id: WorkerId,
    /// Its job.
    pub job: JobId,
    /// Address the coordinator uses to reach this worker (queue URL, or a name in memory).
    pub inbox: String,
    /// Hashing threads.
    pub threads: usize,
    /// How often it beats.
    pub heartbeat: Duration,
    /// Stop when nothing has been heard from the coordinator for this long.
    pub orphan_timeout: Duration,
    /// The hashing kernel it uses.
    pub backend: Backend,
    /// This worker's key, given at launch (`NONCE_WORKER_KEY`).
    pub key: WorkerKey,
    /// The job's broadcast key (`NONCE_BROADCAST_KEY`).
    pub broadcast: BroadcastVerifier,
}

struct RunningShard {
    epoch: Epoch,
    search: ShardSearch,
}

impl WorkerConfig {
    fn rules(&self) -> WorkerRules {
        WorkerRules {
            id: self.id.clone(),
            job: self.job,
            inbox: self.inbox.clone(),
            cpus: self.threads as u32,
            heartbeat: self.heartbeat,
            orphan_timeout: self.orphan_timeout,
            key: self.key.clone(),
            broadcast: self.broadcast.clone(),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The actor. See the module docs.
pub struct WorkerActor {
    cfg: WorkerConfig,
    machine: WorkerMachine,
    sink: Arc<dyn EventSink>,
    sealer: Arc<Sealer>,
    searches: BTreeMap<ShardId, RunningShard>,
    hashed: Arc<AtomicU64>,
    origin: Instant,
    rate_mark: (Instant, u64),
    /// The one timer, at the machine's `poll_timeout`.
    alarm: Alarm,
    on_exit: Option<Box<dyn FnOnce(ExitReason) + Send>>,
}

impl std::fmt::Debug for WorkerActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerActor").field("id", &self.cfg.id).field("shards", &self.searches.len()).finish()
    }
}

impl WorkerActor {
    /// An actor for `cfg` that reports through `sink`.
    pub fn new(cfg: WorkerConfig, sink: Arc<dyn EventSink>) -> Self {
        let sealer = Arc::new(Sealer::new(cfg.key.clone(), cfg.job, cfg.id.clone()));
        WorkerActor {
            machine: WorkerMachine::new(cfg.rules()),
            cfg,
            sink,
            sealer,
            searches: BTreeMap::new(),
            hashed: Arc::new(AtomicU64::new(0)),
            origin: Instant::now(),
            rate_mark: (Instant::now(), 0),
            alarm: Alarm::default(),
            on_exit: None,
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

    /// Feeds the machine one input and carries out what it asks, in order; inputs that
    /// carrying out produces (a search that cannot start) are fed next.
    fn feed(&mut self, input: WorkerInput, ctx: &mut Context<Self>) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let now = self.origin.elapsed();
            for output in self.machine.handle(now, input) {
                match output {
                    WorkerOutput::Emit(body) => self.emit(body),
                    WorkerOutput::Search { shard, epoch, puzzle, range, mode, share_bits } => {
                        if let Err(e) = self.search(shard, epoch, &puzzle, range, mode, share_bits, ctx) {
                            // Leave: the coordinator re-shards our range to workers that can hash.
                            tracing::error!(worker = %self.cfg.id, error = %e, "cannot hash; leaving the job");
                            queue.push(WorkerInput::Failed);
                        }
                    }
                    WorkerOutput::Cancel(shard) => {
                        if let Some(s) = self.searches.remove(&shard) {
                            s.search.cancel();
                        }
                    }
                    WorkerOutput::Shrink { shard, epoch, new_end } => {
                        if let Some(s) = self.searches.get(&shard).filter(|s| s.epoch == epoch) {
                            let end = s.search.shrink(new_end);
                            self.emit(EventBody::ShrinkAck { shard, epoch, end });
                        }
                    }
                    WorkerOutput::Beat => self.beat(),
                    WorkerOutput::Halt => {
                        for s in self.searches.values_mut() {
                            s.search.halt();
                        }
                    }
                    WorkerOutput::Refused(what) => {
                        tracing::warn!(worker = %self.cfg.id, refused = self.machine.refused(), "dropped {what}");
                    }
                    WorkerOutput::Exit(reason) => {
                        match reason {
                            ExitReason::Orphaned => tracing::warn!(worker = %self.cfg.id,
                                "coordinator silent past the orphan timeout; stopping"),
                            ExitReason::Failed => {
                                tracing::error!(worker = %self.cfg.id, "a hashing thread failed; leaving the job")
                            }
                            ExitReason::Stopped | ExitReason::Terminated => {}
                        }
                        self.searches.clear();
                        ctx.stop();
                    }
                }
            }
        }
        let (wanted, now) = (self.machine.poll_timeout(), self.origin.elapsed());
        self.alarm.set(ctx, wanted, now, |act: &mut Self, ctx| act.tick(ctx));
    }

    /// The machine's look at itself, with what the searches have to say first: a failed
    /// thread, shards that ended by themselves (their `ShardDone` already went out).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.searches.values().any(|s| s.search.failed()) {
            self.feed(WorkerInput::Failed, ctx);
            return;
        }
        let finished: Vec<ShardId> =
            self.searches.iter().filter(|(_, s)| s.search.is_finished()).map(|(&id, _)| id).collect();
        for shard in finished {
            self.searches.remove(&shard);
            self.feed(WorkerInput::ShardFinished(shard), ctx);
        }
        self.feed(WorkerInput::Tick, ctx);
    }

    /// One heartbeat: the rate, each shard's newest segment with its shares, the best hash.
    fn beat(&mut self) {
        let now = Instant::now();
        let total = self.hashed.load(Ordering::Relaxed);
        let secs = now.duration_since(self.rate_mark.0).as_secs_f64();
        let rate = if secs > 0.0 { (total - self.rate_mark.1) as f64 / secs } else { 0.0 };
        self.rate_mark = (now, total);
        let shards = self
            .searches
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
        let best = self.searches.values().filter_map(|s| s.search.best()).max_by_key(|b| b.leading_zeros);
        self.emit(EventBody::Heartbeat { shards, rate, best });
        // A finished shard whose shares outran its segments ends after the last of them.
        for s in self.searches.values() {
            s.search.finish_drained();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        shard: ShardId,
        epoch: Epoch,
        puzzle: &protocol::Puzzle,
        range: protocol::NonceRange,
        mode: protocol::Mode,
        share_bits: u32,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let (sink, sealer) = (Arc::clone(&self.sink), Arc::clone(&self.sealer));
        // In `first` mode a find ends the job: the work before it goes out first (through the
        // machine, as a heartbeat), or the report would say nothing was searched.
        let (me, first) = (ctx.address(), mode == protocol::Mode::First);
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
        let search = ShardSearch::start(
            puzzle,
            range,
            mode,
            share_bits,
            self.cfg.threads,
            self.cfg.backend,
            Arc::clone(&self.hashed),
            Box::new(report),
        )?;
        self.searches.insert(shard, RunningShard { epoch, search });
        Ok(())
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.origin = Instant::now();
        self.feed(WorkerInput::Start, ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        // Stopped from outside the machine (the actix system going down): it still says
        // goodbye with its last progress.
        if self.machine.exited().is_none() {
            self.feed(WorkerInput::Shutdown(Shutdown::Stopped), ctx);
        }
        for s in self.searches.values() {
            s.search.cancel();
        }
        self.searches.clear();
        if let Some(hook) = self.on_exit.take() {
            hook(self.machine.exited().unwrap_or(ExitReason::Stopped));
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

    fn handle(&mut self, f: GoldenFound, ctx: &mut Context<Self>) {
        self.feed(WorkerInput::FirstFound { shard: f.shard, epoch: f.epoch, nonce: f.nonce }, ctx);
    }
}

impl Handler<LocalStop> for WorkerActor {
    type Result = ();

    fn handle(&mut self, LocalStop(why): LocalStop, ctx: &mut Context<Self>) {
        self.feed(WorkerInput::Shutdown(why), ctx);
    }
}

impl Handler<Inbox> for WorkerActor {
    type Result = ();

    fn handle(&mut self, Inbox(delivery): Inbox, ctx: &mut Context<Self>) {
        self.feed(WorkerInput::Delivered { delivery, unix_ms: unix_ms() }, ctx);
    }
}
