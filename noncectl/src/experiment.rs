//! `noncectl experiment planner|scaling|sqs-cost`: the coursework report's experiments,
//! reproduced, and what supervision over SQS costs.

use super::{exit, UsageError};
use crate::experiments;
use clap::{Args, Subcommand};
use coordinator::actors::system;
use coordinator::request::AwsSettings;
use std::path::PathBuf;

/// Flags every experiment takes.
#[derive(Args, Debug)]
pub struct Common {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the CSV and the plots.
    #[arg(long, default_value = "out/experiments")]
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// Random blocks and deadlines with planned fleets: the share that met the deadline vs P.
    Planner {
        #[arg(long, default_value_t = 200)]
        trials: usize,
        #[arg(long, default_value_t = 0.9)]
        confidence: f64,
        /// Delay each worker's start by a draw from this distribution (lognormal:MEDIAN[:SIGMA]
        /// or fixed:DUR, e.g. lognormal:40s); the planner plans with the p95 it measures.
        #[arg(long = "startup-dist", value_name = "DIST")]
        startup_dist: Option<String>,
        /// Local seconds per second of --startup-dist (0.01: 40 s becomes 0.4 s).
        #[arg(long = "startup-scale", default_value_t = 0.01)]
        startup_scale: f64,
        /// The percentile of the measured start-ups the planner uses (estimate uses 95).
        #[arg(long = "startup-percentile", default_value_t = nonce_core::startup::PERCENTILE)]
        startup_percentile: u8,
        /// Launch every worker through one token bucket of BURST:RATE (modelled seconds,
        /// scaled like --startup-dist), as Fargate's launch quotas do; the planner plans the
        /// ramp it gives (e.g. 1:0.025 makes a 2-worker fleet ramp like a 1,000-task one).
        #[arg(long = "launch-quota", value_name = "BURST:RATE")]
        launch_quota: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Time to a golden nonce across workers and difficulties (report section 7, figures 5-7).
    Scaling {
        /// Worker counts, comma-separated.
        #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
        workers: Vec<usize>,
        /// Difficulties as FROM..TO (inclusive).
        #[arg(long, default_value = "12..22")]
        difficulties: String,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        #[command(flatten)]
        common: Common,
    },
    /// SQS/SNS requests per worker-minute by operation, their cost against the worker's
    /// Fargate cost, the stall-detection delay and the staleness of progress, with the
    /// default timings over the aws transport (an emulator via AWS_ENDPOINT_URL, or a real
    /// account).
    SqsCost(SqsCostArgs),
}

/// `noncectl experiment sqs-cost`'s flags.
#[derive(Args, Debug)]
pub struct SqsCostArgs {
    /// Worker processes (`nonce-worker`, one hashing thread each).
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// How long the job runs (e.g. 90s, 5m).
    #[arg(long, default_value = "3m")]
    duration: String,
    /// When to SIGSTOP one worker (`none` for no stop).
    #[arg(long, default_value = "20s")]
    stop_at: String,
    /// Resource name prefix of the queues and topic.
    #[arg(long, default_value = coordinator::request::DEFAULT_AWS_PREFIX)]
    aws_prefix: String,
    /// Create the queues and topic if missing (emulators, dev accounts).
    #[arg(long)]
    aws_bootstrap: bool,
    /// Directory for the CSV and the plot.
    #[arg(long, default_value = "out/experiments")]
    out: PathBuf,
}

fn sqs_cost(a: SqsCostArgs, kernel: nonce_kernel::Backend, json: bool) -> Result<u8, UsageError> {
    if a.workers == 0 || a.workers > 64 {
        return Err(UsageError("--workers must be 1..=64".into()));
    }
    let duration = coordinator::request::parse_duration_flag("duration", &a.duration)?;
    let stop_at = match a.stop_at.as_str() {
        "none" => None,
        t => Some(coordinator::request::parse_duration_flag("stop-at", t)?),
    };
    if stop_at.is_some_and(|s| s >= duration) {
        return Err(UsageError("--stop-at must come before the end of --duration".into()));
    }
    let call_log = a.out.join("sqs-cost-calls.jsonl");
    // Before any thread starts: the worker processes inherit it and write their counts there.
    std::env::set_var(aws_transport::CALL_LOG_VAR, &call_log);
    let plan = experiments::sqs_cost::SqsCostPlan {
        workers: a.workers,
        duration,
        stop_at,
        aws: AwsSettings {
            prefix: a.aws_prefix,
            bootstrap: a.aws_bootstrap,
            ecs: None,
            launch: Default::default(),
        },
        out: a.out,
        call_log,
        kernel,
    };
    match system().block_on(experiments::sqs_cost::sqs_cost(plan)) {
        Ok(r) => {
            if json {
                coordinator::outln!("{}", r.json());
            } else {
                coordinator::output::or_exit(coordinator::output::write_text(&r.text()));
            }
            Ok(exit::FOUND)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::FAILURE)
        }
    }
}

fn difficulties(text: &str) -> Result<Vec<u32>, UsageError> {
    let bad = || UsageError(format!("--difficulties {text:?}: expected FROM..TO, e.g. 12..22 (at most 40)"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u32, u32) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a > b || b > 40 {
        return Err(bad());
    }
    Ok((a..=b).collect())
}

/// `--startup-dist` and `--startup-scale`, checked.
fn planner_startup(
    dist: Option<&str>,
    scale: f64,
    percentile: u8,
) -> Result<Option<experiments::ImposedStartup>, UsageError> {
    let Some(text) = dist else { return Ok(None) };
    if !(1..=100).contains(&percentile) {
        return Err(UsageError(format!("--startup-percentile must be 1..=100, not {percentile}")));
    }
    if !(scale.is_finite() && scale > 0.0 && scale <= 1.0) {
        return Err(UsageError(format!("--startup-scale must be in (0, 1], not {scale}")));
    }
    let dist = experiments::StartupDist::parse(text).map_err(UsageError)?;
    Ok(Some(experiments::ImposedStartup { dist, scale, percentile }))
}

/// `kernel`: the workers' hashing backend (`NONCE_KERNEL`, or the fastest).
pub fn run(cmd: ExperimentCommand, kernel: nonce_kernel::Backend, json: bool) -> Result<u8, UsageError> {
    match cmd {
        ExperimentCommand::SqsCost(a) => sqs_cost(a, kernel, json),
        ExperimentCommand::Planner {
            trials,
            confidence,
            startup_dist,
            startup_scale,
            startup_percentile,
            launch_quota,
            common: Common { seed, out },
        } => {
            let quota = launch_quota
                .map(|q| {
                    nonce_core::launch_quota::Bucket::parse(&q)
                        .map(|b| nonce_core::launch_quota::LaunchQuotas { tasks: b, calls: b })
                        .map_err(|e| UsageError(format!("--launch-quota: {e}")))
                })
                .transpose()?;
            if trials == 0 || trials > 100_000 {
                return Err(UsageError("--trials must be 1..=100000".into()));
            }
            if !(confidence > 0.0 && confidence < 1.0) {
                return Err(UsageError("--confidence must be between 0 and 1 (exclusive)".into()));
            }
            let imposed = planner_startup(startup_dist.as_deref(), startup_scale, startup_percentile)?;
            let r = system()
                .block_on(experiments::planner(trials, confidence, seed, &out, imposed, quota, kernel));
            match r {
                Ok(s) => {
                    if json {
                        let mut v = serde_json::json!({
                            "trials": s.trials, "confidence": s.confidence, "met": s.met,
                            "fleet_ratio": s.fleet_ratio, "csv": s.csv, "plots": s.plots,
                        });
                        if let Some(st) = &s.startup {
                            v["startup"] = serde_json::json!({
                                "dist": st.dist, "scale": st.scale, "samples": st.samples,
                                "learned_s": st.learned, "percentile": st.percentile, "default_trials": st.default_trials,
                                "met_measured": st.met_measured, "refused": st.refused,
                            });
                        }
                        coordinator::outln!("{v}");
                    } else {
                        coordinator::outln!(
                            "{} trials at P = {}: {:.1}% met the deadline",
                            s.trials,
                            s.confidence,
                            s.met * 100.0
                        );
                        coordinator::outln!("fleet used / smallest sufficient fleet: {:.3}", s.fleet_ratio);
                        if let Some(st) = &s.startup {
                            coordinator::outln!(
                                "start-up {} x {}: planned with p{} of {} samples at the end ({:.3} s); {} trial(s) on the default; {:.1}% of the rest met the deadline; {} refused as impossible",
                                st.dist, st.scale, st.percentile, st.samples, st.learned, st.default_trials, st.met_measured * 100.0, st.refused
                            );
                        }
                        coordinator::outln!(
                            "data {}; plots {}",
                            s.csv.display(),
                            s.plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    Ok(exit::FOUND)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(exit::FAILURE)
                }
            }
        }
        ExperimentCommand::Scaling { workers, difficulties: d, repeats, common: Common { seed, out } } => {
            let ds = difficulties(&d)?;
            if workers.is_empty() || workers.iter().any(|&w| w == 0 || w > 64) {
                return Err(UsageError("--workers must be a list of 1..=64".into()));
            }
            if repeats == 0 || repeats > 1000 {
                return Err(UsageError("--repeats must be 1..=1000".into()));
            }
            match system().block_on(experiments::scaling(&workers, &ds, repeats, seed, &out)) {
                Ok((csv, plots)) => {
                    if json {
                        coordinator::outln!("{}", serde_json::json!({ "csv": csv, "plots": plots }));
                    } else {
                        coordinator::outln!("data {}", csv.display());
                        for p in plots {
                            coordinator::outln!("plot {}", p.display());
                        }
                    }
                    Ok(exit::FOUND)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(exit::FAILURE)
                }
            }
        }
    }
}
