//! Launchers start and stop a job's workers. They only start things: the workers announce
//! themselves with `Hello` over the transport, like remote ones would.

use crate::transport::{MemoryNetwork, MemorySink, WorkerEvent};
use actix::prelude::*;
use protocol::{JobId, WorkerId};
use std::time::Duration;
use worker_actor::{Backend, WorkerActor, WorkerConfig};

/// Tells a job's supervisor that one of its workers is gone.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkerGone(pub WorkerId);

/// Starts workers for one job.
pub trait Launcher: Send + 'static {
    /// Starts `count` workers. Errors say why none (or not all) could start.
    fn launch(&mut self, count: usize) -> Result<(), String>;
    /// Stops every worker this launcher started (the broadcast `Stop` is the first resort).
    fn stop_all(&mut self);
}

/// Timings a worker needs from whoever starts it.
#[derive(Debug, Clone)]
pub struct WorkerTimings {
    pub heartbeat: Duration,
    pub orphan_timeout: Duration,
}

impl Default for WorkerTimings {
    fn default() -> Self {
        WorkerTimings { heartbeat: Duration::from_millis(250), orphan_timeout: Duration::from_secs(10) }
    }
}

/// In-process worker actors, each with its own hashing threads.
pub struct ThreadsLauncher {
    job: JobId,
    network: MemoryNetwork,
    events: Recipient<WorkerEvent>,
    gone: Recipient<WorkerGone>,
    threads_per_worker: usize,
    timings: WorkerTimings,
    backend: Backend,
    started: Vec<Addr<WorkerActor>>,
}

impl std::fmt::Debug for ThreadsLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadsLauncher")
            .field("job", &self.job)
            .field("started", &self.started.len())
            .finish()
    }
}

impl ThreadsLauncher {
    pub fn new(
        job: JobId,
        network: MemoryNetwork,
        events: Recipient<WorkerEvent>,
        gone: Recipient<WorkerGone>,
        threads_per_worker: usize,
        timings: WorkerTimings,
        backend: Backend,
    ) -> Self {
        ThreadsLauncher { job, network, events, gone, threads_per_worker, timings, backend, started: vec![] }
    }
}

impl Launcher for ThreadsLauncher {
    fn launch(&mut self, count: usize) -> Result<(), String> {
        for _ in 0..count {
            let n = self.started.len();
            let id = WorkerId(format!("t{n}-{}", self.job));
            let inbox = format!("mem://{id}");
            let cfg = WorkerConfig {
                id: id.clone(),
                job: self.job,
                inbox: inbox.clone(),
                threads: self.threads_per_worker,
                heartbeat: self.timings.heartbeat,
                orphan_timeout: self.timings.orphan_timeout,
                backend: self.backend,
            };
            let network = self.network.clone();
            let gone = self.gone.clone();
            let sink = std::sync::Arc::new(MemorySink(self.events.clone()));
            let exit_inbox = inbox.clone();
            let actor = WorkerActor::new(cfg, sink).on_exit(move |_| {
                network.unregister(&exit_inbox);
                gone.do_send(WorkerGone(id));
            });
            let addr = actor.start();
            self.network.register(inbox, addr.clone().recipient());
            self.started.push(addr);
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        for addr in self.started.drain(..) {
            addr.do_send(worker_actor::Inbox(protocol::Command::Stop { job: None }));
        }
    }
}
