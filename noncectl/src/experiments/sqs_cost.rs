//! `noncectl experiment sqs-cost`: what supervision over SQS costs and buys, with the
//! defaults. Runs a job of `nonce-worker` processes over the aws transport (an emulator or a
//! real account) for a chosen time, SIGSTOPs one worker part-way, and measures:
//!
//! - AWS requests per worker-minute by operation, from the SDK interceptor's counts: the
//!   workers' own (each appends its counts to a call log at exit) and the coordinator's,
//!   divided over the fleet; priced against the default worker task's Fargate cost;
//! - the stall-detection delay: from the SIGSTOP to the supervisor counting the stall;
//! - the staleness of progress: the age of the newest report from each live worker (the
//!   stopped one left out), sampled four times a second, as the progress bar and
//!   `search.status` see it (the daemon journals what they see every second or two).

use super::csv;
use super::plot::{chart, Labels, Series};
use actix::prelude::*;
use coordinator::actors::{wait, Coordinator, GetStatus, GetWorkers, StartJob};
use coordinator::request::{AwsSettings, SearchRequest};
use coordinator::transport::aws::AwsContext;
use nonce_core::pricing::{self, MessagingRate};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the experiment is asked to do.
#[derive(Debug, Clone)]
pub struct SqsCostPlan {
    pub workers: usize,
    /// How long the job runs (it searches a space it cannot finish, and times out).
    pub duration: Duration,
    /// When to SIGSTOP one worker (after its first heartbeat), if at all.
    pub stop_at: Option<Duration>,
    pub aws: AwsSettings,
    pub out: PathBuf,
    /// The file workers append their request counts to (`NONCE_AWS_CALL_LOG`, set by the
    /// caller before any thread starts).
    pub call_log: PathBuf,
    /// The workers' hashing backend (`NONCE_KERNEL`, or the fastest).
    pub kernel: nonce_kernel::Backend,
}

/// The figures, for printing and `--json`.
#[derive(Debug, Clone)]
pub struct SqsCostReport {
    pub workers: usize,
    pub worker_minutes: f64,
    /// Requests per worker-minute by `Service.Operation`, workers' own.
    pub worker_calls: BTreeMap<String, f64>,
    /// The coordinator's requests per worker-minute (its total over the fleet's minutes).
    pub coordinator_calls: BTreeMap<String, f64>,
    pub rate: MessagingRate,
    pub ratio: f64,
    pub stall_detected_after: Option<f64>,
    pub reshards: u64,
    pub staleness_p50: f64,
    pub staleness_max: f64,
}

impl SqsCostReport {
    pub fn json(&self) -> Value {
        json!({
            "workers": self.workers,
            "worker_minutes": self.worker_minutes,
            "worker_requests_per_worker_minute": self.worker_calls,
            "coordinator_requests_per_worker_minute": self.coordinator_calls,
            "sqs_per_worker_minute": self.rate.sqs,
            "sns_per_worker_minute": self.rate.sns,
            "usd_per_worker_minute": self.rate.usd_per_minute(),
            "fargate_usd_per_worker_minute": pricing::fargate_per_minute(pricing::DEFAULT_WORKER_VCPUS, pricing::DEFAULT_WORKER_GB),
            "cost_ratio": self.ratio,
            "budget": pricing::MESSAGING_BUDGET,
            "prices_as_of": pricing::PRICES_AS_OF,
            "stall_detected_after_s": self.stall_detected_after,
            "reshards": self.reshards,
            "staleness_p50_s": self.staleness_p50,
            "staleness_max_s": self.staleness_max,
        })
    }

    pub fn text(&self) -> String {
        let mut t = format!(
            "{} workers, {:.1} worker-minutes (prices as of {})\n",
            self.workers,
            self.worker_minutes,
            pricing::PRICES_AS_OF
        );
        t.push_str("requests per worker-minute:\n");
        for (side, calls) in [("worker", &self.worker_calls), ("coordinator", &self.coordinator_calls)] {
            for (op, n) in calls {
                t.push_str(&format!("  {side:<12} {op:<28} {n:>7.2}\n"));
            }
        }
        t.push_str(&format!(
            "SQS {:.2} + SNS {:.2} per worker-minute = ${:.3e}/min, {:.2}% of the worker's Fargate cost (budget {:.0}%)\n",
            self.rate.sqs,
            self.rate.sns,
            self.rate.usd_per_minute(),
            self.ratio * 100.0,
            pricing::MESSAGING_BUDGET * 100.0
        ));
        match self.stall_detected_after {
            Some(s) => t.push_str(&format!(
                "stall detected {s:.1} s after the SIGSTOP ({} reshards)\n",
                self.reshards
            )),
            None => t.push_str("no worker stopped, or its stall was not detected\n"),
        }
        t.push_str(&format!(
            "progress staleness: median {:.1} s, max {:.1} s\n",
            self.staleness_p50, self.staleness_max
        ));
        t
    }
}

/// Runs the experiment. See the module docs.
pub async fn sqs_cost(plan: SqsCostPlan) -> Result<SqsCostReport, String> {
    std::fs::create_dir_all(&plan.out).map_err(|e| format!("cannot create {}: {e}", plan.out.display()))?;
    let _ = std::fs::remove_file(&plan.call_log);
    let aws = AwsContext::connect(plan.aws.clone()).await.map_err(|e| e.to_string())?;
    let before = aws.clients.calls.by_operation();
    let request = SearchRequest {
        // A space the fleet cannot finish in the time: the job runs to its deadline.
        block: Some("COMSM0010cloud".into()),
        difficulty: Some(64),
        encoding: Some("be64".into()),
        mode: Some("exhaustive".into()),
        range: Some("0..0x10000000000".into()),
        workers: Some(plan.workers),
        threads: Some(1),
        max_time: Some(format!("{}s", plan.duration.as_secs_f64())),
        transport: Some(coordinator::request::TransportKind::Aws),
        launcher: Some(coordinator::request::LauncherKind::Process),
        ..SearchRequest::default()
    };
    let worker_binary = crate::worker_binary_from_env();
    let cache = crate::cache_dir_from_env();
    let known = coordinator::request::Knowledge {
        backend: Some(plan.kernel),
        worker_binary: worker_binary.as_deref(),
        saved_in: Some(&cache),
        ..Default::default()
    };
    let spec = request.spec_with(known).map_err(|e| e.to_string())?;
    let coordinator = Coordinator::with_aws(Some(aws.clone())).start();
    let (_, sup) = coordinator
        .send(StartJob(spec, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let ended = wait(&sup);
    tokio::pin!(ended);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut staleness: Vec<(f64, f64)> = Vec::new();
    let (mut stopped, mut stopped_at, mut detected): (Option<u32>, Option<Instant>, Option<f64>) =
        (None, None, None);
    let outcome = loop {
        tokio::select! {
            res = &mut ended => break res.map_err(|e| e.to_string())?,
            _ = ticker.tick() => {
                let (Ok(status), Ok(workers)) = (sup.send(GetStatus).await, sup.send(GetWorkers).await) else { continue };
                let t = started.elapsed().as_secs_f64();
                let mut live: Vec<f64> =
                    workers.iter().filter(|w| w.health == nonce_core::job::WorkerHealth::Live).map(|w| w.silent_for.as_secs_f64()).collect();
                // The stopped worker makes no progress, so its silence is not stale progress:
                // until the supervisor writes it off, leave out the longest silence (its own).
                if stopped.is_some() && detected.is_none() {
                    live.sort_by(f64::total_cmp);
                    live.pop();
                }
                // Staleness counts once the whole fleet has reported.
                if workers.len() >= plan.workers {
                    if let Some(max) = live.iter().copied().reduce(f64::max) {
                        staleness.push((t, max));
                    }
                }
                if let (Some(at), None) = (plan.stop_at, stopped) {
                    if started.elapsed() >= at && workers.len() >= plan.workers {
                        let pid = worker_pids().into_iter().next().ok_or("no nonce-worker process to stop")?;
                        signal(pid, "STOP");
                        stopped = Some(pid);
                        stopped_at = Some(Instant::now());
                    }
                }
                if let (Some(at), None, true) = (stopped_at, detected, status.stats.stalls > 0) {
                    detected = Some(at.elapsed().as_secs_f64());
                    // Let it go on: its late messages must change nothing.
                    if let Some(pid) = stopped {
                        signal(pid, "CONT");
                    }
                }
            }
        }
    };
    if let (Some(pid), None) = (stopped, detected) {
        signal(pid, "CONT");
    }
    aws.settle(Duration::from_secs(10)).await;
    let after = aws.clients.calls.by_operation();
    // Workers write their counts as they exit (the launcher stops them with the job).
    let launched = outcome.stats.launched.max(plan.workers);
    let lines = wait_for_call_log(&plan.call_log, launched, Duration::from_secs(15)).await;
    let worker_minutes: f64 = lines.iter().map(|l| l["seconds"].as_f64().unwrap_or(0.0)).sum::<f64>() / 60.0;
    if worker_minutes <= 0.0 {
        return Err(format!("no worker wrote its counts to {}", plan.call_log.display()));
    }
    let mut worker_calls: BTreeMap<String, f64> = BTreeMap::new();
    for l in &lines {
        for (op, n) in l["calls"].as_object().into_iter().flatten() {
            *worker_calls.entry(op.clone()).or_default() += n.as_f64().unwrap_or(0.0) / worker_minutes;
        }
    }
    let coordinator_calls: BTreeMap<String, f64> = after
        .iter()
        .map(|(op, n)| (op.clone(), (n - before.get(op).copied().unwrap_or(0)) as f64 / worker_minutes))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let per_minute = |service: &str| -> f64 {
        worker_calls
            .iter()
            .chain(coordinator_calls.iter())
            .filter(|(op, _)| op.starts_with(service))
            .map(|(_, n)| n)
            .sum()
    };
    // SNS charges per publish; deliveries to SQS are free.
    let rate = MessagingRate { sqs: per_minute("SQS."), sns: per_minute("SNS.Publish") };
    let mut ages: Vec<f64> = staleness.iter().map(|(_, a)| *a).collect();
    ages.sort_by(f64::total_cmp);
    let report = SqsCostReport {
        workers: plan.workers,
        worker_minutes,
        worker_calls,
        coordinator_calls,
        rate,
        ratio: rate.ratio_to_worker(),
        stall_detected_after: detected,
        reshards: outcome.stats.reshards,
        staleness_p50: ages.get(ages.len() / 2).copied().unwrap_or(0.0),
        staleness_max: ages.last().copied().unwrap_or(0.0),
    };
    write_outputs(&plan.out, &report, &staleness, plan.stop_at)?;
    Ok(report)
}

fn write_outputs(
    out: &Path,
    r: &SqsCostReport,
    staleness: &[(f64, f64)],
    stop_at: Option<Duration>,
) -> Result<(), String> {
    let mut rows: Vec<String> = Vec::new();
    for (side, calls) in [("worker", &r.worker_calls), ("coordinator", &r.coordinator_calls)] {
        rows.extend(calls.iter().map(|(op, n)| format!("{side},{op},{n:.4}")));
    }
    rows.push(format!("total,SQS,{:.4}", r.rate.sqs));
    rows.push(format!("total,SNS.Publish,{:.4}", r.rate.sns));
    rows.push(format!("total,cost_ratio,{:.6}", r.ratio));
    csv(&out.join("sqs-cost.csv"), "side,operation,per_worker_minute", &rows)?;
    let samples: Vec<String> = staleness.iter().map(|(t, a)| format!("{t:.2},{a:.3}")).collect();
    csv(&out.join("sqs-staleness.csv"), "t_s,max_staleness_s", &samples)?;
    // Per 10-second window: the sawtooth of individual samples would hide the bound.
    let mut windows: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (t, a) in staleness {
        windows.entry((*t / 10.0) as u64).or_default().push(*a);
    }
    let (mut max, mut median) = (Vec::new(), Vec::new());
    for (w, mut ages) in windows {
        ages.sort_by(f64::total_cmp);
        let mid = w as f64 * 10.0 + 5.0;
        max.push((mid, ages.last().copied().unwrap_or(0.0)));
        median.push((mid, ages[ages.len() / 2]));
    }
    let mut series = vec![
        Series {
            name: "max over 10 s: oldest progress of a live worker".into(),
            points: max,
            scatter: false,
        },
        Series { name: "median over 10 s".into(), points: median, scatter: false },
    ];
    if let (Some(at), Some(d)) = (stop_at, r.stall_detected_after) {
        let (s, e) = (at.as_secs_f64(), at.as_secs_f64() + d);
        series.push(Series {
            name: format!("SIGSTOP to stall detected ({d:.1} s)"),
            points: vec![(s, 0.0), (e, 0.0)],
            scatter: true,
        });
    }
    chart(
        &out.join("sqs-staleness"),
        Labels {
            title: "Progress staleness over SQS, default timings",
            x: "time since start (s)",
            y: "seconds",
        },
        &series,
    )
}

/// Pids of this process's `nonce-worker` children.
fn worker_pids() -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.starts_with("nonce-worker") && ppid == Some(me) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

async fn wait_for_call_log(path: &Path, workers: usize, timeout: Duration) -> Vec<Value> {
    let until = Instant::now() + timeout;
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= workers || Instant::now() >= until {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
