//! What callers read: a job's status and result, waiting for it, the list of jobs and
//! workers a caller may see, and `daemon.info`.

use super::{unix_now, DaemonMethods, JobEntry};
use crate::rpc::{RpcError, UNAVAILABLE};
use crate::users::Caller;
use coordinator::actors::{wait, GetSpaceMap, GetStatus, GetTransportCounters, GetWorkers};
use coordinator::request::report::progress;
use nonce_api::{AwsInfo, DaemonInfo, Finished, Health, JobState, JobStatus, JobSummary, Quotas, WorkerView};
use nonce_api::{Interval, IntervalState, SpaceMap, SpaceWorker};
use nonce_core::job::{MapState, WorkerHealth};
use protocol::JobId;
use serde_json::Value;
use std::time::Duration;

/// A typed reply as the JSON the listeners send (integers past 2^64 stay exact).
pub fn reply<T: serde::Serialize>(v: &T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::new(crate::rpc::INTERNAL_ERROR, e.to_string()))
}

/// How long a worker may be silent before the dashboard calls it stale: it has missed a
/// heartbeat (its job's own period, 250 ms in memory or 9 s over SQS), capped by the stall
/// timeout, past which its shards go to others anyway.
fn stale_after(timings: &coordinator::request::WorkerTimings) -> f64 {
    (timings.heartbeat.as_secs_f64() * 1.5).min(timings.stall_timeout.as_secs_f64())
}

fn health(h: WorkerHealth) -> Health {
    match h {
        WorkerHealth::Live => Health::Live,
        WorkerHealth::Stalled => Health::Stalled,
        WorkerHealth::Suspect => Health::Suspect,
        WorkerHealth::Gone => Health::Gone,
    }
}

/// What a job has cost so far, for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq)]
struct JobCost {
    /// Worker vCPU-seconds, counted as the daily quota counts them (workers x threads, from
    /// the job's first start to now, or its run time once finished).
    vcpu_seconds: f64,
    /// At the launcher's price: 0 where the workers run on the daemon's own host.
    usd: f64,
    /// `fargate` (priced) or `local` (this host's CPUs: nothing billed per job).
    basis: &'static str,
    usd_per_vcpu_second: Option<f64>,
}

impl JobCost {
    fn of(e: &JobEntry, now: u64) -> JobCost {
        let vcpu_seconds = e.vcpu_seconds(now);
        match usd_per_vcpu_second(e.spec.launcher) {
            Some(price) => JobCost {
                vcpu_seconds,
                usd: vcpu_seconds * price,
                basis: "fargate",
                usd_per_vcpu_second: Some(price),
            },
            None => JobCost { vcpu_seconds, usd: 0.0, basis: "local", usd_per_vcpu_second: None },
        }
    }
}

/// USD per worker vCPU-second: the default worker task at the planner's Fargate list prices
/// (per vCPU and per GB, so its memory counts too); `None` for launchers that run on the
/// daemon's host, whose CPUs are not billed per job.
fn usd_per_vcpu_second(launcher: coordinator::request::LauncherKind) -> Option<f64> {
    use coordinator::request::LauncherKind;
    use nonce_core::pricing::{fargate_per_minute, DEFAULT_WORKER_GB, DEFAULT_WORKER_VCPUS};
    match launcher {
        LauncherKind::Ecs => {
            Some(fargate_per_minute(DEFAULT_WORKER_VCPUS, DEFAULT_WORKER_GB) / 60.0 / DEFAULT_WORKER_VCPUS)
        }
        LauncherKind::Threads | LauncherKind::Process => None,
    }
}

impl DaemonMethods {
    pub(super) async fn status(&self, job: JobId) -> Result<JobStatus, RpcError> {
        if let Some(result) = self.jobs().get(&job).and_then(|e| e.result.clone()) {
            return Ok(JobStatus::Finished(Finished { job_id: job.to_string(), finished: true, result }));
        }
        let sup = self.supervisor(job).await?;
        let st = sup.send(GetStatus).await.map_err(|e| RpcError::new(UNAVAILABLE, e.to_string()))?;
        let mut p = progress(job, &st);
        if let Ok(Some(c)) = sup.send(GetTransportCounters).await {
            p.transport = Some(c.counts());
        }
        Ok(JobStatus::Running(p))
    }

    pub(super) async fn wait(&self, job: JobId, timeout: Duration) -> Result<JobStatus, RpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(result) = self.jobs().get(&job).and_then(|e| e.result.clone()) {
                return Ok(JobStatus::Finished(Finished { job_id: job.to_string(), finished: true, result }));
            }
            if tokio::time::Instant::now() >= deadline {
                return self.status(job).await;
            }
            // The watcher stores the result moments after the job ends; poll briefly.
            let sup = match self.supervisor(job).await {
                Ok(sup) => sup,
                // Its actor has ended since the check above: the result is stored by now.
                Err(_) if self.jobs().get(&job).is_some_and(|e| e.result.is_some()) => continue,
                Err(e) => return Err(e),
            };
            let _ = tokio::time::timeout_at(deadline, wait(&sup)).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) async fn list(&self, caller: &Caller) -> Result<Vec<JobSummary>, RpcError> {
        let entries: Vec<(JobId, JobEntry)> = self
            .jobs()
            .iter()
            .filter(|(_, e)| caller.may_see(e.owner.as_deref()))
            .map(|(&k, v)| (k, v.clone()))
            .collect();
        let mut out = Vec::new();
        for (job, e) in entries {
            let mut item = JobSummary {
                job_id: job.to_string(),
                owner: e.owner.clone(),
                state: if e.result.is_some() { JobState::Finished } else { JobState::Running },
                mode: e.spec.mode.name().to_string(),
                puzzle: e.spec.puzzle.describe(),
                workers: e.spec.workers,
                workers_live: None,
                searched: 0,
                total: e.spec.range.len(),
                rate: 0.0,
                elapsed_s: unix_now().saturating_sub(e.started_at) as f64,
                outcome: None,
                nonce: None,
                request: serde_json::to_value(&e.request).unwrap_or(Value::Null),
            };
            match &e.result {
                Some(r) => {
                    item.outcome = Some(r.outcome);
                    item.nonce = r.nonce;
                    item.searched = r.searched;
                    item.rate = r.rate;
                    item.elapsed_s = r.elapsed_s;
                }
                None => {
                    if let Ok(JobStatus::Running(p)) = self.status(job).await {
                        item.searched = p.searched;
                        item.rate = p.rate;
                        item.workers_live = Some(p.workers);
                    }
                }
            }
            out.push(item);
        }
        Ok(out)
    }

    pub(super) async fn workers(
        &self,
        caller: &Caller,
        only: Option<JobId>,
    ) -> Result<Vec<WorkerView>, RpcError> {
        let mut out = Vec::new();
        let visible: Vec<(JobId, f64)> = self
            .jobs()
            .iter()
            .filter(|(id, e)| {
                e.result.is_none() && caller.may_see(e.owner.as_deref()) && only.is_none_or(|o| o == **id)
            })
            .map(|(&id, e)| (id, stale_after(&e.spec.timings)))
            .collect();
        for (job, stale_after_s) in visible {
            let Ok(sup) = self.supervisor(job).await else { continue };
            let Ok(list) = sup.send(GetWorkers).await else { continue };
            for w in list {
                out.push(WorkerView {
                    job_id: job.to_string(),
                    worker: w.worker.to_string(),
                    health: health(w.health),
                    rate: w.rate.round(),
                    shards: w.shards,
                    silent_s: (w.silent_for.as_secs_f64() * 1000.0).round() / 1000.0,
                    stale_after_s,
                });
            }
        }
        Ok(out)
    }

    /// A job's nonce space (the ledger's intervals and who holds what), its workers and its
    /// history: everything the dashboard draws for one job. Numbers of the space are decimal
    /// strings (they may pass 2^53). Also what the page must not decide for itself: when a
    /// worker is stale (`stale_after_s`), what the job has cost (`cost_usd`, at its launcher's
    /// price), and its rate in this daemon's life (`rate`: a resumed job's earlier nonces were
    /// not searched in this life's time).
    pub(super) async fn space(&self, job: JobId) -> Result<SpaceMap, RpcError> {
        /// Intervals sent at most (the lowest first): a picture needs no more.
        const MAX_INTERVALS: usize = 2048;
        let timeline = self.timelines().get(&job).map(|t| t.view());
        let (mut map, result) = {
            let jobs = self.jobs();
            let e = jobs.get(&job).ok_or_else(|| RpcError::new(crate::rpc::JOB_NOT_FOUND, "no job"))?;
            let resumed: u128 = e.spec.resume.as_ref().map_or(0, |s| s.done.iter().map(|r| r.len()).sum());
            let cost = JobCost::of(e, unix_now());
            let map = SpaceMap {
                job_id: job.to_string(),
                range: [e.spec.range.start.to_string(), e.spec.range.end.to_string()],
                launcher: e.spec.launcher.name().to_string(),
                timeline,
                stale_after_s: stale_after(&e.spec.timings),
                vcpu_seconds: cost.vcpu_seconds,
                cost_usd: cost.usd,
                cost_basis: cost.basis.to_string(),
                usd_per_vcpu_second: cost.usd_per_vcpu_second,
                prices_as_of: nonce_core::pricing::PRICES_AS_OF.to_string(),
                resumed_searched: resumed.to_string(),
                finished: false,
                rate: 0.0,
                result: None,
                status: None,
                truncated: false,
                intervals: vec![],
                workers: vec![],
            };
            (map, e.result.clone())
        };
        if let Some(result) = result {
            // The report's rate is this life's already (`Stats::resumed` is left out).
            map.rate = result.rate;
            map.finished = true;
            map.result = Some(result);
            return Ok(map);
        }
        let sup = self.supervisor(job).await?;
        let unavailable = |e: actix::MailboxError| RpcError::new(UNAVAILABLE, e.to_string());
        let space = sup.send(GetSpaceMap(MAX_INTERVALS)).await.map_err(unavailable)?;
        let workers = sup.send(GetWorkers).await.map_err(unavailable)?;
        let st = sup.send(GetStatus).await.map_err(unavailable)?;
        map.status = Some(progress(job, &st));
        // The live workers' own rates: this life's already, whatever was resumed.
        map.rate = st.stats.rate.round();
        map.truncated = space.truncated;
        map.intervals = space
            .intervals
            .iter()
            .map(|s| {
                let (state, worker, shard_start) = match &s.state {
                    MapState::Free => (IntervalState::Free, None, None),
                    MapState::Done => (IntervalState::Done, None, None),
                    MapState::Assigned { worker, shard_start } => {
                        (IntervalState::Assigned, Some(worker.to_string()), Some(shard_start.to_string()))
                    }
                };
                Interval {
                    start: s.range.start.to_string(),
                    end: s.range.end.to_string(),
                    state,
                    worker,
                    shard_start,
                }
            })
            .collect();
        let tenth = |d: Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
        map.workers = workers
            .iter()
            .map(|w| SpaceWorker {
                worker: w.worker.to_string(),
                health: health(w.health),
                rate: w.rate.round(),
                ranges: w.ranges.iter().map(|r| [r.start.to_string(), r.end.to_string()]).collect(),
                silent_s: tenth(w.silent_for),
                startup_s: w.startup.map(tenth),
            })
            .collect();
        Ok(map)
    }

    /// The daemon's state for the metrics: jobs by state, running jobs' rates and workers,
    /// and the supervision counters summed over every job known.
    pub async fn reading(&self) -> crate::metrics::Reading {
        use crate::metrics::RunningJob;
        let entries: Vec<(JobId, Option<nonce_api::Report>)> =
            self.jobs().iter().map(|(&id, e)| (id, e.result.clone())).collect();
        // Finished jobs, forgotten or kept, through one sum.
        let mut r = self.forgotten_totals();
        for (job, result) in entries {
            let stats = match result {
                Some(res) => {
                    r.add_finished(&res);
                    continue;
                }
                None => {
                    *r.jobs.entry("running".into()).or_default() += 1;
                    let Ok(sup) = self.supervisor(job).await else { continue };
                    let Ok(st) = sup.send(GetStatus).await else { continue };
                    let workers = sup.send(GetWorkers).await.unwrap_or_default();
                    r.searched += st.stats.searched as f64;
                    r.running.push(RunningJob {
                        job: job.to_string(),
                        rate: st.stats.rate,
                        workers: workers
                            .iter()
                            .map(|w| (w.worker.to_string(), w.health.name(), w.rate))
                            .collect(),
                    });
                    let s = &st.stats;
                    r.interruptions += s.interruptions;
                    (s.stalls, s.reshards, s.steals, s.ghosts, s.rejected)
                }
            };
            r.stalls += stats.0;
            r.reshards += stats.1;
            r.steals += stats.2;
            r.ghosts += stats.3;
            r.rejected += stats.4;
        }
        if let Some(a) = &self.aws {
            let st = a.stats();
            // Events of jobs not running here, dropped by the router before any job sees
            // them: not among the jobs' own ghosts, so they add up.
            r.ghosts += st.ghosts;
            r.undecodable = st.undecodable;
            r.events = st.delivered;
            r.aws_requests = a.clients.calls.by_operation();
        }
        r
    }

    pub(super) fn info(&self, socket: &str) -> DaemonInfo {
        let config = self.config();
        DaemonInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs(),
            transport: config.transport.name().to_string(),
            launcher: config.launcher.name().to_string(),
            socket: socket.to_string(),
            journal: self.journal.journal().path().display().to_string(),
            http_listen: config.http.listen.clone(),
            http_tls: config.http.listen.is_some() && !config.http.plain,
            users: config.users.len(),
            jobs_running: self.running().len(),
            jobs_known: self.jobs().len(),
            quotas: Quotas {
                max_workers_per_job: config.quotas.max_workers_per_job,
                max_concurrent_jobs: config.quotas.max_concurrent_jobs,
                max_fleet: config.quotas.max_fleet,
                max_vcpu_seconds_per_job: config.quotas.max_vcpu_seconds_per_job,
            },
            // Since start, all jobs: events routed, ghosts dropped, poison moved to the DLQ.
            aws: self.aws.as_ref().map(|a| {
                let st = a.stats();
                AwsInfo {
                    prefix: a.settings.prefix.clone(),
                    events_queue: a.fabric.events_url.clone(),
                    control_topic: a.fabric.topic_arn.clone(),
                    events: st.delivered,
                    ghosts: st.ghosts,
                    undecodable: st.undecodable,
                    sqs_requests: a.clients.calls.sqs(),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coordinator::request::LauncherKind;

    #[test]
    fn fargate_workers_cost_the_default_task_per_vcpu_second_and_local_ones_nothing() {
        // (0.04048 + 2 x 0.004445) / 3600 USD per second for the 1-vCPU, 2 GB task.
        let fargate = usd_per_vcpu_second(LauncherKind::Ecs).expect("priced");
        assert!((fargate - 0.049_37 / 3600.0).abs() < 1e-12, "{fargate}");
        assert_eq!(usd_per_vcpu_second(LauncherKind::Threads), None);
        assert_eq!(usd_per_vcpu_second(LauncherKind::Process), None);
    }
}
