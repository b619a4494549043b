//! The daemon's JSON-RPC methods, over the `Coordinator` actor: the state every connection
//! shares (jobs known, the journal, the start-up history) and how jobs are launched, watched
//! and resumed. Admission (validation, quotas) is in [`admission`], what callers read in
//! [`views`], the method-name table in [`table`].

mod admission;
mod retention;
mod table;
mod timeline;
mod views;

pub use table::Bound;

use super::config::DaemonConfig;
use super::journal::{Journal, Record, Remembered};
use super::journal_writer::JournalWriter;
use super::rpc::{RpcError, JOB_NOT_FOUND, UNAVAILABLE};
use super::users::Caller;
use actix::Addr;
use coordinator::actors::{follow, Coordinator, FindJob, Followed, StartJob, Update};
use coordinator::actors::{CancelById, GetTransportCounters, JobSupervisor};
use coordinator::request::report::SearchReport;
use coordinator::request::startup;
use coordinator::request::JobSpec;
use coordinator::request::SearchRequest;
use nonce_core::startup::StartupBook;
use protocol::JobId;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running job's timeline gets a point at most this often.
const TIMELINE_EVERY: Duration = Duration::from_secs(1);

/// A job the daemon knows: its request, its spec, and its result once finished.
#[derive(Debug, Clone)]
struct JobEntry {
    request: SearchRequest,
    spec: JobSpec,
    result: Option<nonce_api::Report>,
    /// Who started it (`None`: journaled before jobs had owners; only admins see those).
    owner: Option<String>,
    /// Unix seconds: when it started (in this life or an earlier one) and ended.
    started_at: u64,
    finished_at: Option<u64>,
}

impl JobEntry {
    /// vCPUs x seconds ([`JobSpec::vcpus`]) this job has used in all: its run time once
    /// finished, else since it started.
    fn vcpu_seconds(&self, now: u64) -> f64 {
        let vcpus = self.spec.vcpus();
        let seconds = match &self.result {
            Some(r) => r.elapsed_s,
            None => now.saturating_sub(self.started_at) as f64,
        };
        seconds * vcpus
    }

    /// vCPUs x seconds this job used on UTC day `day` (whole days since 1970): a
    /// finished job counts on the day it ended, a running one from the day's start.
    fn vcpu_seconds_on(&self, day: u64, now: u64) -> f64 {
        let vcpus = self.spec.vcpus();
        match (&self.result, self.finished_at) {
            (Some(_), Some(end)) if end / 86_400 == day => self.vcpu_seconds(now),
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
    /// Replaced whole on SIGHUP (its reloadable parts: users, quotas, `keep_finished`).
    config: std::sync::RwLock<Arc<DaemonConfig>>,
    journal: JournalWriter,
    jobs: Mutex<BTreeMap<JobId, JobEntry>>,
    start_lock: tokio::sync::Mutex<()>,
    started: Instant,
    /// The aws transport, when configured: its counters are part of `daemon.info`.
    aws: Option<coordinator::transport::aws::AwsContext>,
    /// Start-up histories per launcher, learned from finished jobs and kept in the state
    /// directory (`startup.json`) across restarts; `search.start` plans `confidence` with them.
    startups: Mutex<StartupBook>,
    startups_path: PathBuf,
    /// The state directory (the journal's): the calibrated hash rate is kept there too
    /// (`calibration.json`), so a daemon needs no home directory.
    state_dir: PathBuf,
    /// Each job's progress and supervision events over time (the dashboard's chart and
    /// timeline), since this daemon started.
    timelines: Mutex<timeline::Timelines>,
    /// RPC calls and journal writes as they happen; the rest is read at scrape time.
    metrics: Arc<crate::metrics::Metrics>,
    /// Finished jobs in the order they will be forgotten, and what forgotten ones left.
    forgotten: Mutex<retention::Forgotten>,
    /// One hashing thread's rate on this host, for the planner: the saved figure (or the
    /// default) until [`DaemonMethods::calibrate`] has measured it, at start, off the
    /// request path.
    rate: Mutex<(nonce_kernel::Backend, f64)>,
    /// Set as the daemon exits: job actors then end with the process, which is no death to
    /// follow (their jobs stay in the journal to resume).
    exiting: std::sync::atomic::AtomicBool,
}

impl DaemonMethods {
    pub fn new(
        coordinator: Addr<Coordinator>,
        config: DaemonConfig,
        mut journal: Journal,
        aws: Option<coordinator::transport::aws::AwsContext>,
        kernel: nonce_kernel::Backend,
    ) -> std::io::Result<Arc<Self>> {
        // The history lives beside the journal, in the state directory.
        let startups_path = journal.path().with_file_name(startup::FILE);
        let state_dir = journal.path().parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let book = startup::load(&startups_path);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        journal.observe_latency(metrics.journal_write());
        let forgotten = retention::Forgotten {
            usage: journal.forgotten_usage().clone(),
            ..retention::Forgotten::default()
        };
        tracing::info!(path = %startups_path.display(),
            samples = book.launchers.values().map(|h| h.len()).sum::<usize>(), "start-up history loaded");
        let backend = kernel;
        let rate = coordinator::request::calibration::saved_rate(&state_dir, backend)
            .unwrap_or(coordinator::request::calibration::DEFAULT_PER_THREAD);
        let journal = JournalWriter::start(journal)?;
        Ok(Arc::new(DaemonMethods {
            exiting: Default::default(),
            rate: Mutex::new((backend, rate)),
            startups: Mutex::new(book),
            startups_path,
            state_dir,
            coordinator,
            config: std::sync::RwLock::new(Arc::new(config)),
            journal,
            jobs: Mutex::new(BTreeMap::new()),
            start_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            aws,
            timelines: Mutex::new(timeline::Timelines::default()),
            metrics,
            forgotten: Mutex::new(forgotten),
        }))
    }

    /// Time since the daemon started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The configuration as it stands (a SIGHUP may replace it).
    pub fn config(&self) -> Arc<DaemonConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `config` in place (SIGHUP: the caller has kept what needs a restart as it was).
    pub fn replace_config(&self, config: DaemonConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, JobEntry>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timelines(&self) -> std::sync::MutexGuard<'_, timeline::Timelines> {
        self.timelines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forgotten(&self) -> std::sync::MutexGuard<'_, retention::Forgotten> {
        self.forgotten.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn startups(&self) -> std::sync::MutexGuard<'_, StartupBook> {
        self.startups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates a request into a spec, planning `confidence` with the daemon's history.
    fn spec_of(&self, request: &SearchRequest) -> Result<JobSpec, coordinator::request::UsageError> {
        let book = self.startups().clone();
        let rate = *self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let config = self.config();
        request.spec_with(coordinator::request::Knowledge {
            startups: Some(&book),
            rate: Some(rate),
            quotas: self.aws.as_ref().map(|a| a.settings.launch.quotas),
            backend: Some(rate.0),
            worker_binary: config.worker_binary.as_deref(),
            saved_in: Some(&self.state_dir),
        })
    }

    /// Measures this host's hash rate (0.3 s of hashing, on a blocking thread) unless a figure
    /// for this binary is saved: called once at start, so no `search.start` waits for it.
    pub async fn calibrate(self: &Arc<Self>) {
        let backend = self.rate.lock().unwrap_or_else(|e| e.into_inner()).0;
        if coordinator::request::calibration::saved_rate(&self.state_dir, backend).is_some() {
            return;
        }
        let dir = self.state_dir.clone();
        match tokio::task::spawn_blocking(move || {
            coordinator::request::calibration::per_thread_rate(&dir, backend)
        })
        .await
        {
            Ok(rate) => {
                tracing::info!(backend = backend.name(), rate, "calibrated the hash rate");
                *self.rate.lock().unwrap_or_else(|e| e.into_inner()) = (backend, rate);
            }
            Err(e) => tracing::warn!(error = %e, "calibration failed: planning with the default rate"),
        }
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
        // Finished ones join the kept in the order they finished (the oldest go first).
        let mut finished: Vec<(u64, JobId)> = remembered
            .iter()
            .filter(|r| r.result.is_some())
            .map(|r| (r.finished_at.unwrap_or(0), r.job))
            .collect();
        finished.sort();
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
                    // Without its secret (a journal from before sealing) the job runs anew
                    // under a new one: its old workers cannot be verified, so they are not adopted.
                    spec.secret =
                        r.secret.as_deref().and_then(|h| protocol::auth::JobSecret::from_hex(h).ok());
                    let started = r.started_at.unwrap_or_else(unix_now);
                    if let Err(e) = self.launch(r.request, spec, Some(r.job), r.owner, started).await {
                        tracing::error!(job = %r.job, error = %e, "could not resume a job");
                    }
                }
            }
        }
        for (_, job) in finished {
            if self.jobs().contains_key(&job) {
                self.keep_finished(job);
            }
        }
    }

    /// How `job` ended, if it has (and is still remembered).
    fn outcome_of(&self, job: JobId) -> Option<nonce_api::Outcome> {
        let jobs = self.jobs();
        Some(jobs.get(&job)?.result.as_ref()?.outcome)
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

    /// The daemon is exiting: its job actors end with it, and are not followed.
    pub fn exiting(&self) {
        self.exiting.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Resolves once every record queued to the journal so far is written.
    pub async fn flush_journal(&self) {
        self.journal.flush().await;
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

    /// Starts the job, journals it, and watches for its end to journal the result.
    async fn launch(
        self: &Arc<Self>,
        request: SearchRequest,
        mut spec: JobSpec,
        id: Option<JobId>,
        owner: Option<String>,
        started_at: u64,
    ) -> Result<JobId, RpcError> {
        // Drawn here, not in the coordinator, so the journal can keep it.
        let secret = spec.secret();
        spec.secret = Some(secret.clone());
        let (job, sup) = self
            .coordinator
            .send(StartJob(spec.clone(), id))
            .await
            .map_err(|e| RpcError::new(UNAVAILABLE, format!("coordinator unavailable: {e}")))?
            .map_err(|e| RpcError::new(UNAVAILABLE, e.to_string()))?;
        if id.is_none() {
            self.journal
                .append(Record::Start {
                    job: job.to_string(),
                    request: Box::new(request.clone()),
                    owner: owner.clone(),
                    at: Some(started_at),
                    secret: Some(secret.to_hex()),
                })
                .await
                .map_err(|e| RpcError::new(UNAVAILABLE, e.to_string()))?;
        }
        let entry =
            JobEntry { request, spec: spec.clone(), result: None, owner, started_at, finished_at: None };
        self.jobs().insert(job, entry);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            // Journal what the job hands out to keep, as it does (at most every second, a
            // golden nonce at once), and its progress for the timeline; then the result.
            // Across its lives: an actor that died is followed to the one started again.
            let since = Instant::now();
            let mut last_point: Option<Instant> = None;
            let on_update = |update: Update<'_>| match update {
                // Not waited for: the next snapshot replaces it anyway.
                Update::Kept(snapshot) => {
                    me.journal.submit(Record::Progress { job: job.to_string(), snapshot: snapshot.clone() })
                }
                Update::Status(now) => {
                    if last_point.is_none_or(|at: Instant| at.elapsed() >= TIMELINE_EVERY) {
                        last_point = Some(Instant::now());
                        me.timelines().entry(job).record(since.elapsed().as_secs_f64(), &now.stats);
                    }
                }
            };
            // A death while the daemon exits is not the job's: the journal keeps it to resume;
            // so is a registry gone (the daemon is ending).
            let keep_following = || !me.exiting.load(std::sync::atomic::Ordering::SeqCst);
            let Ok(Followed { outcome, last_life: sup }) =
                follow(&me.coordinator, job, sup, on_update, keep_following).await
            else {
                return;
            };
            {
                let mut timelines = me.timelines();
                timelines.entry(job).record(since.elapsed().as_secs_f64(), &outcome.stats);
                timelines.finished(job);
            }
            me.learn_startups(spec.startup_key(), &outcome.startups, &outcome.unstarted);
            let mut result = SearchReport {
                job,
                puzzle: &spec.puzzle,
                mode: spec.mode,
                workers: spec.workers,
                outcome: &outcome,
            }
            .report();
            if let Ok(Some(c)) = sup.send(GetTransportCounters).await {
                result.transport = Some(c.counts());
            }
            let ended = unix_now();
            if let Err(e) = me
                .journal
                .append(Record::Finish {
                    job: job.to_string(),
                    result: Box::new(result.clone()),
                    at: Some(ended),
                })
                .await
            {
                tracing::error!(%job, error = %e, "could not journal a result");
            }
            if let Some(entry) = me.jobs().get_mut(&job) {
                entry.result = Some(result);
                entry.finished_at = Some(ended);
            }
            me.keep_finished(job);
        });
        Ok(job)
    }

    /// Cancels every running job (shutdown with `on_shutdown = "cancel"`) and waits for the
    /// results to be journaled, up to `grace`.
    pub async fn cancel_all(&self, grace: Duration) {
        for job in self.running() {
            let _ = self.coordinator.send(CancelById(job)).await;
        }
        let until = Instant::now() + grace;
        while !self.running().is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
