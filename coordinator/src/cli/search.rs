//! `noncectl search`: validate, run the job on the in-process coordinator, show progress,
//! cancel cleanly on Ctrl-C, and report.

use super::report::{human_rate, SearchReport};
use super::{exit, PuzzleArgs, UsageError};
use crate::job::{Outcome, OutcomeKind};
use crate::registry::{Coordinator, StartJob};
use crate::spec::{cpus, JobSpec};
use crate::supervisor::{CancelJob, GetStatus, WaitJob};
use actix::prelude::*;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use protocol::{Mode, NonceRange};
use std::io::IsTerminal;
use std::time::Duration;

/// Most in-process workers a search may ask for.
const MAX_LOCAL_WORKERS: usize = 1024;

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
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    fn spec(&self) -> Result<JobSpec, UsageError> {
        let puzzle = self.puzzle.puzzle()?;
        let mode: Mode = self.mode.parse().map_err(UsageError)?;
        let space = puzzle.space();
        let range = match &self.range {
            Some(r) => NonceRange::parse(r, space.end).map_err(|e| UsageError(e.to_string()))?,
            None => space,
        };
        let mut spec = JobSpec::new(puzzle, mode, range);
        if let Some(w) = self.workers {
            if w == 0 || w > MAX_LOCAL_WORKERS {
                return Err(UsageError(format!("--workers must be 1..={MAX_LOCAL_WORKERS}, not {w}")));
            }
            spec.workers = w;
        }
        if self.threads == 0 || self.threads > 4 * cpus().max(64) {
            return Err(UsageError(format!("--threads {} is out of range", self.threads)));
        }
        spec.threads_per_worker = self.threads;
        spec.deadline = self.max_time.as_deref().map(parse_duration).transpose()?;
        Ok(spec)
    }
}

/// Parses `90`, `90s`, `1.5m`, `2h`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let t = text.trim();
    let bad = || UsageError(format!("{text:?} is not a duration (e.g. 30s, 5m, 1h)"));
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v.is_finite() && v > 0.0 && v * scale < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

pub fn run(args: SearchArgs) -> Result<u8, UsageError> {
    let spec = args.spec()?;
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    });
    let json = args.json;
    let result = system.block_on(async move { drive(spec, json).await });
    match result {
        Ok(code) => Ok(code),
        Err(msg) => {
            eprintln!("error: {msg}");
            Ok(exit::FAILURE)
        }
    }
}

async fn drive(spec: JobSpec, json: bool) -> Result<u8, String> {
    let coordinator = Coordinator::default().start();
    let (puzzle, mode, workers) = (spec.puzzle.clone(), spec.mode, spec.workers);
    let (job, sup) = coordinator.send(StartJob(spec)).await.map_err(|e| e.to_string())??;
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(job));
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
                    bar.set_length(u64::try_from(st.total).unwrap_or(u64::MAX));
                    bar.set_position(u64::try_from(st.stats.searched).unwrap_or(u64::MAX));
                    bar.set_message(format!("{} · {} workers", human_rate(st.stats.rate), st.stats.workers_live));
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Give stopping workers a moment to leave before the runtime goes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = SearchReport { job, puzzle: &puzzle, mode, workers, outcome: &outcome };
    if json {
        println!("{}", report.json());
    } else {
        println!("{}", report.text());
    }
    Ok(match outcome.kind {
        OutcomeKind::Found => exit::FOUND,
        OutcomeKind::Exhausted | OutcomeKind::TimedOut => exit::NONE,
        OutcomeKind::Cancelled => exit::CANCELLED,
        OutcomeKind::Failed(_) => exit::FAILURE,
    })
}

fn progress_bar(job: protocol::JobId) -> ProgressBar {
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
