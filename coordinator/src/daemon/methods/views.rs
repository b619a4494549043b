//! What callers read: a job's status and result, waiting for it, the list of jobs and
//! workers a caller may see, and `daemon.info`.

use super::{DaemonMethods, JobEntry};
use crate::actors::{GetStatus, GetTransportCounters, GetWorkers, WaitJob};
use crate::daemon::rpc::{RpcError, UNAVAILABLE};
use crate::daemon::users::Caller;
use nonce_core::job::Status;
use protocol::JobId;
use serde_json::{json, Value};
use std::time::Duration;

/// The status object of a running job (the fields `noncectl status` shows).
pub fn status_json(job: JobId, st: &Status) -> Value {
    json!({
        "job_id": job.to_string(),
        "finished": st.finished,
        "searched": st.stats.searched,
        "total": st.total,
        "rate": st.stats.rate.round(),
        "workers": st.stats.workers_live,
        "stalls": st.stats.stalls,
        "reshards": st.stats.reshards,
        "lowest_so_far": st.lowest,
    })
}

impl DaemonMethods {
    pub(super) async fn status(&self, job: JobId) -> Result<Value, RpcError> {
        if let Some(result) = self.jobs().get(&job).and_then(|e| e.result.clone()) {
            return Ok(json!({ "job_id": job.to_string(), "finished": true, "result": result }));
        }
        let sup = self.supervisor(job).await?;
        let st = sup.send(GetStatus).await.map_err(|e| RpcError::new(UNAVAILABLE, e.to_string()))?;
        let mut v = status_json(job, &st);
        if let Ok(Some(c)) = sup.send(GetTransportCounters).await {
            v["transport"] = c.json();
        }
        Ok(v)
    }

    pub(super) async fn wait(&self, job: JobId, timeout: Duration) -> Result<Value, RpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(result) = self.jobs().get(&job).and_then(|e| e.result.clone()) {
                return Ok(json!({ "job_id": job.to_string(), "finished": true, "result": result }));
            }
            if tokio::time::Instant::now() >= deadline {
                let mut st = self.status(job).await?;
                st["finished"] = json!(false);
                return Ok(st);
            }
            // The watcher stores the result moments after the job ends; poll briefly.
            let sup = self.supervisor(job).await?;
            let _ = tokio::time::timeout_at(deadline, sup.send(WaitJob)).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) async fn list(&self, caller: &Caller) -> Result<Value, RpcError> {
        let entries: Vec<(JobId, JobEntry)> = self
            .jobs()
            .iter()
            .filter(|(_, e)| caller.may_see(e.owner.as_deref()))
            .map(|(&k, v)| (k, v.clone()))
            .collect();
        let mut out = Vec::new();
        for (job, e) in entries {
            let mut item = json!({
                "job_id": job.to_string(),
                "mode": e.spec.mode.name(),
                "puzzle": e.spec.puzzle.describe(),
                "workers": e.spec.workers,
                "state": if e.result.is_some() { "finished" } else { "running" },
                "owner": e.owner,
                "request": e.request,
            });
            match &e.result {
                Some(r) => {
                    item["outcome"] = r["outcome"].clone();
                    item["nonce"] = r["nonce"].clone();
                    item["searched"] = r["searched"].clone();
                }
                None => {
                    if let Ok(st) = self.status(job).await {
                        item["searched"] = st["searched"].clone();
                    }
                }
            }
            out.push(item);
        }
        Ok(Value::Array(out))
    }

    pub(super) async fn workers(&self, caller: &Caller, only: Option<JobId>) -> Result<Value, RpcError> {
        let mut out = Vec::new();
        let visible: Vec<JobId> = self
            .jobs()
            .iter()
            .filter(|(id, e)| {
                e.result.is_none() && caller.may_see(e.owner.as_deref()) && only.is_none_or(|o| o == **id)
            })
            .map(|(&id, _)| id)
            .collect();
        for job in visible {
            let Ok(sup) = self.supervisor(job).await else { continue };
            let Ok(list) = sup.send(GetWorkers).await else { continue };
            for w in list {
                out.push(json!({
                    "job_id": job.to_string(),
                    "worker": w.worker.to_string(),
                    "health": w.health,
                    "rate": w.rate.round(),
                    "shards": w.shards,
                    "silent_s": (w.silent_for.as_secs_f64() * 1000.0).round() / 1000.0,
                }));
            }
        }
        Ok(Value::Array(out))
    }

    pub(super) fn info(&self, socket: &str) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "transport": self.config.transport,
            "launcher": self.config.launcher,
            "socket": socket,
            "journal": self.journal.path().display().to_string(),
            "jobs_running": self.running().len(),
            "jobs_known": self.jobs().len(),
            "quotas": {
                "max_workers_per_job": self.config.quotas.max_workers_per_job,
                "max_concurrent_jobs": self.config.quotas.max_concurrent_jobs,
                "max_fleet": self.config.quotas.max_fleet,
                "max_vcpu_seconds_per_job": self.config.quotas.max_vcpu_seconds_per_job,
            },
            // Since start, all jobs: events routed, ghosts dropped, poison moved to the DLQ.
            "aws": self.aws.as_ref().map(|a| {
                let st = a.stats();
                json!({
                    "prefix": a.settings.prefix,
                    "events_queue": a.fabric.events_url,
                    "control_topic": a.fabric.topic_arn,
                    "events": st.delivered,
                    "ghosts": st.ghosts,
                    "undecodable": st.undecodable,
                    "sqs_requests": a.clients.calls.sqs(),
                })
            }),
        })
    }
}
