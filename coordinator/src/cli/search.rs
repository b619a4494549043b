//! `noncectl search`: validate, then run the job on the in-process coordinator or submit it to
//! `nonced` (`--socket`/`NONCE_SOCKET`); show progress, cancel cleanly on Ctrl-C, report.

use super::report::{self, human_rate, SearchReport};
use super::{exit, PuzzleArgs, UsageError};
use crate::daemon::client::RpcClient;
use crate::job::Outcome;
use crate::registry::{Coordinator, StartJob};
use crate::request::SearchRequest;
use crate::spec::JobSpec;
use crate::supervisor::{CancelJob, GetStatus, WaitJob};
use actix::prelude::*;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    puzzle: PuzzleArgs,
    /// first | lowest | exhaustive.
    #[arg(long, default_value = "first")]
    mode: String,
    /// Half-open nonce range START..END or START.. (decimal or 0x hex); default: the whole space.
    #[arg(long, value_name = "START..END")]
    range: Option<String>,
    /// Number of workers (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Hashing threads per in-process worker.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Give up after this long (e.g. 90s, 5m, 1h) with outcome timed_out.
    #[arg(long = "max-time", value_name = "DUR")]
    max_time: Option<String>,
    /// With --max-time: plan the fleet to find a golden nonce in time with this probability.
    #[arg(long)]
    confidence: Option<f64>,
    /// How coordinator and workers talk: memory (this machine).
    #[arg(long, default_value = "memory")]
    transport: String,
    /// Where workers run: threads (in this process) or process (nonce-worker processes).
    #[arg(long, default_value = "threads")]
    launcher: String,
    /// Submit to the nonced daemon at this socket instead of searching in-process.
    #[arg(long, env = "NONCE_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    fn request(&self) -> SearchRequest {
        SearchRequest {
            mode: Some(self.mode.clone()),
            range: self.range.clone(),
            workers: self.workers,
            threads: Some(self.threads),
            max_time: self.max_time.clone(),
            confidence: self.confidence,
            transport: Some(self.transport.clone()),
            launcher: Some(self.launcher.clone()),
            ..self.puzzle.request()
        }
    }
}

/// A multi-thread tokio runtime under an actix system, as the coordinator needs.
pub fn system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    })
}

pub fn run(args: SearchArgs) -> Result<u8, UsageError> {
    let request = args.request();
    let spec = request.spec()?; // validate locally first: same errors, exit 2, either way
    let json = args.json;
    let result = match &args.socket {
        Some(socket) => system().block_on(drive_remote(socket.clone(), request, json)),
        None => system().block_on(drive_local(spec, json)),
    };
    match result {
        Ok(code) => Ok(code),
        Err(msg) => {
            eprintln!("error: {msg}");
            Ok(exit::FAILURE)
        }
    }
}

fn print_result(v: &Value, json: bool) -> u8 {
    if json {
        println!("{v}");
    } else {
        println!("{}", report::text(v));
    }
    match v["outcome"].as_str() {
        Some("found") => exit::FOUND,
        Some("exhausted" | "timed_out") => exit::NONE,
        Some("cancelled") => exit::CANCELLED,
        _ => exit::FAILURE,
    }
}

async fn drive_local(spec: JobSpec, json: bool) -> Result<u8, String> {
    let coordinator = Coordinator::default().start();
    let (puzzle, mode, workers) = (spec.puzzle.clone(), spec.mode, spec.workers);
    let (job, sup) = coordinator.send(StartJob(spec, None)).await.map_err(|e| e.to_string())??;
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(&job.to_string()));
    let wait = sup.send(WaitJob);
    tokio::pin!(wait);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut cancelled = false;
    let outcome: Outcome = loop {
        tokio::select! {
            res = &mut wait => break res.map_err(|e| e.to_string())??,
            _ = &mut ctrl_c, if !cancelled => {
                cancelled = true;
                sup.do_send(CancelJob);
            }
            _ = ticker.tick() => {
                if let (Some(bar), Ok(st)) = (&bar, sup.send(GetStatus).await) {
                    let total = u64::try_from(st.total).unwrap_or(u64::MAX);
                    let pos = u64::try_from(st.stats.searched).unwrap_or(u64::MAX);
                    show(bar, total, pos, st.stats.rate, st.stats.workers_live as u64);
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Give stopping workers a moment to leave before the runtime goes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v = SearchReport { job, puzzle: &puzzle, mode, workers, outcome: &outcome }.json();
    Ok(print_result(&v, json))
}

async fn drive_remote(socket: PathBuf, request: SearchRequest, json: bool) -> Result<u8, String> {
    let mut client = RpcClient::connect(&socket).await.map_err(|e| e.to_string())?;
    let params = serde_json::to_value(&request).map_err(|e| e.to_string())?;
    let started = client.call("search.start", params).await.map_err(|e| e.to_string())?;
    let job = started["job_id"].as_str().ok_or("the daemon returned no job id")?.to_string();
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(&job));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut cancelled = false;
    let result = loop {
        // `search.wait` with a short timeout is both the progress poll and the completion.
        let waited = tokio::select! {
            r = client.call("search.wait", json!({ "job_id": job, "timeout_s": 0.25 })) => r.map_err(|e| e.to_string())?,
            _ = &mut ctrl_c, if !cancelled => {
                cancelled = true;
                // The pending call's reply may still arrive on this connection: cancel on a fresh one.
                let mut other = RpcClient::connect(&socket).await.map_err(|e| e.to_string())?;
                other.call("search.cancel", json!({ "job_id": job })).await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        if waited["finished"] == json!(true) {
            break waited["result"].clone();
        }
        if let Some(bar) = &bar {
            let total = waited["total"].as_u64().unwrap_or(u64::MAX);
            let pos = waited["searched"].as_u64().unwrap_or(0);
            show(
                bar,
                total,
                pos,
                waited["rate"].as_f64().unwrap_or(0.0),
                waited["workers"].as_u64().unwrap_or(0),
            );
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(print_result(&result, json))
}

fn show(bar: &ProgressBar, total: u64, pos: u64, rate: f64, workers: u64) {
    bar.set_length(total);
    bar.set_position(pos);
    bar.set_message(format!("{} · {workers} workers", human_rate(rate)));
}

fn progress_bar(job: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {percent:>3}% {human_pos}/{human_len} · {msg} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("job {job}"));
    bar
}
