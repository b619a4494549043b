//! `noncectl estimate`: the planner's answer for a difficulty, a deadline and a confidence.

use super::{exit, UsageError};
use clap::Args;
use coordinator::request::calibration;
use coordinator::request::cpus;
use coordinator::request::startup;
use coordinator::request::{CapacityKind, SearchRequest};
use nonce_core::planner::{cheapest, Plan, PlanInput, FARGATE_GB_HOUR, FARGATE_VCPU_HOUR};
use nonce_core::startup::{StartupEstimate, StartupSource};
use nonce_kernel::Backend;
use protocol::{Encoding, NonceRange};

#[derive(Args, Debug)]
pub struct EstimateArgs {
    /// Leading zero bits required.
    #[arg(long)]
    difficulty: u32,
    /// Time allowed (e.g. 30s, 5m).
    #[arg(long = "max-time", value_name = "DUR")]
    max_time: String,
    /// Probability wanted of finding a golden nonce in that time (0 < P < 1).
    #[arg(long)]
    confidence: f64,
    /// Nonces per second of one worker (default: measured on this machine).
    #[arg(long)]
    rate: Option<f64>,
    /// Time from launch to hashing (a duration: 40, 40s, 1m; default: the p95 of the
    /// launcher's measured start-ups, else its documented default).
    #[arg(long, value_name = "DUR")]
    startup: Option<String>,
    /// The range searched (default: the whole space of the encoding).
    #[arg(long, value_name = "START..END")]
    range: Option<String>,
    /// Nonce encoding, for the size of the space.
    #[arg(long, default_value = "be32")]
    encoding: String,
    /// threads | process | ecs: sets the start-up latency and the capacity.
    #[arg(long, default_value = "threads")]
    launcher: String,
    /// Most workers that add speed (default: CPUs here; 1000 for ecs, Fargate's usual vCPU quota).
    #[arg(long = "max-workers", value_name = "N")]
    max_workers: Option<usize>,
    /// vCPUs per worker (ecs), for rate and cost.
    #[arg(long = "worker-vcpus", default_value_t = 1.0)]
    worker_vcpus: f64,
    /// GB of memory per worker (ecs), for cost.
    #[arg(long = "worker-memory-gb", default_value_t = 2.0)]
    worker_memory_gb: f64,
    /// USD per vCPU-hour.
    #[arg(long = "vcpu-price", default_value_t = FARGATE_VCPU_HOUR)]
    vcpu_price: f64,
    /// USD per GB-hour.
    #[arg(long = "gb-price", default_value_t = FARGATE_GB_HOUR)]
    gb_price: f64,
    /// Capacity (ecs): fargate, spot, mixed, auto (the cheapest Fargate kind that keeps the
    /// promise), or gpu (one worker a g5.xlarge, priced whole, at a stated rate: --rate
    /// gives a measured one).
    #[arg(long, default_value = "fargate")]
    capacity: String,
    /// The account's task launch quota (ecs), BURST:RATE.
    #[arg(long = "task-quota", value_name = "BURST:RATE")]
    task_quota: Option<String>,
    /// The account's RunTask call quota (ecs), BURST:RATE.
    #[arg(long = "call-quota", value_name = "BURST:RATE")]
    call_quota: Option<String>,
}

fn positive(name: &str, v: f64) -> Result<f64, UsageError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(UsageError(format!("{name} must be a positive number, not {v}")))
    }
}

/// The plan's inputs (one per capacity weighed), and the start-up they use with where that
/// came from.
pub fn input_from(
    args: &EstimateArgs,
    kernel: Backend,
) -> Result<(Vec<(CapacityKind, PlanInput)>, StartupEstimate), UsageError> {
    if args.difficulty > 256 {
        return Err(UsageError(format!("difficulty {} is over the maximum of 256 bits", args.difficulty)));
    }
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        return Err(UsageError(format!(
            "--confidence must be between 0 and 1 (exclusive), not {}",
            args.confidence
        )));
    }
    let cache = crate::cache_dir_from_env();
    let max_time = coordinator::request::parse_duration_flag("max-time", &args.max_time)?.as_secs_f64();
    if !matches!(args.launcher.as_str(), "threads" | "process" | "ecs") {
        return Err(UsageError(format!("unknown launcher {:?} (threads, process or ecs)", args.launcher)));
    }
    // GPU workers' start-ups are learned apart from Fargate's (`JobSpec::startup_key`).
    let key = match (args.launcher.as_str(), args.capacity.as_str()) {
        ("ecs", "gpu") => nonce_core::planner::GPU_STARTUP_KEY,
        (launcher, _) => launcher,
    };
    let startup = match &args.startup {
        Some(s) => StartupEstimate {
            seconds: coordinator::request::parse_duration_flag_or_zero("startup", s)?.as_secs_f64(),
            source: StartupSource::Given,
        },
        None => startup::load(&cache.join(startup::FILE)).estimate(key).ok_or_else(|| {
            UsageError(format!("unknown launcher {:?} (threads, process or ecs)", args.launcher))
        })?,
    };
    let enc: Encoding =
        args.encoding.parse().map_err(|e: protocol::PuzzleError| UsageError(e.to_string()))?;
    let space = match &args.range {
        Some(r) => NonceRange::parse(r, enc.space_end()).map_err(|e| UsageError(e.to_string()))?.len(),
        None => enc.space_end(),
    } as f64;
    let vcpus = positive("--worker-vcpus", args.worker_vcpus)?;
    let rate = match args.rate {
        Some(r) => positive("--rate", r)?,
        None => calibration::per_thread_rate(&cache, kernel) * vcpus,
    };
    let capacity = match (args.max_workers, args.launcher.as_str()) {
        (Some(0), _) => return Err(UsageError("--max-workers must be at least 1".into())),
        (Some(c), _) => c,
        (None, "ecs") => 1000,
        (None, _) => cpus(),
    };
    let input = PlanInput {
        difficulty: args.difficulty,
        max_time,
        confidence: args.confidence,
        rate,
        startup: startup.seconds,
        space,
        capacity,
        worker_vcpus: vcpus,
        worker_memory_gb: positive("--worker-memory-gb", args.worker_memory_gb)?,
        vcpu_hour: positive("--vcpu-price", args.vcpu_price)?,
        gb_hour: positive("--gb-price", args.gb_price)?,
        ramp: None,
        spot: None,
    };
    let fargate = CapacityKind::parse(&args.capacity).map_err(UsageError)?;
    let ecs = args.launcher == "ecs";
    if !ecs && (fargate != CapacityKind::Fargate || args.task_quota.is_some() || args.call_quota.is_some()) {
        return Err(UsageError(
            "--capacity, --task-quota and --call-quota are about Fargate: they need --launcher ecs".into(),
        ));
    }
    if !ecs {
        return Ok((vec![(CapacityKind::Fargate, input)], startup));
    }
    if fargate == CapacityKind::Gpu {
        // One worker a GPU instance, priced whole; its stated rate unless given.
        let priced = nonce_core::pricing::GPU_WORKER.priced(input.clone());
        let input = PlanInput { rate: args.rate.map_or(priced.rate, |_| input.rate), ..priced };
        return Ok((vec![(CapacityKind::Gpu, input)], startup));
    }
    // Fargate's launch quotas ramp the fleet up; the request's quotas if raised.
    let quotas = SearchRequest {
        ecs_task_quota: args.task_quota.clone(),
        ecs_call_quota: args.call_quota.clone(),
        ..Default::default()
    }
    .launch_pacing()?
    .quotas;
    let options = fargate
        .weighed()
        .iter()
        .map(|&k| {
            let spot = (k.spot_share() > 0.0).then(|| nonce_core::pricing::spot_terms(k.spot_share()));
            (k, PlanInput { ramp: Some(quotas), spot, ..input.clone() })
        })
        .collect();
    Ok((options, startup))
}

/// `estimate --json`: the plan, and what it was planned from. Its names are the planner's
/// (`expected_seconds`, `cost`; `capacity` the most workers that add speed, the capacity
/// kind `fargate_capacity`), older than `search.start`'s `plan` (README, "The ramp is in the
/// plan").
#[derive(Debug, serde::Serialize)]
struct EstimateJson {
    k: f64,
    workers: usize,
    expected_seconds: f64,
    probability: f64,
    cost: f64,
    cost_expected: f64,
    space_probability: f64,
    possible: bool,
    reason: Option<String>,
    rate_per_worker: f64,
    startup_s: f64,
    startup_source: &'static str,
    startup_percentile: Option<u8>,
    startup_samples: Option<usize>,
    capacity: usize,
    launch_ramp_s: f64,
    fargate_capacity: &'static str,
    spot_share: f64,
}

impl EstimateJson {
    fn of(i: &PlanInput, p: &Plan, startup: &StartupEstimate, capacity: CapacityKind) -> Self {
        let (startup_percentile, startup_samples) = match startup.source {
            StartupSource::Measured { percentile, samples } => (Some(percentile), Some(samples)),
            StartupSource::Default | StartupSource::Given => (None, None),
        };
        let millis = |s: f64| (s * 1000.0).round() / 1000.0;
        EstimateJson {
            k: p.k,
            workers: p.workers,
            expected_seconds: millis(p.expected_seconds),
            probability: p.probability,
            cost: p.cost,
            cost_expected: p.cost_expected,
            space_probability: p.space_probability,
            possible: p.impossible.is_none(),
            reason: p.impossible.clone(),
            rate_per_worker: i.rate.round(),
            startup_s: i.startup,
            startup_source: startup.source.name(),
            startup_percentile,
            startup_samples,
            capacity: i.capacity,
            launch_ramp_s: millis(p.launch_ramp_s),
            fargate_capacity: capacity.name(),
            spot_share: i.spot.map_or(0.0, |s| s.share),
        }
    }
}

/// `kernel`: the backend whose rate plans the fleet (`NONCE_KERNEL` or the fastest).
pub fn run(args: EstimateArgs, kernel: Backend, json: bool) -> Result<u8, UsageError> {
    let (options, startup) = input_from(&args, kernel)?;
    let inputs: Vec<PlanInput> = options.iter().map(|(_, i)| i.clone()).collect();
    let Some((chosen, p)) = cheapest(&inputs) else {
        return Err(UsageError("nothing to plan".into()));
    };
    let (kind, input) = (options[chosen].0, &inputs[chosen]);
    if json {
        let line = serde_json::to_string(&EstimateJson::of(input, &p, &startup, kind))
            .map_err(|e| UsageError(format!("the plan did not serialize: {e}")))?;
        coordinator::outln!("{line}");
    } else {
        coordinator::outln!("tries needed (k)    {:.0}", p.k);
        coordinator::outln!("workers             {}", p.workers);
        coordinator::outln!("expected time       {:.2} s", p.expected_seconds);
        coordinator::outln!("probability by {:.1} s: {:.4}", input.max_time, p.probability);
        coordinator::outln!("cost                ${:.6} at most (${:.6} expected)", p.cost, p.cost_expected);
        if input.ramp.is_some() {
            coordinator::outln!(
                "capacity            {}{}",
                kind.name(),
                if options.len() > 1 { " (the cheapest that keeps the promise)" } else { "" }
            );
            coordinator::outln!(
                "launch ramp         {:.2} s until the last worker's launch ({})",
                p.launch_ramp_s,
                input.ramp.unwrap_or_default().describe()
            );
        }
        if kind == CapacityKind::Gpu {
            let gpu = nonce_core::pricing::GPU_WORKER;
            coordinator::outln!(
                "capacity            gpu: one worker a {} at ${}/h{}",
                gpu.name,
                gpu.usd_hour,
                if args.rate.is_none() { " (its rate stated, not measured: --rate gives one)" } else { "" }
            );
        }
        let shown = if input.startup < 0.1 {
            format!("{:.2} ms", input.startup * 1000.0)
        } else {
            format!("{:.2} s", input.startup)
        };
        coordinator::outln!(
            "rate per worker     {:.0} nonces/s, start-up {shown} ({})",
            input.rate,
            startup.source.describe()
        );
        if let Some(why) = &p.impossible {
            coordinator::outln!("cannot promise: {why}");
        }
    }
    Ok(if p.impossible.is_some() { exit::NONE } else { exit::FOUND })
}
