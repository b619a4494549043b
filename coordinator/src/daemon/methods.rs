//! The daemon's JSON-RPC methods, over the `Coordinator` actor. Quotas are checked here,
//! under one lock, so concurrent `search.start` calls cannot overshoot them together.

use super::config::DaemonConfig;
use super::journal::{Journal, Record, Remembered};
use super::rpc::{
    params, Methods, RpcError, FORBIDDEN, JOB_NOT_FOUND, METHOD_NOT_FOUND, QUOTA_EXCEEDED, UNAVAILABLE,
};
use super::users::Caller;
use crate::actors::{
    CancelJob, GetSnapshot, GetStatus, GetTransportCounters, GetWorkers, JobSupervisor, WaitJob,
};
use crate::actors::{Coordinator, FindJob, StartJob};
use crate::request::report::SearchReport;
use crate::request::startup;
use crate::request::JobSpec;
use crate::request::SearchRequest;
use actix::Addr;
use nonce_core::job::Status;
use nonce_core::startup::StartupBook;
use protocol::JobId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a running job's progress is journaled: with the 9 s heartbeat over SQS, the
/// journal is then at most ~10 s behind the workers.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A job the daemon knows: its request, its spec, and its result once finished.
#[derive(Debug, Clone)]
struct JobEntry {
    request: SearchRequest,
    spec: JobSpec,
    result: Option<Value>,
    /// Who started it (`None`: journaled before jobs had owners; only admins see those).
    owner: Option<String>,
    /// Unix seconds: when it started (in this life or an earlier one) and ended.
    started_at: u64,
    finished_at: Option<u64>,
}

impl JobEntry {
    /// Worker threads x seconds this job used on UTC day `day` (whole days since 1970): a
    /// finished job counts on the day it ended, a running one from the day's start.
    fn vcpu_seconds_on(&self, day: u64, now: u64) -> f64 {
        let vcpus = (self.spec.workers * self.spec.threads_per_worker) as f64;
        match (&self.result, self.finished_at) {
            (Some(r), Some(end)) if end / 86_400 == day => r["elapsed_s"].as_f64().unwrap_or(0.0) * vcpus,
            (Some(_), _) => 0.0,
            (None, _) => now.saturating_sub(self.started_at.max(day * 86_400)) as f64 * vcpus,
        }
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Shared state behind every connection.
#[derive(Debug)]
pub struct DaemonMethods {
    coordinator: Addr<Coordinator>,
    config: DaemonConfig,
    journal: Journal,
    jobs: Mutex<BTreeMap<JobId, JobEntry>>,
    start_lock: tokio::sync::Mutex<()>,
    started: Instant,
    /// The aws transport, when configured: its counters are part of `daemon.info`.
    aws: Option<crate::transport::aws::AwsContext>,
    /// Start-up histories per launcher, learned from finished jobs and kept in the state
    /// directory (`startup.json`) across restarts; `search.start` plans `confidence` with them.
    startups: Mutex<StartupBook>,
    startups_path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobParam {
    job_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParam {
    job_id: String,
    #[serde(default)]
    timeout_s: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkersParam {
    #[serde(default)]
    job_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoParams {}

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
    pub fn new(
        coordinator: Addr<Coordinator>,
        config: DaemonConfig,
        journal: Journal,
        aws: Option<crate::transport::aws::AwsContext>,
    ) -> Arc<Self> {
        // The history lives beside the journal, in the state directory.
        let startups_path = journal.path().with_file_name(startup::FILE);
        let book = startup::load(&startups_path);
        tracing::info!(path = %startups_path.display(),
            samples = book.launchers.values().map(|h| h.len()).sum::<usize>(), "start-up history loaded");
        Arc::new(DaemonMethods {
            startups: Mutex::new(book),
            startups_path,
            coordinator,
            config,
            journal,
            jobs: Mutex::new(BTreeMap::new()),
            start_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            aws,
        })
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, JobEntry>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn startups(&self) -> std::sync::MutexGuard<'_, StartupBook> {
        self.startups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates a request into a spec, planning `confidence` with the daemon's history.
    fn spec_of(&self, request: &SearchRequest) -> Result<JobSpec, crate::request::UsageError> {
        let book = self.startups().clone();
        request.spec_with(Some(&book))
    }

    /// Adds a finished job's start-ups to the history and saves it.
    fn learn_startups(&self, launcher: &str, startups: &[Duration], unstarted: &[Duration]) {
        if startups.is_empty() && unstarted.is_empty() {
            return;
        }
        let book = {
            let mut book = self.startups();
            book.record(launcher, startups, unstarted);
            book.clone()
        };
        if let Err(e) = startup::save(&self.startups_path, &book) {
            tracing::error!(error = %e, "could not save the start-up history");
        }
    }

    /// Replays the journal: keeps finished results, resumes the rest (from the start of their
    /// range: their workers died with the previous process).
    pub async fn restore(self: &Arc<Self>, remembered: Vec<Remembered>) {
        for r in remembered {
            let Ok(spec) = self.spec_of(&r.request) else { continue };
            match r.result {
                Some(result) => {
                    let entry = JobEntry {
                        request: r.request,
                        spec,
                        result: Some(result),
                        owner: r.owner,
                        started_at: r.started_at.unwrap_or(0),
                        finished_at: r.finished_at,
                    };
                    self.jobs().insert(r.job, entry);
                }
                None => {
                    let mut spec = spec;
                    let done: u128 = r.progress.as_ref().map_or(0, |p| p.done.iter().map(|d| d.len()).sum());
                    tracing::info!(job = %r.job, searched = %done, "resuming a job from the journal");
                    spec.resume = r.progress;
                    let started = r.started_at.unwrap_or_else(unix_now);
                    if let Err(e) = self.launch(r.request, spec, Some(r.job), r.owner, started).await {
                        tracing::error!(job = %r.job, error = %e, "could not resume a job");
                    }
                }
            }
        }
    }

    /// Ids of jobs still running.
    pub fn running(&self) -> Vec<JobId> {
        self.jobs().iter().filter(|(_, e)| e.result.is_none()).map(|(&id, _)| id).collect()
    }

    async fn supervisor(&self, job: JobId) -> Result<Addr<JobSupervisor>, RpcError> {
        self.coordinator
            .send(FindJob(job))
            .await
            .map_err(|e| RpcError::new(UNAVAILABLE, format!("coordinator unavailable: {e}")))?
            .ok_or_else(|| RpcError::new(JOB_NOT_FOUND, format!("no running job {job}")))
    }

    /// The job `text` names, if `caller` may reach it. Another user's job is "not found",
    /// exactly like a job that does not exist: nobody learns which ids are in use.
    fn parse_job(&self, caller: &Caller, text: &str) -> Result<JobId, RpcError> {
        let id: JobId = text.parse().map_err(RpcError::invalid_params)?;
        let visible = self.jobs().get(&id).is_some_and(|e| caller.may_see(e.owner.as_deref()));
        if visible {
            Ok(id)
        } else {
            Err(RpcError::new(JOB_NOT_FOUND, format!("no job {id}")).with_data(json!({ "job_id": text })))
        }
    }

    fn quota_error(quota: &str, limit: f64, requested: f64) -> RpcError {
        RpcError::new(QUOTA_EXCEEDED, format!("quota exceeded: {quota}"))
            .with_data(json!({ "quota": quota, "limit": limit, "requested": requested }))
    }

    /// A user's own limits (admins have only the daemon's): workers per job, jobs at once,
    /// and vCPU-seconds per UTC day, spent by their jobs so far today; the job's deadline is
    /// cut to what is left. Called under the start lock, so two starts cannot overspend.
    fn check_user_quotas(&self, caller: &Caller, spec: &mut JobSpec) -> Result<(), RpcError> {
        let uq = self.config.quotas_for(&caller.name);
        let named = |quota: &str| format!("user {}: {quota}", caller.name);
        if spec.workers > uq.max_workers_per_job {
            return Err(Self::quota_error(
                &named("max_workers_per_job"),
                uq.max_workers_per_job as f64,
                spec.workers as f64,
            ));
        }
        let (now, mine) = (unix_now(), caller.name.as_str());
        let (running, used) = {
            let jobs = self.jobs();
            let own: Vec<&JobEntry> = jobs.values().filter(|e| e.owner.as_deref() == Some(mine)).collect();
            let running = own.iter().filter(|e| e.result.is_none()).count();
            (running, own.iter().map(|e| e.vcpu_seconds_on(now / 86_400, now)).sum::<f64>())
        };
        if running >= uq.max_concurrent_jobs {
            return Err(Self::quota_error(
                &named("max_concurrent_jobs"),
                uq.max_concurrent_jobs as f64,
                running as f64 + 1.0,
            ));
        }
        let vcpus = (spec.workers * spec.threads_per_worker) as f64;
        let left = uq.max_vcpu_seconds_per_day - used;
        if left < 1.0 {
            return Err(Self::quota_error(
                &named("max_vcpu_seconds_per_day"),
                uq.max_vcpu_seconds_per_day,
                used + vcpus,
            )
            .with_data(json!({
                "quota": named("max_vcpu_seconds_per_day"),
                "limit": uq.max_vcpu_seconds_per_day,
                "used_today": used,
                "requested": vcpus,
            })));
        }
        let allowed = Duration::from_secs_f64(left / vcpus);
        spec.deadline = Some(spec.deadline.map_or(allowed, |d| d.min(allowed)));
        Ok(())
    }

    async fn start(self: &Arc<Self>, caller: &Caller, mut request: SearchRequest) -> Result<Value, RpcError> {
        if request.has_aws_settings() {
            return Err(RpcError::invalid_params(
                "aws and ecs settings come from the daemon's config file ([aws], [ecs]), not from requests",
            ));
        }
        // What the request leaves open, the daemon's config decides (and the journal records).
        request.transport.get_or_insert_with(|| self.config.transport.clone());
        request.launcher.get_or_insert_with(|| self.config.launcher.clone());
        let mut spec = self.spec_of(&request).map_err(|e| RpcError::invalid_params(e.0))?;
        let q = &self.config.quotas;
        if spec.workers > q.max_workers_per_job {
            return Err(Self::quota_error(
                "max_workers_per_job",
                q.max_workers_per_job as f64,
                spec.workers as f64,
            ));
        }
        let vcpus = (spec.workers * spec.threads_per_worker) as f64;
        let budget = Duration::from_secs_f64(q.max_vcpu_seconds_per_job / vcpus);
        match spec.deadline {
            Some(d) if d.as_secs_f64() * vcpus > q.max_vcpu_seconds_per_job => {
                return Err(Self::quota_error(
                    "max_vcpu_seconds_per_job",
                    q.max_vcpu_seconds_per_job,
                    d.as_secs_f64() * vcpus,
                ));
            }
            Some(_) => {}
            None => spec.deadline = Some(budget),
        }
        let _guard = self.start_lock.lock().await;
        let (running, fleet) = {
            let jobs = self.jobs();
            let running: Vec<_> = jobs.values().filter(|e| e.result.is_none()).collect();
            (running.len(), running.iter().map(|e| e.spec.workers).sum::<usize>())
        };
        if running >= q.max_concurrent_jobs {
            return Err(Self::quota_error(
                "max_concurrent_jobs",
                q.max_concurrent_jobs as f64,
                running as f64 + 1.0,
            ));
        }
        if fleet + spec.workers > q.max_fleet {
            return Err(Self::quota_error("max_fleet", q.max_fleet as f64, (fleet + spec.workers) as f64));
        }
        if !caller.is_admin() {
            self.check_user_quotas(caller, &mut spec)?;
        }
        let plan = json!({
            "workers": spec.workers,
            "threads_per_worker": spec.threads_per_worker,
            "mode": spec.mode.name(),
            "range": spec.range.to_string(),
            "deadline_s": spec.deadline.map(|d| d.as_secs_f64()),
            "backend": spec.backend.name(),
        });
        let mut plan = plan;
        if let Some(st) = &spec.startup {
            plan["startup_s"] = json!(st.seconds);
            plan["startup_source"] = json!(st.source.describe());
        }
        let job = self.launch(request, spec, None, Some(caller.name.clone()), unix_now()).await?;
        Ok(json!({ "job_id": job.to_string(), "plan": plan }))
    }

    /// Starts the job, journals it, and watches for its end to journal the result.
    async fn launch(
        self: &Arc<Self>,
        request: SearchRequest,
        spec: JobSpec,
        id: Option<JobId>,
        owner: Option<String>,
        started_at: u64,
    ) -> Result<JobId, RpcError> {
        let (job, sup) = self
            .coordinator
            .send(StartJob(spec.clone(), id))
            .await
            .map_err(|e| RpcError::new(UNAVAILABLE, format!("coordinator unavailable: {e}")))?
            .map_err(|e| RpcError::new(UNAVAILABLE, e))?;
        if id.is_none() {
            self.journal
                .append(&Record::Start {
                    job: job.to_string(),
                    request: Box::new(request.clone()),
                    owner: owner.clone(),
                    at: Some(started_at),
                })
                .map_err(|e| RpcError::new(UNAVAILABLE, e))?;
        }
        let entry =
            JobEntry { request, spec: spec.clone(), result: None, owner, started_at, finished_at: None };
        self.jobs().insert(job, entry);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            // Journal progress every couple of seconds while the job runs, so a crash costs at
            // most that much work; then the result.
            let mut last = spec.resume.clone().unwrap_or_default();
            let outcome = loop {
                match tokio::time::timeout(PROGRESS_EVERY, sup.send(WaitJob)).await {
                    Ok(Ok(Ok(outcome))) => break outcome,
                    Ok(_) => return,
                    Err(_) => {
                        let Ok(snapshot) = sup.send(GetSnapshot).await else { return };
                        if snapshot != last {
                            let record =
                                Record::Progress { job: job.to_string(), snapshot: snapshot.clone() };
                            if let Err(e) = me.journal.append(&record) {
                                tracing::error!(%job, error = %e, "could not journal progress");
                            }
                            last = snapshot;
                        }
                    }
                }
            };
            me.learn_startups(spec.launcher.name(), &outcome.startups, &outcome.unstarted);
            let mut result = SearchReport {
                job,
                puzzle: &spec.puzzle,
                mode: spec.mode,
                workers: spec.workers,
                outcome: &outcome,
            }
            .json();
            if let Ok(Some(c)) = sup.send(GetTransportCounters).await {
                result["transport"] = c.json();
            }
            let ended = unix_now();
            if let Err(e) = me.journal.append(&Record::Finish {
                job: job.to_string(),
                result: result.clone(),
                at: Some(ended),
            }) {
                tracing::error!(%job, error = %e, "could not journal a result");
            }
            if let Some(entry) = me.jobs().get_mut(&job) {
                entry.result = Some(result);
                entry.finished_at = Some(ended);
            }
        });
        Ok(job)
    }

    async fn status(&self, job: JobId) -> Result<Value, RpcError> {
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

    async fn wait(&self, job: JobId, timeout: Duration) -> Result<Value, RpcError> {
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

    async fn list(&self, caller: &Caller) -> Result<Value, RpcError> {
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

    async fn workers(&self, caller: &Caller, only: Option<JobId>) -> Result<Value, RpcError> {
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

    fn info(&self, socket: &str) -> Value {
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

    /// Cancels every running job (shutdown with `on_shutdown = "cancel"`) and waits for the
    /// results to be journaled, up to `grace`.
    pub async fn cancel_all(&self, grace: Duration) {
        for job in self.running() {
            if let Ok(sup) = self.supervisor(job).await {
                sup.do_send(CancelJob);
            }
        }
        let until = Instant::now() + grace;
        while !self.running().is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The methods bound to a socket path (for `daemon.info`).
#[derive(Debug, Clone)]
pub struct Bound {
    pub methods: Arc<DaemonMethods>,
    pub socket: String,
}

impl Methods for Bound {
    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        method: &'a str,
        p: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
        let m = &self.methods;
        Box::pin(async move {
            match method {
                "search.start" => m.start(caller, params::<SearchRequest>(p)?).await,
                "search.status" => m.status(m.parse_job(caller, &params::<JobParam>(p)?.job_id)?).await,
                "search.wait" => {
                    let w: WaitParam = params(p)?;
                    let timeout = w.timeout_s.unwrap_or(30.0);
                    if !(timeout.is_finite() && (0.0..=3600.0).contains(&timeout)) {
                        return Err(RpcError::invalid_params("timeout_s must be between 0 and 3600"));
                    }
                    m.wait(m.parse_job(caller, &w.job_id)?, Duration::from_secs_f64(timeout)).await
                }
                "search.cancel" => {
                    let job = m.parse_job(caller, &params::<JobParam>(p)?.job_id)?;
                    if let Ok(sup) = m.supervisor(job).await {
                        sup.do_send(CancelJob);
                    }
                    Ok(json!({ "job_id": job.to_string(), "cancelling": true }))
                }
                "search.list" => {
                    params::<NoParams>(p)?;
                    m.list(caller).await
                }
                "workers.list" => {
                    let w: WorkersParam = params(p)?;
                    let only = w.job_id.as_deref().map(|j| m.parse_job(caller, j)).transpose()?;
                    m.workers(caller, only).await
                }
                "daemon.info" => {
                    params::<NoParams>(p)?;
                    if !caller.is_admin() {
                        return Err(RpcError::new(FORBIDDEN, "daemon.info needs the admin role")
                            .with_data(json!({ "user": caller.name })));
                    }
                    Ok(m.info(&self.socket))
                }
                other => {
                    Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")
                        .with_data(json!({ "method": other })))
                }
            }
        })
    }
}
