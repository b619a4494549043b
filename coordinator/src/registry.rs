//! `Coordinator`: the job registry. Starts a `JobSupervisor` per job and finds it again by id;
//! the daemon and the embedded CLI both go through it.

use crate::job::Job;
use crate::launcher::{Launcher, ThreadsLauncher, WorkerWiring};
use crate::process::{PipeNetwork, ProcessLauncher};
use crate::spec::JobSpec;
use crate::spec::LauncherKind;
use crate::supervisor::JobSupervisor;
use crate::transport::MemoryNetwork;
use crate::transport::Transport;
use actix::prelude::*;
use protocol::JobId;
use std::collections::BTreeMap;
use std::time::Duration;

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
    jobs: BTreeMap<JobId, Addr<JobSupervisor>>,
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

impl Handler<StartJob> for Coordinator {
    type Result = Result<(JobId, Addr<JobSupervisor>), String>;

    fn handle(&mut self, StartJob(spec, id): StartJob, _: &mut Context<Self>) -> Self::Result {
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
        let tick = (spec.timings.heartbeat / 2).max(Duration::from_millis(20));
        let addr = JobSupervisor::launch(Job::new(spec.config(job)), tick, move |ctx| {
            let wiring = WorkerWiring {
                job,
                events: ctx.address().recipient(),
                gone: ctx.address().recipient(),
                threads: spec.threads_per_worker,
                timings: spec.timings.clone(),
                backend: spec.backend,
            };
            match spec.launcher {
                LauncherKind::Threads => {
                    let launcher = ThreadsLauncher::new(wiring, network.clone());
                    (Box::new(network) as Box<dyn Transport>, Box::new(launcher) as Box<dyn Launcher>)
                }
                LauncherKind::Process => {
                    let pipes = PipeNetwork::default();
                    let launcher = ProcessLauncher::new(wiring, pipes.clone());
                    (Box::new(pipes) as Box<dyn Transport>, Box::new(launcher) as Box<dyn Launcher>)
                }
            }
        });
        self.jobs.insert(job, addr.clone());
        Ok((job, addr))
    }
}

impl Handler<FindJob> for Coordinator {
    type Result = Option<Addr<JobSupervisor>>;
    fn handle(&mut self, FindJob(job): FindJob, _: &mut Context<Self>) -> Self::Result {
        self.jobs.get(&job).cloned()
    }
}

impl Handler<ListJobs> for Coordinator {
    type Result = Vec<JobId>;
    fn handle(&mut self, _: ListJobs, _: &mut Context<Self>) -> Self::Result {
        self.jobs.keys().copied().collect()
    }
}
