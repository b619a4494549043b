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

/// What every launcher needs to start a job's workers: who they serve, where their events
/// and exits go, and how they run.
#[derive(Clone)]
pub struct WorkerWiring {
    pub job: JobId,
    pub events: Recipient<WorkerEvent>,
    pub gone: Recipient<WorkerGone>,
    pub threads: usize,
    pub timings: WorkerTimings,
    pub backend: Backend,
}

impl std::fmt::Debug for WorkerWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerWiring").field("job", &self.job).field("threads", &self.threads).finish()
    }
}

/// In-process worker actors, each with its own hashing threads.
pub struct ThreadsLauncher {
    wiring: WorkerWiring,
    network: MemoryNetwork,
    started: Vec<Addr<WorkerActor>>,
}

impl std::fmt::Debug for ThreadsLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadsLauncher")
            .field("job", &self.wiring.job)
            .field("started", &self.started.len())
            .finish()
    }
}

impl ThreadsLauncher {
    pub fn new(wiring: WorkerWiring, network: MemoryNetwork) -> Self {
        ThreadsLauncher { wiring, network, started: vec![] }
    }
}

impl Launcher for ThreadsLauncher {
    fn launch(&mut self, count: usize) -> Result<(), String> {
        for _ in 0..count {
            let n = self.started.len();
            let w = &self.wiring;
            let id = WorkerId(format!("t{n}-{}", w.job));
            let inbox = format!("mem://{id}");
            let cfg = WorkerConfig {
                id: id.clone(),
                job: w.job,
                inbox: inbox.clone(),
                threads: w.threads,
                heartbeat: w.timings.heartbeat,
                orphan_timeout: w.timings.orphan_timeout,
                backend: w.backend,
            };
            let network = self.network.clone();
            let gone = w.gone.clone();
            let sink = std::sync::Arc::new(MemorySink(w.events.clone()));
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
