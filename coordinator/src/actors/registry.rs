//! `Coordinator`: the job registry. Starts a `JobSupervisor` per job and finds it again by id;
//! the daemon and the embedded CLI both go through it.

use super::supervisor::{JobEnded, JobSupervisor};
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

/// Start a job (under a given id when resuming one); answers its id and supervisor.
#[derive(Debug, Message)]
#[rtype(result = "Result<(JobId, Addr<JobSupervisor>), String>")]
pub struct StartJob(pub JobSpec, pub Option<JobId>);

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
    /// Running jobs (and finished ones for their supervisor's linger), with their life.
    jobs: BTreeMap<JobId, (u64, Addr<JobSupervisor>)>,
    /// The aws transport, when this process is set up for it.
    aws: Option<AwsContext>,
}

impl Coordinator {
    /// A coordinator whose jobs may use the aws transport.
    pub fn with_aws(aws: Option<AwsContext>) -> Self {
        Coordinator { jobs: BTreeMap::new(), aws }
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

impl Handler<StartJob> for Coordinator {
    type Result = Result<(JobId, Addr<JobSupervisor>), String>;

    fn handle(&mut self, StartJob(spec, id): StartJob, ctx: &mut Context<Self>) -> Self::Result {
        let aws = match (spec.transport, &self.aws) {
            (TransportKind::Aws, None) => {
                return Err("the aws transport is not set up here (give --aws-prefix, or an [aws] table in the daemon's config)".into())
            }
            (TransportKind::Aws, Some(ctx)) => Some(ctx.clone()),
            (TransportKind::Memory, _) if spec.launcher == LauncherKind::Ecs => {
                return Err("the ecs launcher needs the aws transport".into())
            }
            (TransportKind::Memory, _) => None,
        };
        if spec.launcher == LauncherKind::Ecs {
            let has_ecs = aws.as_ref().and_then(|c| c.settings.ecs.as_ref()).is_some();
            if !has_ecs {
                return Err("the ecs launcher needs its settings (--ecs-cluster, --ecs-task-definition, --ecs-subnets, --ecs-security-groups)".into());
            }
        }
        let job = match id {
            Some(id) if self.jobs.contains_key(&id) => return Err(format!("job {id} already exists")),
            Some(id) => id,
            None => loop {
                let id = JobId(rand::random());
                if !self.jobs.contains_key(&id) {
                    break id;
                }
            },
        };
        // Each job its own network: its broadcasts reach its own workers and no one else's.
        let network = MemoryNetwork::default();
        // Where each worker's inbox must be: a Hello naming another is refused.
        let inbox = match (&aws, spec.launcher) {
            (Some(ctx), _) => ctx.inbox_rule(),
            (None, LauncherKind::Process) => InboxRule::new("stdio://", ""),
            (None, LauncherKind::Threads | LauncherKind::Ecs) => InboxRule::new("mem://", ""),
        };
        let config = spec.config(job, spec.secret(), inbox);
        let incarnation = config.incarnation;
        let registry = ctx.address().recipient();
        let addr = JobSupervisor::launch(Job::new(config), Some(registry), move |ctx| {
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
                    // `Ecs` was refused above.
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
                    // Checked above; should it still fail, the job fails instead of hanging.
                    Err(e) => Box::new(crate::launcher::RefusingLauncher(e)),
                },
            };
            (transport as Box<dyn Transport>, launcher)
        });
        self.jobs.insert(job, (incarnation, addr.clone()));
        Ok((job, addr))
    }
}

impl Handler<JobEnded> for Coordinator {
    type Result = ();
    fn handle(&mut self, JobEnded { job, incarnation }: JobEnded, _: &mut Context<Self>) {
        if self.jobs.get(&job).is_some_and(|(life, _)| *life == incarnation) {
            self.jobs.remove(&job);
        }
    }
}

impl Handler<FindJob> for Coordinator {
    type Result = Option<Addr<JobSupervisor>>;
    fn handle(&mut self, FindJob(job): FindJob, _: &mut Context<Self>) -> Self::Result {
        self.jobs.get(&job).map(|(_, addr)| addr.clone())
    }
}

impl Handler<ListJobs> for Coordinator {
    type Result = Vec<JobId>;
    fn handle(&mut self, _: ListJobs, _: &mut Context<Self>) -> Self::Result {
        self.jobs.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::actors::{system, Coordinator, StartJob, WaitJob};
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
            sup.send(WaitJob).await.expect("sent").expect("finished")
        });
        assert_eq!(outcome.kind.name(), "exhausted");
        let mut s: Vec<f64> = outcome.startups.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        assert_eq!(s.len(), 2, "both workers started: {s:?}, unstarted {:?}", outcome.unstarted);
        assert!(s[0] >= 0.2 && s[1] >= 0.4, "the delays are in the measured start-ups: {s:?}");
        assert!(s[1] < 3.0, "and not much more: {s:?}");
    }
}
