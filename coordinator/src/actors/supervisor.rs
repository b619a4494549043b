//! `JobSupervisor`: the actor that owns one [`Job`], feeds it events and ticks, and carries
//! out what it decides. All decisions are the `Job`'s, its timing too: the shell keeps one
//! timer, set to the job's [`Job::poll_timeout`] after every input, and publishes what the
//! job hands out to keep ([`Output::Persist`]) and its progress on a [`JobWatch`], so those
//! who keep or show it wait for changes instead of asking.

use crate::launcher::{LaunchFailed, LaunchSent, Launcher, WorkerGone};
use crate::transport::seal::Seal;
use crate::transport::{Transport, TransportCounters, WorkerEvent};
use actix::prelude::*;
use nonce_core::job::{Input, Job, Outcome, Output, Snapshot, SpaceMap, Status, WorkerInfo};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use worker_actor::alarm::Alarm;

/// Cancel the job.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelJob;

/// Ask for a progress snapshot.
#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// Subscribe to what the job publishes.
#[derive(Debug, Message)]
#[rtype(result = "JobWatch")]
pub struct WatchJob;

/// What a job's actor publishes, each the newest value only (a watcher that is slow misses
/// values in between, never the last): the snapshot the job last handed out to keep, and its
/// progress after each of its looks at its workers. Both end (`changed()` fails) when the
/// actor stops.
#[derive(Debug, Clone)]
pub struct JobWatch {
    /// `None` until the job first hands one out.
    pub kept: watch::Receiver<Option<Snapshot>>,
    /// Its progress, after every input that changed it.
    pub status: watch::Receiver<Status>,
}

/// List the job's workers.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WorkerInfo>")]
pub struct GetWorkers;

/// The job's outcome, or where it will come: what [`wait`] asks for. The receiver goes to the
/// caller rather than a future kept in the actor, so a wait given up on (a timed-out
/// `search.wait`) closes it and the actor drops its sender: nothing piles up per call.
#[derive(Debug, Message)]
#[rtype(result = "Waiting")]
struct WaitJob;

/// The answer to [`WaitJob`].
#[derive(Debug)]
enum Waiting {
    Ended(Box<Outcome>),
    Pending(oneshot::Receiver<Outcome>),
}

/// Resolves when the job ends (at once if it has); cancel-safe: drop it to give up.
pub async fn wait(sup: &Addr<JobSupervisor>) -> Result<Outcome, SupervisorGone> {
    match sup.send(WaitJob).await.map_err(|_| SupervisorGone)? {
        Waiting::Ended(outcome) => Ok(*outcome),
        Waiting::Pending(rx) => rx.await.map_err(|_| SupervisorGone),
    }
}

/// The job's actor ended before its job did (it died: the registry may start it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job's supervisor stopped")]
pub struct SupervisorGone;

/// How long a finished job's actor stays before it stops and is collected: its workers
/// leave in that time (the process launcher's 2 s stop grace, the aws transport's 1 s sweep
/// delay, their Byes to a job that ignores them), and the last questions about it (its
/// counters, from whoever waited) are answered.
pub const LINGER: Duration = Duration::from_secs(5);

/// See the module docs.
pub struct JobSupervisor {
    job: Job,
    seal: Seal,
    origin: Instant,
    transport: Box<dyn Transport>,
    launcher: Box<dyn Launcher>,
    waiters: Vec<oneshot::Sender<Outcome>>,
    /// The one timer, at the job's `poll_timeout`.
    alarm: Alarm,
    kept: watch::Sender<Option<Snapshot>>,
    status: watch::Sender<Status>,
    /// `job{job=… life=…}`: entered while the job decides, so its events need not say whose.
    span: tracing::Span,
}

impl std::fmt::Debug for JobSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSupervisor").field("job", &self.job.id()).finish()
    }
}

impl JobSupervisor {
    /// Starts a supervisor; `wire` builds its transport and launcher, which usually need the
    /// supervisor's own address (for events and exits).
    /// Also answers what it will publish, watched from its first value: the watch ends when
    /// the actor is gone, after its linger or a panic, which is how the registry learns of both.
    pub fn launch(
        job: Job,
        wire: impl FnOnce(&mut Context<Self>) -> (Box<dyn Transport>, Box<dyn Launcher>),
    ) -> (Addr<Self>, JobWatch) {
        let (status, status_rx) = watch::channel(job.status());
        let (kept, kept_rx) = watch::channel(None);
        let addr = JobSupervisor::create(move |ctx| {
            let (transport, launcher) = wire(ctx);
            let cfg = job.config();
            let seal = Seal::new(cfg.job, cfg.secret.clone(), cfg.incarnation);
            let span = tracing::info_span!("job", job = %cfg.job, life = cfg.incarnation);
            JobSupervisor {
                job,
                seal,
                origin: Instant::now(),
                transport,
                launcher,
                waiters: vec![],
                alarm: Alarm::default(),
                kept,
                status,
                span,
            }
        });
        (addr, JobWatch { kept: kept_rx, status: status_rx })
    }

    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        // Every event the job's decisions log names the job (and its life) through this span.
        let span = self.span.clone();
        let _entered = span.enter();
        let now = self.origin.elapsed();
        let tick = matches!(input, Input::Tick);
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for output in self.job.handle(now, input) {
                match output {
                    Output::Send { worker, inbox, command } => {
                        self.transport.send(&inbox, self.seal.command(&worker, command))
                    }
                    Output::Broadcast(command) => self.transport.broadcast(self.seal.broadcast(command)),
                    Output::Launch { workers } => {
                        let creds = workers.iter().map(|w| self.seal.credentials(w)).collect();
                        if let Err(why) = self.launcher.launch(creds) {
                            let reason = why.to_string();
                            queue.push(Input::LaunchFailed { workers, reason });
                        }
                    }
                    Output::Evict { worker } => {
                        self.launcher.evict(&worker);
                        self.seal.forget(&worker);
                    }
                    Output::Persist(snapshot) => {
                        self.kept.send_replace(Some(snapshot));
                    }
                    Output::StopWorkers => self.launcher.stop_all(),
                    Output::Finish(outcome) => {
                        self.transport.finished();
                        for w in self.waiters.drain(..) {
                            let _ = w.send(outcome.clone());
                        }
                        // Then the actor ends, and with it the job's state, transport and
                        // launcher: a daemon's memory does not grow with the jobs it finished.
                        ctx.run_later(LINGER, |_, ctx| ctx.stop());
                    }
                }
            }
        }
        if tick || self.job.outcome().is_some() {
            self.status.send_replace(self.job.status());
        }
        // None once the job has finished: the timer stops for good.
        let (wanted, now) = (self.job.poll_timeout(), self.origin.elapsed());
        self.alarm.set(ctx, wanted, now, |act: &mut Self, ctx| act.feed(Input::Tick, ctx));
    }
}

impl Actor for JobSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.feed(Input::Start, ctx);
    }
}

impl Handler<WorkerEvent> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, WorkerEvent(ev): WorkerEvent, ctx: &mut Context<Self>) {
        self.feed(Input::Event(ev), ctx);
    }
}

impl Handler<WorkerGone> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, WorkerGone(worker): WorkerGone, ctx: &mut Context<Self>) {
        self.feed(Input::WorkerExited(worker), ctx);
    }
}

impl Handler<LaunchFailed> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, LaunchFailed { workers, reason }: LaunchFailed, ctx: &mut Context<Self>) {
        self.feed(Input::LaunchFailed { workers, reason }, ctx);
    }
}

impl Handler<LaunchSent> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, LaunchSent { workers }: LaunchSent, ctx: &mut Context<Self>) {
        self.feed(Input::LaunchSent { workers }, ctx);
    }
}

impl Handler<CancelJob> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, _: CancelJob, ctx: &mut Context<Self>) {
        self.feed(Input::Cancel, ctx);
    }
}

impl Handler<GetStatus> for JobSupervisor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.job.status())
    }
}

impl Handler<WatchJob> for JobSupervisor {
    type Result = MessageResult<WatchJob>;
    fn handle(&mut self, _: WatchJob, _: &mut Context<Self>) -> Self::Result {
        MessageResult(JobWatch { kept: self.kept.subscribe(), status: self.status.subscribe() })
    }
}

impl Handler<GetWorkers> for JobSupervisor {
    type Result = MessageResult<GetWorkers>;
    fn handle(&mut self, _: GetWorkers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.job.workers_info(self.origin.elapsed()))
    }
}

/// Makes the actor panic, as a bug in its handling would: what its supervision must survive.
/// Only for tests (the `fault-injection` feature, which no program enables).
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<Crash> for JobSupervisor {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("job {}: a crash injected by a test", self.job.id());
    }
}

/// How many waiters the actor holds (tests: a wait given up on must not stay).
#[cfg(test)]
#[derive(Debug, Message)]
#[rtype(result = "usize")]
struct CountWaiters;

#[cfg(test)]
impl Handler<CountWaiters> for JobSupervisor {
    type Result = usize;
    fn handle(&mut self, _: CountWaiters, _: &mut Context<Self>) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{wait, CountWaiters};
    use crate::actors::{system, Coordinator, StartJob};
    use crate::request::JobSpec;
    use actix::Actor;
    use protocol::{Encoding, Mode, NonceRange, Puzzle};
    use std::time::Duration;

    #[test]
    fn waits_given_up_on_are_not_kept() {
        let held = system().block_on(async {
            let puzzle = Puzzle::append(b"waiters".to_vec(), Encoding::Be32, 60).expect("valid");
            let mut spec = JobSpec::new(puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 40));
            spec.workers = 1;
            spec.threads_per_worker = 1;
            let coordinator = Coordinator::default().start();
            let (_, sup) = coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            // A client polling `search.wait` with a short timeout, 500 times.
            for _ in 0..500 {
                let _ = tokio::time::timeout(Duration::from_millis(1), wait(&sup)).await;
            }
            let held = sup.send(CountWaiters).await.expect("sent");
            sup.do_send(super::CancelJob);
            held
        });
        assert!(held <= 2, "{held} waiters kept for 500 waits given up on");
    }
}

/// Asks for the job's nonce space (for the dashboard's map), at most `.0` intervals.
#[derive(Debug, Message)]
#[rtype(result = "SpaceMap")]
pub struct GetSpaceMap(pub usize);

impl Handler<GetSpaceMap> for JobSupervisor {
    type Result = MessageResult<GetSpaceMap>;
    fn handle(&mut self, msg: GetSpaceMap, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.job.space_map(msg.0))
    }
}

/// Asks for the job's transport counters (`None` for transports that do not count).
#[derive(Debug, Message)]
#[rtype(result = "Option<TransportCounters>")]
pub struct GetTransportCounters;

impl Handler<GetTransportCounters> for JobSupervisor {
    type Result = MessageResult<GetTransportCounters>;
    fn handle(&mut self, _: GetTransportCounters, _: &mut Context<Self>) -> Self::Result {
        // Forged messages are counted by the job, which checks the tags.
        let forged = self.job.status().stats.forged;
        MessageResult(self.transport.counters().map(|c| TransportCounters { forged, ..c }))
    }
}

impl Handler<WaitJob> for JobSupervisor {
    type Result = MessageResult<WaitJob>;
    fn handle(&mut self, _: WaitJob, _: &mut Context<Self>) -> Self::Result {
        if let Some(o) = self.job.outcome() {
            return MessageResult(Waiting::Ended(Box::new(o.clone())));
        }
        // Waits given up on leave closed senders: dropped here, so a client that waits in a
        // loop costs one sender, not one per call.
        self.waiters.retain(|w| !w.is_closed());
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        MessageResult(Waiting::Pending(rx))
    }
}
