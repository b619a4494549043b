//! The `ecs` launcher: workers as Fargate tasks. RunTask (ten at a time) with the worker's
//! environment as container overrides and tags naming the job; DescribeTasks to notice tasks
//! that stopped (their workers are gone at once, not after the stall timeout); StopTask for
//! every task when the job ends. Each task's `nonce-worker` names itself after its task id,
//! so a stopped task maps to its worker.

use super::{LaunchFailed, Launcher, WorkerGone, WorkerWiring};
use crate::transport::aws::AwsContext;
use aws_transport::ecs::{self, EcsSettings, TaskLaunch};
use protocol::WorkerId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tag keys on every task.
pub const JOB_TAG: &str = "nonce-cloud:job";
pub const PREFIX_TAG: &str = "nonce-cloud:prefix";

#[derive(Debug, Default)]
struct TaskBook {
    /// Every task started, for StopTask at the end.
    all: Vec<String>,
    /// Tasks not yet seen stopped.
    live: Vec<String>,
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
    pub fn new(wiring: WorkerWiring, ctx: AwsContext) -> Result<Self, String> {
        let settings =
            ctx.settings.ecs.clone().ok_or("the ecs launcher needs ECS settings (--ecs-cluster, ...)")?;
        settings.check()?;
        Ok(EcsLauncher { wiring, ctx, settings, book: Arc::default(), watcher: None })
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
                let live = Self::book(&book).live.clone();
                if live.is_empty() {
                    continue;
                }
                match ecs::stopped_tasks(&ecs, &cluster, &live).await {
                    Ok(stopped) => {
                        let mut b = Self::book(&book);
                        for (arn, reason) in stopped {
                            b.live.retain(|a| *a != arn);
                            tracing::info!(task = %arn, %reason, "ecs task stopped");
                            gone.do_send(WorkerGone(WorkerId(ecs::worker_id_for_task(&arn))));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot check the tasks"),
                }
            }
        }));
    }
}

impl Launcher for EcsLauncher {
    fn launch(&mut self, count: usize) -> Result<(), String> {
        let w = &self.wiring;
        let launch = TaskLaunch {
            env: self.ctx.worker_env(w.job, &w.timings),
            tags: vec![
                (JOB_TAG.into(), w.job.to_string()),
                (PREFIX_TAG.into(), self.ctx.settings.prefix.clone()),
            ],
            started_by: format!("nonce-cloud/{}", w.job),
        };
        let (ecs, settings, book, failed) = (
            self.ctx.clients.ecs.clone(),
            self.settings.clone(),
            Arc::clone(&self.book),
            w.launch_failed.clone(),
        );
        tokio::spawn(async move {
            let (arns, failure) = ecs::run_tasks(&ecs, &settings, count, &launch).await;
            let late = {
                let mut b = Self::book(&book);
                b.all.extend(arns.iter().cloned());
                if b.stopping {
                    arns.clone()
                } else {
                    b.live.extend(arns.iter().cloned());
                    vec![]
                }
            };
            if !late.is_empty() {
                ecs::stop_tasks(&ecs, &settings.cluster, &late, "nonce-cloud: the job ended").await;
            }
            if let Some(reason) = failure {
                failed.do_send(LaunchFailed { count: count - arns.len(), reason });
            }
        });
        self.watch();
        Ok(())
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
