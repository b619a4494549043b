//! The coordinator's side of the `aws` transport: one [`AwsContext`] per process (clients,
//! the deployment's queues and topic, one event router shared by every job), and an
//! [`AwsNetwork`] per job that sends its commands and receives its events.

use super::{Transport, TransportCounters, WorkerEvent};
use crate::request::{AwsSettings, WorkerTimings};
use actix::Recipient;
use aws_transport::{AwsClients, AwsError, CommandSender, EventRouter, Fabric, ResourceNames, RouterStats};
use protocol::{JobId, SealedCommand, SignedBroadcast};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker_actor::aws::AwsEndpoints;

/// What the `process` and `ecs` launchers set for each aws worker (ECS: container overrides).
pub const WORKER_OVERRIDES: [&str; 7] = [
    "NONCE_JOB_ID",
    "NONCE_TRANSPORT",
    "NONCE_AWS_PREFIX",
    "NONCE_EVENTS_QUEUE_URL",
    "NONCE_CONTROL_TOPIC_ARN",
    "NONCE_HEARTBEAT_MS",
    "NONCE_ORPHAN_TIMEOUT_S",
];

/// The process-wide aws state. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct AwsContext(Arc<AwsShared>);

impl std::ops::Deref for AwsContext {
    type Target = AwsShared;
    fn deref(&self) -> &AwsShared {
        &self.0
    }
}

/// What an [`AwsContext`] shares.
#[derive(Debug)]
pub struct AwsShared {
    /// The SDK clients, counting every request.
    pub clients: AwsClients,
    /// The deployment's queues and topic.
    pub fabric: Fabric,
    /// Routes events from the events queue to their jobs.
    pub router: EventRouter,
    /// Sends commands to inboxes and broadcasts to the topic.
    pub sender: CommandSender,
    /// What it was connected with.
    pub settings: AwsSettings,
    /// Clean-up calls still running (StopTask): waited for before the process exits.
    cleanup: Arc<AtomicUsize>,
    /// Workers the running jobs may have at once: the event pollers follow it.
    fleet: AtomicUsize,
    /// The account's launch buckets, shared by every job's `ecs` launches.
    pub gate: crate::request::launch_gate::SharedGate,
}

impl AwsContext {
    /// Loads credentials and region, finds (or bootstraps) the queues and topic, and starts
    /// polling the events queue. Must run inside the tokio runtime.
    pub async fn connect(settings: AwsSettings) -> Result<Self, AwsError> {
        let names = ResourceNames::new(&settings.prefix)?;
        if let Some(ecs) = &settings.ecs {
            ecs.check()?;
        }
        settings.launch.quotas.validate().map_err(|e| AwsError::Invalid(e.to_string()))?;
        let clients = AwsClients::from_env().await?;
        let fabric = Fabric::open(&clients, names, settings.bootstrap).await?;
        tracing::info!(events = %fabric.events_url, topic = %fabric.topic_arn, "aws transport ready");
        let router = EventRouter::start(&clients, &fabric, aws_transport::pollers_for(0));
        let sender = CommandSender::start(clients.clone(), fabric.topic_arn.clone());
        Ok(AwsContext(Arc::new(AwsShared {
            clients,
            fabric,
            router,
            sender,
            cleanup: Arc::default(),
            fleet: AtomicUsize::new(0),
            gate: crate::request::launch_gate::SharedGate::new(settings.launch.quotas),
            settings,
        })))
    }

    /// Where workers connect.
    pub fn endpoints(&self) -> AwsEndpoints {
        AwsEndpoints {
            prefix: self.settings.prefix.clone(),
            events_url: self.fabric.events_url.clone(),
            topic_arn: self.fabric.topic_arn.clone(),
            // In-process workers share the coordinator's clients and counts: the program
            // writes those once.
            call_log: None,
        }
    }

    /// Where a worker's inbox queue must be: its URL under this deployment's inbox prefix
    /// (the events queue's account and endpoint, `<prefix>-inbox-<worker id>`). Worker ids
    /// are the job's own, made of characters queue names allow, so the name is the id as is.
    pub fn inbox_rule(&self) -> nonce_core::job::InboxRule {
        let base = self.fabric.events_url.rsplit_once('/').map_or("", |(b, _)| b);
        nonce_core::job::InboxRule::new(format!("{base}/{}", self.fabric.names.inbox_prefix()), "")
    }

    /// The environment of an `aws` `nonce-worker` (process or ECS task) of `job`: the
    /// variables of [`WORKER_OVERRIDES`], in that order.
    pub fn worker_env(&self, job: JobId, timings: &WorkerTimings) -> Vec<(String, String)> {
        let ends = self.endpoints();
        let values = [
            job.to_string(),
            "aws".into(),
            ends.prefix,
            ends.events_url,
            ends.topic_arn,
            timings.heartbeat.as_millis().max(1).to_string(),
            timings.orphan_timeout.as_secs().max(1).to_string(),
        ];
        WORKER_OVERRIDES.iter().map(|k| k.to_string()).zip(values).collect()
    }

    /// A job with up to `workers` workers starts (`+`) or ends (`-`): resizes the pollers.
    fn change_fleet(&self, workers: usize, grow: bool) {
        let total = if grow {
            self.fleet.fetch_add(workers, Ordering::AcqRel) + workers
        } else {
            self.fleet.fetch_sub(workers, Ordering::AcqRel).saturating_sub(workers)
        };
        self.router.set_pollers(aws_transport::pollers_for(total));
    }

    /// What the router has delivered, dropped and dead-lettered.
    pub fn stats(&self) -> RouterStats {
        self.router.stats()
    }

    /// Counts a clean-up task until the returned guard drops.
    pub fn cleanup_guard(&self) -> CleanupGuard {
        self.cleanup.fetch_add(1, Ordering::AcqRel);
        CleanupGuard(Arc::clone(&self.cleanup))
    }

    /// Waits (at most `timeout`) for queued commands and clean-up calls, so that a process
    /// about to exit does not take a final `Stop` or `StopTask` with it.
    pub async fn settle(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        let sent = self.sender.flush(timeout).await;
        while self.cleanup.load(Ordering::Acquire) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !sent || self.cleanup.load(Ordering::Acquire) > 0 {
            tracing::warn!("exiting before every command or clean-up call went out");
        }
    }
}

/// See [`AwsContext::cleanup_guard`].
#[derive(Debug)]
pub struct CleanupGuard(Arc<AtomicUsize>);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Time workers get to delete their own inboxes after the job ends, before the sweep.
const SWEEP_AFTER: Duration = Duration::from_secs(1);

/// One job's use of the aws transport.
#[derive(Debug)]
pub struct AwsNetwork {
    job: JobId,
    /// The most workers this job runs at once (it sizes the event pollers).
    fleet: usize,
    ctx: AwsContext,
    /// Every inbox this job has written to: what the sweep checks at the end.
    inboxes: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The process's counters when the job started: the job's are the difference.
    base: (RouterStats, u64),
    /// The job's counters as they were when it ended.
    ended: std::sync::Mutex<Option<TransportCounters>>,
}

impl AwsNetwork {
    /// Routes `job`'s events to `events` from now on; `fleet` is the most workers it runs
    /// at once.
    pub fn open(ctx: &AwsContext, job: JobId, fleet: usize, events: Recipient<WorkerEvent>) -> Self {
        ctx.router.register(job, Box::new(move |ev| events.do_send(WorkerEvent(ev))));
        ctx.change_fleet(fleet, true);
        let base = (ctx.stats(), ctx.clients.calls.sqs());
        AwsNetwork {
            job,
            fleet,
            ctx: ctx.clone(),
            inboxes: Default::default(),
            base,
            ended: Default::default(),
        }
    }
}

impl Transport for AwsNetwork {
    fn send(&self, inbox: &str, command: SealedCommand) {
        let mut known = self.inboxes.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains(inbox) {
            known.insert(inbox.to_string());
        }
        drop(known);
        self.ctx.sender.send(inbox, &command);
    }

    fn broadcast(&self, broadcast: SignedBroadcast) {
        self.ctx.sender.broadcast(&broadcast);
    }

    fn counters(&self) -> Option<TransportCounters> {
        if let Some(c) = *self.ended.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some(c);
        }
        let (st, (b, b_sqs)) = (self.ctx.stats(), self.base);
        Some(TransportCounters {
            events: self.ctx.router.delivered_to(self.job),
            forged: 0,
            ghosts: st.ghosts.saturating_sub(b.ghosts),
            undecodable: st.undecodable.saturating_sub(b.undecodable),
            sqs_requests: self.ctx.clients.calls.sqs().saturating_sub(b_sqs),
        })
    }

    fn finished(&self) {
        let now = self.counters();
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = now;
        // The job's own workers still say Bye: those reach the finished job, which ignores
        // them. What comes after the grace is a ghost. Workers that died without cleaning up
        // leave their inboxes: remove them once the live ones have removed their own.
        let inboxes: Vec<(String, JobId)> =
            std::mem::take(&mut *self.inboxes.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|url| (url, self.job))
                .collect();
        let (ctx, guard, job) = (self.ctx.clone(), self.ctx.cleanup_guard(), self.job);
        tokio::spawn(async move {
            tokio::time::sleep(SWEEP_AFTER).await;
            ctx.router.unregister(job);
            let prefix = ctx.fabric.names.inbox_prefix();
            let n =
                aws_transport::sweep::sweep_inboxes(&ctx.clients, &ctx.fabric.topic_arn, &prefix, &inboxes)
                    .await;
            if n > 0 {
                tracing::info!(%job, inboxes = n, "swept inboxes of workers that died");
            }
            drop(guard);
        });
    }
}

impl Drop for AwsNetwork {
    fn drop(&mut self) {
        self.ctx.change_fleet(self.fleet, false);
        self.ctx.router.unregister(self.job);
    }
}
