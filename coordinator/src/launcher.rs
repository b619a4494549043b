//! Launchers start and stop a job's workers. They only start things: the workers announce
//! themselves with `Hello` over the transport, like remote ones would.

use crate::aws::AwsContext;
use crate::transport::{MemoryNetwork, MemorySink, WorkerEvent};
use actix::prelude::*;
use protocol::{JobId, WorkerId};
use std::time::Duration;
use worker_actor::{Backend, WorkerActor, WorkerConfig};

/// Tells a job's supervisor that one of its workers is gone.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkerGone(pub WorkerId);

/// Tells a job's supervisor that workers it asked for could not be started (launchers that
/// start asynchronously, like `ecs`, learn it late).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LaunchFailed {
    pub count: usize,
    pub reason: String,
}

/// Starts workers for one job.
pub trait Launcher: Send + 'static {
    /// Starts `count` workers. Errors say why none (or not all) could start.
    fn launch(&mut self, count: usize) -> Result<(), String>;
    /// Stops every worker this launcher started (the broadcast `Stop` is the first resort).
    fn stop_all(&mut self);
}

/// The liveness timings of a job and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTimings {
    /// How often workers report.
    pub heartbeat: Duration,
    /// A worker silent this long loses its shards.
    pub stall_timeout: Duration,
    /// A worker that hears nothing from the coordinator this long stops itself.
    pub orphan_timeout: Duration,
}

impl Default for WorkerTimings {
    /// In-process workers: reports are free, so stalls are noticed in seconds.
    fn default() -> Self {
        WorkerTimings {
            heartbeat: Duration::from_millis(250),
            stall_timeout: Duration::from_secs(3),
            orphan_timeout: Duration::from_secs(10),
        }
    }
}

impl WorkerTimings {
    /// Over SQS every message is a request. A worker always has a 20 s long poll open on its
    /// inbox (so a `Stop` reaches it at once): at least 3 receives a minute. A keep-alive
    /// every 75 s (a quarter of the orphan timeout) adds about 0.2, a heartbeat every 2
    /// minutes 0.5: about 3.7 requests per worker-minute. Dead processes and stopped tasks
    /// are noticed by the launcher at once; only a hung worker waits for the stall timeout.
    pub fn aws() -> Self {
        WorkerTimings {
            heartbeat: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(360),
            orphan_timeout: Duration::from_secs(300),
        }
    }

    /// The coordinator's keep-alive interval: four chances before a worker gives up.
    pub fn keepalive(&self) -> Duration {
        self.orphan_timeout / 4
    }
}

/// What every launcher needs to start a job's workers: who they serve, where their events
/// and exits go, and how they run.
#[derive(Clone)]
pub struct WorkerWiring {
    pub job: JobId,
    pub events: Recipient<WorkerEvent>,
    pub gone: Recipient<WorkerGone>,
    pub launch_failed: Recipient<LaunchFailed>,
    pub threads: usize,
    pub timings: WorkerTimings,
    pub backend: Backend,
}

impl std::fmt::Debug for WorkerWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerWiring").field("job", &self.job).field("threads", &self.threads).finish()
    }
}

/// How in-process workers reach their coordinator.
enum ThreadsRoute {
    /// Actor messages: the embedded default.
    Memory { network: MemoryNetwork, started: Vec<Addr<WorkerActor>> },
    /// SQS and SNS, like remote workers (each with its own inbox queue).
    Aws { ctx: AwsContext, stops: Vec<tokio::sync::oneshot::Sender<()>> },
}

/// In-process worker actors, each with its own hashing threads.
pub struct ThreadsLauncher {
    wiring: WorkerWiring,
    route: ThreadsRoute,
    count: usize,
}

impl std::fmt::Debug for ThreadsLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadsLauncher")
            .field("job", &self.wiring.job)
            .field("started", &self.count)
            .finish()
    }
}

impl ThreadsLauncher {
    pub fn new(wiring: WorkerWiring, network: MemoryNetwork) -> Self {
        ThreadsLauncher { wiring, route: ThreadsRoute::Memory { network, started: vec![] }, count: 0 }
    }

    /// In-process workers that talk over SQS and SNS.
    pub fn over_aws(wiring: WorkerWiring, ctx: AwsContext) -> Self {
        ThreadsLauncher { wiring, route: ThreadsRoute::Aws { ctx, stops: vec![] }, count: 0 }
    }
}

impl Launcher for ThreadsLauncher {
    fn launch(&mut self, count: usize) -> Result<(), String> {
        for _ in 0..count {
            let w = &self.wiring;
            let id = WorkerId(format!("t{}-{}", self.count, w.job));
            self.count += 1;
            let mut cfg = WorkerConfig {
                id: id.clone(),
                job: w.job,
                inbox: String::new(),
                threads: w.threads,
                heartbeat: w.timings.heartbeat,
                orphan_timeout: w.timings.orphan_timeout,
                backend: w.backend,
            };
            let gone = w.gone.clone();
            match &mut self.route {
                ThreadsRoute::Memory { network, started } => {
                    let inbox = format!("mem://{id}");
                    cfg.inbox = inbox.clone();
                    let sink = std::sync::Arc::new(MemorySink(w.events.clone()));
                    let (exit_net, exit_inbox) = (network.clone(), inbox.clone());
                    let actor = WorkerActor::new(cfg, sink).on_exit(move |_| {
                        exit_net.unregister(&exit_inbox);
                        gone.do_send(WorkerGone(id));
                    });
                    let addr = actor.start();
                    network.register(inbox, addr.clone().recipient());
                    started.push(addr);
                }
                ThreadsRoute::Aws { ctx, stops } => {
                    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                    stops.push(stop_tx);
                    let (clients, ends) = (ctx.clients.clone(), ctx.endpoints());
                    actix::spawn(async move {
                        let stop = async move {
                            let _ = stop_rx.await;
                        };
                        if let Err(e) = worker_actor::aws::serve(cfg, &clients, &ends, stop).await {
                            tracing::error!(worker = %id, error = %e, "worker could not start");
                        }
                        gone.do_send(WorkerGone(id));
                    });
                }
            }
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        match &mut self.route {
            ThreadsRoute::Memory { started, .. } => {
                for addr in started.drain(..) {
                    addr.do_send(worker_actor::Inbox(protocol::Command::Stop { job: None }));
                }
            }
            ThreadsRoute::Aws { stops, .. } => {
                for stop in stops.drain(..) {
                    let _ = stop.send(());
                }
            }
        }
    }
}

/// A launcher that cannot start anything, and says why: the job fails with that reason.
#[derive(Debug)]
pub struct RefusingLauncher(pub String);

impl Launcher for RefusingLauncher {
    fn launch(&mut self, _: usize) -> Result<(), String> {
        Err(self.0.clone())
    }

    fn stop_all(&mut self) {}
}
