//! `Coordinator`: the job registry. Starts a `JobSupervisor` per job and finds it again by id;
//! the daemon and the embedded CLI both go through it.
//!
//! It also supervises them (supervision apart from work, as quickwit-actors does): each job's
//! published state is watched, and an actor whose watch ends without an outcome died (a panic
//! in its handling: a bug). It is started again under the same id, from the snapshot it last
//! handed out to keep, with the same secret (its workers' credentials stay valid) and a new
//! life; a job that dies [`MAX_RESTARTS`] times is given up and forgotten, so a bug that kills
//! a job at once does not loop. Those who follow a job find its new actor by id.

use super::supervisor::JobSupervisor;
use super::supervisor::JobWatch;
use crate::launcher::EcsLauncher;
use crate::launcher::ProcessLauncher;
use crate::launcher::{Launcher, ThreadsLauncher, WorkerWiring};
use crate::request::{JobSpec, LauncherKind, TransportKind};
use crate::transport::aws::{AwsContext, AwsNetwork};
use crate::transport::MemoryNetwork;
use crate::transport::PipeNetwork;
use crate::transport::Transport;
use actix::prelude::*;
use nonce_core::job::{InboxRule, Job};
use protocol::JobId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Deaths a job's actor is started again after; the next one gives the job up.
pub const MAX_RESTARTS: u32 = 3;

/// Start a job (under a given id when resuming one); answers its id and supervisor.
#[derive(Debug, Message)]
#[rtype(result = "Result<(JobId, Addr<JobSupervisor>), StartError>")]
pub struct StartJob(pub JobSpec, pub Option<JobId>);

/// Why a job was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A job under that id runs already (a resume asked twice).
    #[error("job {0} already exists")]
    Exists(JobId),
    /// The spec asks for the aws transport, and this process has none.
    #[error(
        "the aws transport is not set up here (give --aws-prefix, or an [aws] table in the daemon's config)"
    )]
    NoAws,
    /// The spec asks for the ecs launcher over the memory transport.
    #[error("the ecs launcher needs the aws transport")]
    EcsWithoutAws,
    /// The spec asks for the ecs launcher, and this process has no ECS settings.
    #[error("the ecs launcher needs its settings (--ecs-cluster, --ecs-task-definition, --ecs-subnets, --ecs-security-groups)")]
    NoEcsSettings,
}

/// Find a job's supervisor.
#[derive(Debug, Message)]
#[rtype(result = "Option<Addr<JobSupervisor>>")]
pub struct FindJob(pub JobId);

/// List every job's id.
#[derive(Debug, Message)]
#[rtype(result = "Vec<JobId>")]
pub struct ListJobs;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Coordinator {
    /// Running jobs (and finished ones for their supervisor's linger).
    jobs: BTreeMap<JobId, Running>,
    /// The aws transport, when this process is set up for it.
    aws: Option<AwsContext>,
}

/// A job the registry knows: its actor, and what starting it again takes.
#[derive(Debug)]
struct Running {
    /// Which life of the job the actor is.
    life: u64,
    addr: Addr<JobSupervisor>,
    /// The spec it was started from, its secret drawn.
    spec: JobSpec,
    /// Times its actor died and was started again.
    restarts: u32,
    /// When its first life started: a life started again gets what is left of the deadline,
    /// not all of it again (a budget is charged once).
    since: Instant,
    /// Someone asked it to stop: a life started after the ask is told at once (the ask may
    /// have reached an actor that was dying).
    cancelled: bool,
}

/// Cancel a job, in whichever life it is: answers whether the registry knows it.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct CancelById(pub JobId);

impl Coordinator {
    /// A coordinator whose jobs may use the aws transport.
    pub fn with_aws(aws: Option<AwsContext>) -> Self {
        Coordinator { jobs: BTreeMap::new(), aws }
    }

    /// Whether `spec` can run here: the transport it names is set up, the ecs launcher has
    /// the aws transport and its settings.
    fn transport_for(&self, spec: &JobSpec) -> Result<Option<AwsContext>, StartError> {
        let aws = match (spec.transport, &self.aws) {
            (TransportKind::Aws, None) => return Err(StartError::NoAws),
            (TransportKind::Aws, Some(ctx)) => Some(ctx.clone()),
            (TransportKind::Memory, _) if spec.launcher == LauncherKind::Ecs => {
                return Err(StartError::EcsWithoutAws)
            }
            (TransportKind::Memory, _) => None,
        };
        if spec.launcher == LauncherKind::Ecs {
            let has_ecs = aws.as_ref().and_then(|c| c.settings.ecs.as_ref()).is_some();
            if !has_ecs {
                return Err(StartError::NoEcsSettings);
            }
        }
        Ok(aws)
    }

    /// Starts an actor for `job` from `spec` (its secret drawn) and watches it.
    fn start(
        &mut self,
        job: JobId,
        spec: JobSpec,
        aws: Option<AwsContext>,
        (restarts, since, cancelled): (u32, Instant, bool),
        ctx: &mut Context<Self>,
    ) -> Addr<JobSupervisor> {
        // Each job its own network: its broadcasts reach its own workers and no one else's.
        let network = MemoryNetwork::default();
        // Where each worker's inbox must be: a Hello naming another is refused.
        let inbox = match (&aws, spec.launcher) {
            (Some(ctx), _) => ctx.inbox_rule(),
            (None, LauncherKind::Process) => InboxRule::new("stdio://", ""),
            (None, LauncherKind::Threads | LauncherKind::Ecs) => InboxRule::new("mem://", ""),
        };
        let config = spec.config(job, spec.secret(), inbox);
        let life = config.incarnation;
        let kept_spec = spec.clone();
        let (addr, watch) = JobSupervisor::launch(Job::new(config), move |ctx| {
            let wiring = WorkerWiring {
                job,
                events: ctx.address().recipient(),
                gone: ctx.address().recipient(),
                launch_failed: ctx.address().recipient(),
                launch_sent: ctx.address().recipient(),
                capacity: spec.capacity,
                launch_gate: spec.launch_gate.clone(),
                threads: spec.threads_per_worker,
                timings: spec.timings.clone(),
                backend: spec.backend,
                launch_delay: spec.launch_delay.clone(),
                worker_binary: spec.worker_binary.clone(),
            };
            let Some(aws) = aws else {
                return match spec.launcher {
                    LauncherKind::Process => {
                        let pipes = PipeNetwork::default();
                        let launcher = ProcessLauncher::new(wiring, pipes.clone());
                        (Box::new(pipes) as Box<dyn Transport>, Box::new(launcher) as Box<dyn Launcher>)
                    }
                    // `Ecs` was refused by `transport_for`.
                    LauncherKind::Threads | LauncherKind::Ecs => {
                        let launcher = ThreadsLauncher::new(wiring, network.clone());
                        (Box::new(network) as Box<dyn Transport>, Box::new(launcher) as Box<dyn Launcher>)
                    }
                };
            };
            let transport = Box::new(AwsNetwork::open(&aws, job, spec.workers, ctx.address().recipient()));
            let launcher: Box<dyn Launcher> = match spec.launcher {
                LauncherKind::Threads => Box::new(ThreadsLauncher::over_aws(wiring, aws)),
                LauncherKind::Process => Box::new(ProcessLauncher::over_aws(wiring, aws)),
                LauncherKind::Ecs => match EcsLauncher::new(wiring.clone(), aws.clone()) {
                    Ok(l) => Box::new(l),
                    // Checked by `transport_for`; should it still fail, the job fails
                    // instead of hanging.
                    Err(e) => Box::new(crate::launcher::RefusingLauncher(e.to_string())),
                },
            };
            (transport as Box<dyn Transport>, launcher)
        });
        if cancelled {
            addr.do_send(super::CancelJob);
        }
        self.jobs
            .insert(job, Running { life, addr: addr.clone(), spec: kept_spec, restarts, since, cancelled });
        self.watch(job, life, watch, ctx);
        addr
    }

    /// Follows what life `life` of `job` publishes until its actor is gone, then sees
    /// whether it ended or died.
    fn watch(&self, job: JobId, life: u64, watch: JobWatch, ctx: &mut Context<Self>) {
        let JobWatch { kept, mut status } = watch;
        let gone = async move {
            while status.changed().await.is_ok() {}
            (status, kept)
        };
        ctx.spawn(gone.into_actor(self).map(move |(status, kept), act, ctx| {
            let Some(running) = act.jobs.remove(&job) else { return };
            if running.life != life {
                act.jobs.insert(job, running); // a newer life runs already
                return;
            }
            if status.borrow().finished {
                return; // it ended, and lingered: forgotten
            }
            let snapshot = kept.borrow().clone();
            if running.restarts >= MAX_RESTARTS {
                tracing::error!(%job, life, deaths = running.restarts + 1, "a job's actor died again: the job is given up");
                return;
            }
            let mut spec = running.spec;
            let resumed: u128 = snapshot.as_ref().map_or(0, |s| s.done.iter().map(|r| r.len()).sum());
            if snapshot.is_some() {
                spec.resume = snapshot;
            }
            if let Some(d) = spec.deadline {
                // At least a moment, so the new life ends itself at once (timed out) and says so.
                spec.deadline = Some(d.saturating_sub(running.since.elapsed()).max(Duration::from_millis(1)));
            }
            tracing::error!(%job, life, searched = %resumed, "a job's actor died: started again from its last kept snapshot");
            // Its spec ran before, so its transport is still set up.
            let aws = act.transport_for(&spec).ok().flatten();
            act.start(job, spec, aws, (running.restarts + 1, running.since, running.cancelled), ctx);
        }));
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

impl Handler<StartJob> for Coordinator {
    type Result = Result<(JobId, Addr<JobSupervisor>), StartError>;

    fn handle(&mut self, StartJob(mut spec, id): StartJob, ctx: &mut Context<Self>) -> Self::Result {
        let aws = self.transport_for(&spec)?;
        let job = match id {
            Some(id) if self.jobs.contains_key(&id) => return Err(StartError::Exists(id)),
            Some(id) => id,
            None => loop {
                let id = JobId(rand::random());
                if !self.jobs.contains_key(&id) {
                    break id;
                }
            },
        };
        // Drawn once: a life started again keeps it.
        spec.secret = Some(spec.secret());
        let addr = self.start(job, spec, aws, (0, Instant::now(), false), ctx);
        Ok((job, addr))
    }
}

impl Handler<FindJob> for Coordinator {
    type Result = Option<Addr<JobSupervisor>>;
    fn handle(&mut self, FindJob(job): FindJob, _: &mut Context<Self>) -> Self::Result {
        self.jobs.get(&job).map(|r| r.addr.clone())
    }
}

impl Handler<CancelById> for Coordinator {
    type Result = bool;
    fn handle(&mut self, CancelById(job): CancelById, _: &mut Context<Self>) -> bool {
        let Some(running) = self.jobs.get_mut(&job) else { return false };
        running.cancelled = true;
        running.addr.do_send(super::CancelJob);
        true
    }
}

impl Handler<ListJobs> for Coordinator {
    type Result = Vec<JobId>;
    fn handle(&mut self, _: ListJobs, _: &mut Context<Self>) -> Self::Result {
        self.jobs.keys().copied().collect()
    }
}

/// What became of a job whose actor died.
#[derive(Debug)]
pub enum NextLife {
    /// The registry started it again: this actor.
    Started(Addr<JobSupervisor>),
    /// The registry gave it up (it died too often).
    GivenUp,
    /// No word from the registry (it is gone: the program is ending).
    Unknown,
}

/// The actor of `job`'s next life, once `coordinator` has started it after `dead` died: how
/// whoever follows a job (the daemon's journaling, the embedded CLI's wait) follows it across
/// its lives. The registry hears of the death a moment after the followers do, and always
/// acts on it (a new life, or none): asked until it has, however busy it is, so a job is never
/// left running with no one to report its result.
pub async fn next_life(coordinator: &Addr<Coordinator>, job: JobId, dead: &Addr<JobSupervisor>) -> NextLife {
    let mut pause = Duration::from_millis(5);
    loop {
        match coordinator.send(FindJob(job)).await {
            Ok(Some(addr)) if addr != *dead => return NextLife::Started(addr),
            Ok(Some(_)) => tokio::time::sleep(pause).await,
            Ok(None) => return NextLife::GivenUp,
            Err(_) => return NextLife::Unknown,
        }
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use crate::actors::{system, wait, Coordinator, StartJob};
    // The threads launcher's launch delay, seen through a whole job.
    use crate::request::{JobSpec, LaunchDelay};
    use actix::Actor;
    use protocol::{Encoding, Mode, NonceRange, Puzzle};
    use std::time::Duration;

    #[test]
    fn a_launch_delay_really_delays_each_workers_hello_and_the_job_measures_it() {
        let outcome = system().block_on(async {
            let puzzle = Puzzle::append(b"delayed".to_vec(), Encoding::Be32, 60).expect("valid");
            // Long enough (2^25 nonces) that both workers start before it is done.
            let mut spec = JobSpec::new(puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 25));
            spec.workers = 2;
            let mut n = 0u32;
            spec.launch_delay = Some(LaunchDelay::new(move || {
                n += 1;
                Duration::from_millis(200 * u64::from(n))
            }));
            let coordinator = Coordinator::default().start();
            let (_, sup) = coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            wait(&sup).await.expect("finished")
        });
        assert_eq!(outcome.kind.name(), "exhausted");
        let mut s: Vec<f64> = outcome.startups.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        assert_eq!(s.len(), 2, "both workers started: {s:?}, unstarted {:?}", outcome.unstarted);
        assert!(s[0] >= 0.2 && s[1] >= 0.4, "the delays are in the measured start-ups: {s:?}");
        assert!(s[1] < 3.0, "and not much more: {s:?}");
    }

    use crate::actors::{restartable, Crash, JobSupervisor, WatchJob};
    use actix::Addr;
    use protocol::JobId;

    /// The actor of `job` once it is not `dead` (None: the registry gave the job up).
    async fn next_life(
        coordinator: &Addr<Coordinator>,
        job: JobId,
        dead: &Addr<JobSupervisor>,
    ) -> Option<Addr<JobSupervisor>> {
        let next = tokio::time::timeout(Duration::from_secs(2), super::next_life(coordinator, job, dead));
        match next.await.unwrap_or_else(|_| panic!("job {job}: neither started again nor given up in 2 s")) {
            super::NextLife::Started(a) => Some(a),
            super::NextLife::GivenUp => None,
            super::NextLife::Unknown => panic!("the registry is gone"),
        }
    }

    #[test]
    fn a_job_whose_actor_dies_is_started_again_from_its_snapshot_and_loses_nothing() {
        let (whole, restarted, resumed) = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let (_, sup) =
                coordinator.send(StartJob(restartable(), None)).await.expect("sent").expect("started");
            let whole = wait(&sup).await.expect("finished");

            let (job, sup) =
                coordinator.send(StartJob(restartable(), None)).await.expect("sent").expect("started");
            // Once it has handed out some searched work to keep, its actor panics.
            let mut watch = sup.send(WatchJob).await.expect("sent");
            let kept = watch.kept.wait_for(|k| k.as_ref().is_some_and(|s| !s.done.is_empty())).await;
            let resumed: u128 =
                kept.expect("kept").as_ref().map_or(0, |s| s.done.iter().map(|r| r.len()).sum());
            sup.do_send(Crash);
            let next = next_life(&coordinator, job, &sup).await.expect("started again");
            let restarted = wait(&next).await.expect("finished");
            (whole, restarted, resumed)
        });
        assert_eq!(whole.kind.name(), "found", "{:?}", whole.kind);
        assert!(whole.found.len() > 10, "golden nonces to lose: {:?}", whole.found);
        assert_eq!(restarted.kind, whole.kind);
        assert_eq!(restarted.found, whole.found, "the restarted job found every golden nonce");
        assert_eq!(restarted.stats.searched, 1 << 26, "and searched the whole range");
        assert!(
            resumed > 0 && restarted.stats.resumed >= resumed,
            "from its snapshot: {resumed} kept, {} resumed",
            restarted.stats.resumed
        );
    }

    #[test]
    fn a_job_started_again_gets_what_is_left_of_its_deadline_not_all_of_it() {
        let (before, restarted) = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let mut spec = restartable();
            spec.range = NonceRange::new(0, 1 << 40); // never done in time
            spec.deadline = Some(Duration::from_secs(4));
            let started = std::time::Instant::now();
            let (job, sup) = coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            tokio::time::sleep(Duration::from_secs(3)).await;
            sup.do_send(Crash);
            let next = next_life(&coordinator, job, &sup).await.expect("started again");
            let restarted = wait(&next).await.expect("finished");
            (started.elapsed(), restarted)
        });
        assert_eq!(restarted.kind.name(), "timed_out", "{:?}", restarted.kind);
        // 3 s spent in the first life: about 1 s is left, not 4 s again.
        assert!(restarted.elapsed < Duration::from_millis(2500), "the new life ran {:?}", restarted.elapsed);
        assert!(before < Duration::from_millis(6000), "the job ran {before:?} in all, its deadline 4 s");
    }

    #[test]
    fn a_cancel_sent_while_its_actor_dies_reaches_the_next_life() {
        let kind = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let mut spec = restartable();
            spec.range = NonceRange::new(0, 1 << 40); // never done by itself
            let (job, sup) = coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            sup.do_send(Crash);
            // The registry has not seen the death yet: the cancel is for the dying actor.
            assert!(coordinator.send(super::CancelById(job)).await.expect("sent"), "known");
            let next = next_life(&coordinator, job, &sup).await.expect("started again");
            let ended = tokio::time::timeout(Duration::from_secs(20), wait(&next)).await;
            ended.expect("the next life ends, cancelled").expect("finished").kind
        });
        assert_eq!(kind.name(), "cancelled", "{kind:?}");
    }

    #[test]
    fn a_job_whose_actor_keeps_dying_is_given_up() {
        let deaths = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let mut spec = restartable();
            spec.range = NonceRange::new(0, 1 << 40);
            let (job, mut sup) =
                coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            let mut deaths = 0;
            loop {
                sup.do_send(Crash);
                deaths += 1;
                match next_life(&coordinator, job, &sup).await {
                    Some(next) => sup = next,
                    None => break deaths,
                }
            }
        });
        assert_eq!(deaths, super::MAX_RESTARTS + 1);
    }
}
