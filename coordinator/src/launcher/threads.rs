//! The `threads` launcher: worker actors inside this process, each with its own hashing
//! threads, reached by actor messages or, over `aws`, through their own SQS inboxes.

use super::{LaunchError, LaunchSent, Launcher, WorkerCredentials, WorkerGone, WorkerWiring};
use crate::transport::aws::AwsContext;
use crate::transport::{MemoryNetwork, MemorySink};
use actix::prelude::*;
use protocol::WorkerId;
use std::sync::{Arc, Mutex};
use worker_actor::{WorkerActor, WorkerConfig};

/// Workers started so far, and whether `stop_all` came: a worker whose start is delayed
/// (`WorkerWiring::launch_delay`) checks it before starting, so none starts after the job ended.
#[derive(Default)]
struct Started {
    actors: Vec<(WorkerId, Addr<WorkerActor>)>,
    stopped: bool,
}

/// How in-process workers reach their coordinator.
enum ThreadsRoute {
    /// Actor messages: the embedded default.
    Memory { network: MemoryNetwork, started: Arc<Mutex<Started>> },
    /// SQS and SNS, like remote workers (each with its own inbox queue).
    Aws { ctx: AwsContext, stops: Vec<(WorkerId, tokio::sync::oneshot::Sender<()>)> },
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
    /// A launcher of worker actors in this process, reached through `network`.
    pub fn new(wiring: WorkerWiring, network: MemoryNetwork) -> Self {
        ThreadsLauncher { wiring, route: ThreadsRoute::Memory { network, started: Arc::default() }, count: 0 }
    }

    /// In-process workers that talk over SQS and SNS.
    pub fn over_aws(wiring: WorkerWiring, ctx: AwsContext) -> Self {
        ThreadsLauncher { wiring, route: ThreadsRoute::Aws { ctx, stops: vec![] }, count: 0 }
    }
}

impl Launcher for ThreadsLauncher {
    fn launch(&mut self, workers: Vec<WorkerCredentials>) -> Result<(), LaunchError> {
        for creds in workers {
            let w = &self.wiring;
            let id = creds.worker.clone();
            self.count += 1;
            let mut cfg = WorkerConfig {
                id: id.clone(),
                job: w.job,
                inbox: String::new(),
                threads: w.threads,
                heartbeat: w.timings.heartbeat,
                orphan_timeout: w.timings.orphan_timeout,
                backend: w.backend,
                key: creds.key,
                broadcast: creds.broadcast,
            };
            let gone = w.gone.clone();
            match &mut self.route {
                ThreadsRoute::Memory { network, started } => {
                    let inbox = format!("mem://{id}");
                    cfg.inbox = inbox.clone();
                    let sink = std::sync::Arc::new(MemorySink(w.events.clone()));
                    let (exit_net, exit_inbox, exit_id) = (network.clone(), inbox.clone(), id.clone());
                    let actor = WorkerActor::new(cfg, sink).on_exit(move |_| {
                        exit_net.unregister(&exit_inbox);
                        gone.do_send(WorkerGone(exit_id));
                    });
                    let start_id = id.clone();
                    let (network, started, started_id) = (network.clone(), started.clone(), id);
                    let start = move || {
                        let mut s = started.lock().unwrap_or_else(|e| e.into_inner());
                        if s.stopped {
                            return;
                        }
                        let addr = actor.start();
                        network.register(inbox, addr.clone().recipient());
                        s.actors.push((started_id, addr));
                    };
                    let delay = w.launch_delay.as_ref().map(|d| d.draw());
                    if let Some(gate) = w.launch_gate.clone() {
                        // Queued on the bucket like an ecs launch, then its start-up.
                        let (sent, who) = (w.launch_sent.clone(), start_id.clone());
                        actix::spawn(async move {
                            gate.acquire().await;
                            sent.do_send(LaunchSent { workers: vec![who] });
                            actix::clock::sleep(delay.unwrap_or_default()).await;
                            start();
                        });
                        continue;
                    }
                    match delay {
                        Some(delay) if !delay.is_zero() => {
                            actix::spawn(async move {
                                actix::clock::sleep(delay).await;
                                start();
                            });
                        }
                        _ => start(),
                    }
                }
                ThreadsRoute::Aws { ctx, stops } => {
                    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                    stops.push((id.clone(), stop_tx));
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

    fn evict(&mut self, worker: &WorkerId) {
        match &mut self.route {
            ThreadsRoute::Memory { started, .. } => {
                let s = started.lock().unwrap_or_else(|e| e.into_inner());
                for (_, addr) in s.actors.iter().filter(|(id, _)| id == worker) {
                    addr.do_send(worker_actor::LocalStop(worker_actor::Shutdown::Stopped));
                }
            }
            ThreadsRoute::Aws { stops, .. } => {
                if let Some(i) = stops.iter().position(|(id, _)| id == worker) {
                    let _ = stops.swap_remove(i).1.send(());
                }
            }
        }
    }

    fn stop_all(&mut self) {
        match &mut self.route {
            ThreadsRoute::Memory { started, .. } => {
                let mut s = started.lock().unwrap_or_else(|e| e.into_inner());
                s.stopped = true;
                for (_, addr) in s.actors.drain(..) {
                    addr.do_send(worker_actor::LocalStop(worker_actor::Shutdown::Stopped));
                }
            }
            ThreadsRoute::Aws { stops, .. } => {
                for (_, stop) in stops.drain(..) {
                    let _ = stop.send(());
                }
            }
        }
    }
}
