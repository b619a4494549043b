//! The `ecs` launcher: workers as Fargate tasks. RunTask (one task a call: each task's
//! container override carries its own worker name and key) with tags naming the job, paced
//! to the account's launch quotas and retried through throttles and capacity shortfalls
//! (`pacing.rs`), on on-demand Fargate or Fargate Spot as the job's capacity says;
//! DescribeTasks to notice tasks that stopped (their workers are gone at once, not after the
//! stall timeout); StopTask for every task when the job ends, or for one evicted worker. The
//! launcher remembers which task runs which worker.

use super::{
    pacing, LaunchError, LaunchFailed, LaunchSent, Launcher, WorkerCredentials, WorkerGone, WorkerWiring,
};
use crate::transport::aws::AwsContext;
use aws_transport::ecs::{self, EcsSettings, Provider, TaskLaunch};
use aws_transport::AwsError;
use protocol::WorkerId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tag keys on every task.
pub const JOB_TAG: &str = "nonce-cloud:job";
/// The deployment prefix's tag key (the sweep and IAM conditions match it).
pub const PREFIX_TAG: &str = "nonce-cloud:prefix";

#[derive(Debug, Default)]
struct TaskBook {
    /// Every task started, for StopTask at the end.
    all: Vec<String>,
    /// Tasks not yet seen stopped, with their workers and capacity.
    live: Vec<(String, WorkerId, Provider)>,
    /// The job has ended: tasks whose RunTask answers now are stopped at once.
    stopping: bool,
}

/// See the module docs.
pub struct EcsLauncher {
    wiring: WorkerWiring,
    ctx: AwsContext,
    settings: EcsSettings,
    book: Arc<Mutex<TaskBook>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    /// Workers asked for so far (a `mixed` fleet alternates its capacity by this count).
    launched: usize,
}

impl std::fmt::Debug for EcsLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsLauncher")
            .field("job", &self.wiring.job)
            .field("cluster", &self.settings.cluster)
            .finish()
    }
}

impl EcsLauncher {
    /// A launcher for `wiring`'s job on the ECS settings of `ctx` (refused without them).
    pub fn new(wiring: WorkerWiring, ctx: AwsContext) -> Result<Self, AwsError> {
        let settings = ctx.settings.ecs.clone().ok_or_else(|| {
            AwsError::Invalid("the ecs launcher needs ECS settings (--ecs-cluster, ...)".into())
        })?;
        settings.check()?;
        Ok(EcsLauncher { wiring, ctx, settings, book: Arc::default(), watcher: None, launched: 0 })
    }

    fn book(book: &Mutex<TaskBook>) -> std::sync::MutexGuard<'_, TaskBook> {
        book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls DescribeTasks for the live tasks and reports the workers of stopped ones.
    fn watch(&mut self) {
        if self.watcher.is_some() {
            return;
        }
        let every = self.wiring.timings.heartbeat.clamp(Duration::from_secs(2), Duration::from_secs(15));
        let (ecs, cluster, book, gone) = (
            self.ctx.clients.ecs.clone(),
            self.settings.cluster.clone(),
            Arc::clone(&self.book),
            self.wiring.gone.clone(),
        );
        self.watcher = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let live: Vec<String> = Self::book(&book).live.iter().map(|(a, _, _)| a.clone()).collect();
                if live.is_empty() {
                    continue;
                }
                match ecs::stopped_tasks(&ecs, &cluster, &live).await {
                    Ok(stopped) => {
                        let mut b = Self::book(&book);
                        for (arn, reason) in stopped {
                            let Some(i) = b.live.iter().position(|(a, _, _)| *a == arn) else { continue };
                            let (_, worker, provider) = b.live.swap_remove(i);
                            tracing::info!(task = %arn, %worker, capacity = provider.name(), %reason, "ecs task stopped");
                            gone.do_send(WorkerGone(worker));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot check the tasks"),
                }
            }
        }));
    }
}

impl Launcher for EcsLauncher {
    fn launch(&mut self, workers: Vec<WorkerCredentials>) -> Result<(), LaunchError> {
        let w = &self.wiring;
        let tags =
            vec![(JOB_TAG.into(), w.job.to_string()), (PREFIX_TAG.into(), self.ctx.settings.prefix.clone())];
        let env = self.ctx.worker_env(w.job, &w.timings);
        let items: Vec<(WorkerId, TaskLaunch, Provider)> = workers
            .into_iter()
            .map(|c| {
                let provider = w.capacity.provider_of(self.launched);
                self.launched += 1;
                let launch = TaskLaunch {
                    env: env.iter().cloned().chain(c.env()).collect(),
                    tags: tags.clone(),
                    started_by: format!("nonce-cloud/{}", w.job),
                };
                (c.worker, launch, provider)
            })
            .collect();
        let (ecs, settings, book, failed, sent) = (
            self.ctx.clients.ecs.clone(),
            self.settings.clone(),
            Arc::clone(&self.book),
            w.launch_failed.clone(),
            w.launch_sent.clone(),
        );
        let (gate, policy, ctx, job) =
            (self.ctx.gate.clone(), self.ctx.settings.launch.retry.clone(), self.ctx.clone(), w.job);
        let count = items.len();
        tokio::spawn(async move {
            let stopping = {
                let book = Arc::clone(&book);
                move || Self::book(&book).stopping
            };
            let call = {
                let (ecs, settings) = (ecs.clone(), settings.clone());
                move |(_, launch, provider): &(WorkerId, TaskLaunch, Provider)| {
                    let (ecs, settings, launch, provider) =
                        (ecs.clone(), settings.clone(), launch.clone(), *provider);
                    async move { ecs::run_task(&ecs, &settings, &launch, provider).await }
                }
            };
            let tally = pacing::launch_paced(
                items,
                &gate,
                &policy,
                stopping,
                call,
                |(id, _, _)| sent.do_send(LaunchSent { workers: vec![id.clone()] }),
                |(id, _, provider), result| match result {
                    Ok(arn) => {
                        let late = {
                            let mut b = Self::book(&book);
                            b.all.push(arn.clone());
                            if !b.stopping {
                                b.live.push((arn.clone(), id, provider));
                            }
                            b.stopping
                        };
                        if late {
                            // Started after the job ended: stopped at once.
                            let (ecs, cluster, guard) =
                                (ecs.clone(), settings.cluster.clone(), ctx.cleanup_guard());
                            tokio::spawn(async move {
                                ecs::stop_tasks(&ecs, &cluster, &[arn], "nonce-cloud: the job ended").await;
                                drop(guard);
                            });
                        }
                    }
                    Err(reason) => failed.do_send(LaunchFailed { workers: vec![id], reason }),
                },
            )
            .await;
            tracing::info!(
                %job,
                asked = count,
                started = tally.started,
                calls = tally.calls,
                throttled = tally.throttled,
                no_capacity = tally.no_capacity,
                given_up = tally.given_up,
                failed = tally.failed,
                "ecs launch done"
            );
        });
        self.watch();
        Ok(())
    }

    fn evict(&mut self, worker: &WorkerId) {
        let arns: Vec<String> = Self::book(&self.book)
            .live
            .iter()
            .filter(|(_, w, _)| w == worker)
            .map(|(a, _, _)| a.clone())
            .collect();
        if arns.is_empty() {
            return;
        }
        let guard = self.ctx.cleanup_guard();
        let (ecs, cluster) = (self.ctx.clients.ecs.clone(), self.settings.cluster.clone());
        tokio::spawn(async move {
            ecs::stop_tasks(&ecs, &cluster, &arns, "nonce-cloud: worker evicted (suspect)").await;
            drop(guard);
        });
    }

    fn stop_all(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let all = {
            let mut b = Self::book(&self.book);
            b.stopping = true;
            b.live.clear();
            b.all.clone()
        };
        let guard = self.ctx.cleanup_guard();
        let (ecs, cluster) = (self.ctx.clients.ecs.clone(), self.settings.cluster.clone());
        tokio::spawn(async move {
            let failed = ecs::stop_tasks(&ecs, &cluster, &all, "nonce-cloud: the job ended").await;
            tracing::info!(tasks = all.len(), failed, "stopped the job's ecs tasks");
            drop(guard);
        });
    }
}
