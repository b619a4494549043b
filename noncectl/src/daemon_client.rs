//! `noncectl status|jobs|cancel|workers|wait`: talk to `nonced`. People get tables and short
//! lines; `--json` gives the daemon's reply as it is (the `nonce_api` types).

use super::table::{self, Align, Table};
use super::{exit, GlobalArgs, UsageError};
use crate::client::{CallError, Daemon, DaemonClient};
use clap::Subcommand;
use coordinator::actors::system;
use coordinator::request::report;
use nonce_api::codes::{FORBIDDEN, INVALID_PARAMS, INVALID_REQUEST, JOB_NOT_FOUND, QUOTA_EXCEEDED};
use nonce_api::{Cancelling, DaemonInfo, JobState, JobStatus, JobSummary, Progress, WorkerView};
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// A job's progress (or result), or the daemon's own state with no job.
    Status { job_id: Option<String> },
    /// Every job the daemon knows (yours; an admin sees everyone's).
    Jobs,
    /// Cancel a job.
    Cancel { job_id: String },
    /// Workers of running jobs (or of one).
    Workers { job_id: Option<String> },
    /// Wait for a job to end and print its result (exit code as for search).
    Wait {
        job_id: String,
        /// Give up waiting after this long (a duration: 90, 30s, 1h; at most 1h; 0: do not
        /// wait). Exit 1 if still running.
        #[arg(long, value_name = "DUR", default_value = "1h")]
        timeout: String,
    },
}

/// Why a daemon command failed, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Local(String),
}

impl From<String> for CommandError {
    fn from(s: String) -> Self {
        CommandError::Local(s)
    }
}

impl CommandError {
    /// One readable line and the documented exit code.
    pub fn explain(&self) -> (String, u8) {
        match self {
            CommandError::Local(s) => (s.clone(), exit::FAILURE),
            CommandError::Call(CallError::Unreachable(s)) => {
                (format!("daemon connection: {s}"), exit::UNREACHABLE)
            }
            CommandError::Call(CallError::Refused { message, .. }) => (message.clone(), exit::FORBIDDEN),
            CommandError::Call(CallError::Rpc(e)) => {
                let data = e.data.as_ref().unwrap_or(&Value::Null);
                match e.code {
                    JOB_NOT_FOUND => (e.message.clone(), exit::NOT_FOUND),
                    FORBIDDEN => (format!("forbidden: {}", e.message), exit::FORBIDDEN),
                    QUOTA_EXCEEDED => {
                        let line = match serde_json::from_value::<nonce_api::QuotaRefusal>(data.clone()) {
                            Ok(q) => format!(
                                "refused by the quota {}: {} asked for, {} allowed",
                                q.quota, q.requested, q.limit
                            ),
                            Err(_) => format!("refused: {}", e.message),
                        };
                        (line, exit::QUOTA)
                    }
                    INVALID_PARAMS | INVALID_REQUEST => {
                        let why = e.reason().unwrap_or(&e.message);
                        (format!("the daemon refused the request: {why}"), exit::USAGE)
                    }
                    _ => (format!("daemon: {}", e.message), exit::FAILURE),
                }
            }
        }
    }
}

/// What a command printed and how it exits.
struct Done {
    text: String,
    json: Value,
    code: u8,
}

pub fn run(cmd: DaemonCommand, global: &GlobalArgs) -> Result<u8, UsageError> {
    let target = global.connection.target()?.ok_or_else(|| {
        UsageError(
            "this command talks to nonced: give --socket PATH (or NONCE_SOCKET), or --endpoint URL with a token"
                .into(),
        )
    })?;
    // Checked here (exit 2) before any connection: a job id is 16 hex digits.
    let job = match &cmd {
        DaemonCommand::Status { job_id: Some(j) }
        | DaemonCommand::Workers { job_id: Some(j) }
        | DaemonCommand::Cancel { job_id: j }
        | DaemonCommand::Wait { job_id: j, .. } => Some(j.parse::<protocol::JobId>().map_err(|_| {
            UsageError(format!("job id {j:?}: expected 16 hex digits (as `noncectl jobs` lists them)"))
        })?),
        _ => None,
    };
    let job = job.map(|j| j.to_string());
    let timeout = match &cmd {
        DaemonCommand::Wait { timeout, .. } => {
            let t = coordinator::request::parse_duration_flag_or_zero("timeout", timeout)?;
            if t > std::time::Duration::from_secs(3600) {
                return Err(UsageError(format!("--timeout: at most an hour, not {timeout:?}")));
            }
            t.as_secs_f64()
        }
        _ => 0.0,
    };
    let result = system().block_on(async move {
        let mut c = DaemonClient::connect(&target).await?;
        let done = match cmd {
            DaemonCommand::Status { job_id: None } => {
                let info: DaemonInfo = c.info().await?;
                Done { text: info_text(&info), json: to_json(&info), code: exit::FOUND }
            }
            DaemonCommand::Status { .. } => {
                let st: JobStatus = c.status(job.as_deref().unwrap_or_default()).await?;
                // It answered: done, whatever the job's outcome (`wait` is the one that tells).
                Done { text: status_text(&st), json: status_json(&st), code: exit::FOUND }
            }
            DaemonCommand::Jobs => {
                let jobs: Vec<JobSummary> = c.list().await?;
                Done { text: jobs_table(&jobs), json: to_json(&jobs), code: exit::FOUND }
            }
            DaemonCommand::Cancel { .. } => {
                let r: Cancelling = c.cancel(job.as_deref().unwrap_or_default()).await?;
                let text = match r.outcome {
                    Some(o) if !r.cancelling => format!("{} had already ended: {}", r.job_id, o.name()),
                    _ => format!("cancelling {}", r.job_id),
                };
                Done { text, json: to_json(&r), code: exit::FOUND }
            }
            DaemonCommand::Workers { .. } => {
                let ws: Vec<WorkerView> = c.workers(job.as_deref()).await?;
                Done { text: workers_table(&ws), json: to_json(&ws), code: exit::FOUND }
            }
            DaemonCommand::Wait { .. } => {
                let st: JobStatus = c.wait(job.as_deref().unwrap_or_default(), timeout).await?;
                Done { text: status_text(&st), json: status_json(&st), code: outcome_code(&st) }
            }
        };
        Ok::<Done, CommandError>(done)
    });
    match result {
        Ok(done) => {
            if global.json {
                coordinator::outln!("{}", done.json);
            } else {
                coordinator::outln!("{}", done.text);
            }
            Ok(done.code)
        }
        Err(e) => {
            let (line, code) = e.explain();
            eprintln!("error: {line}");
            Ok(code)
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `--json` of a finished job is its report, as `search --json` prints it.
fn status_json(st: &JobStatus) -> Value {
    match st {
        JobStatus::Finished(f) => to_json(&f.result),
        JobStatus::Running(p) => to_json(p),
    }
}

/// The exit code of a search's end, as `search` gives it; 1 while it runs.
pub fn outcome_code(st: &JobStatus) -> u8 {
    match st {
        JobStatus::Running(_) => exit::NONE,
        JobStatus::Finished(_) => st.outcome().map_or(exit::FAILURE, exit::of_outcome),
    }
}

fn status_text(st: &JobStatus) -> String {
    match st {
        JobStatus::Finished(f) => report::report_text(&f.result),
        JobStatus::Running(p) => progress_text(p),
    }
}

fn progress_text(p: &Progress) -> String {
    let v = &p.verification;
    let mut s = format!(
        "{}: running, {} of {} nonces ({})\n",
        p.job_id,
        p.searched,
        p.total,
        table::percent(p.searched, p.total)
    );
    s += &format!(
        "  rate           {} on {} live\n",
        report::human_rate(p.rate),
        report::workers_text(p.workers as u64, None)
    );
    s += &format!("  stalls         {} ({} reshards)\n", p.stalls, p.reshards);
    if let Some(n) = p.lowest_so_far {
        s += &format!("  lowest so far  {n}\n");
    }
    s += &format!(
        "  verification   {} shares verified ({} expected), {} spot checks, {} suspects",
        v.shares_verified,
        v.shares_expected,
        v.spot_checks,
        v.suspects.len()
    );
    if p.forged > 0 {
        s += &format!("\n  forged         {} messages refused", p.forged);
    }
    s
}

fn jobs_table(jobs: &[JobSummary]) -> String {
    if jobs.is_empty() {
        return "no jobs".into();
    }
    let mut t = Table::new(&[
        ("JOB", Align::Left),
        ("OWNER", Align::Left),
        ("STATE", Align::Left),
        ("MODE", Align::Left),
        ("WORKERS", Align::Right),
        ("DONE", Align::Right),
        ("SEARCHED", Align::Right),
        ("RATE", Align::Right),
        ("ELAPSED", Align::Right),
        ("NONCE", Align::Right),
        ("PUZZLE", Align::Left),
    ]);
    for j in jobs {
        let state = match (j.state, j.outcome) {
            (JobState::Finished, Some(o)) => o.name().to_string(),
            (JobState::Finished, None) => "finished".into(),
            (JobState::Running, _) => "running".into(),
        };
        let workers = match j.workers_live {
            Some(live) => format!("{live}/{}", j.workers),
            None => j.workers.to_string(),
        };
        t.row(vec![
            j.job_id.clone(),
            j.owner.clone().unwrap_or_else(|| "-".into()),
            state,
            j.mode.clone(),
            workers,
            table::percent(j.searched, j.total),
            table::count(j.searched),
            report::human_rate(j.rate),
            table::duration(j.elapsed_s),
            j.nonce.map_or_else(|| "-".into(), |n| n.to_string()),
            j.puzzle.clone(),
        ]);
    }
    t.render()
}

fn workers_table(workers: &[WorkerView]) -> String {
    if workers.is_empty() {
        return "no workers (only running jobs have them)".into();
    }
    let mut t = Table::new(&[
        ("JOB", Align::Left),
        ("WORKER", Align::Left),
        ("HEALTH", Align::Left),
        ("RATE", Align::Right),
        ("SHARDS", Align::Right),
        ("SILENT", Align::Right),
    ]);
    for w in workers {
        t.row(vec![
            w.job_id.clone(),
            w.worker.clone(),
            w.health.name().into(),
            report::human_rate(w.rate),
            w.shards.to_string(),
            table::duration(w.silent_s),
        ]);
    }
    t.render()
}

fn info_text(i: &DaemonInfo) -> String {
    let q = &i.quotas;
    let mut s = format!("nonced {}, pid {}, up {}\n", i.version, i.pid, table::duration(i.uptime_s as f64));
    s += &format!("  socket     {}\n", i.socket);
    s += &format!("  journal    {}\n", i.journal);
    match &i.http_listen {
        Some(l) => {
            s += &format!(
                "  http       {l} ({})\n",
                if i.http_tls { "TLS" } else { "plain: TLS ends in front" }
            )
        }
        None => s += "  http       off (no [http] listen)\n",
    }
    s += &format!("  users      {} configured\n", i.users);
    s += &format!("  jobs       {} running, {} known\n", i.jobs_running, i.jobs_known);
    s += &format!("  defaults   transport {}, launcher {}\n", i.transport, i.launcher);
    s += &format!(
        "  quotas     {} workers a job, {} jobs at once, {} workers in all, {} vCPU-seconds a job",
        q.max_workers_per_job, q.max_concurrent_jobs, q.max_fleet, q.max_vcpu_seconds_per_job
    );
    if let Some(a) = &i.aws {
        s += &format!(
            "\n  aws        prefix {}: {} events, {} ghosts, {} undecodable, {} SQS requests",
            a.prefix, a.events, a.ghosts, a.undecodable, a.sqs_requests
        );
    }
    s
}
