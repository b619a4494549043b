//! `noncectl search`: validate, then run the job on the in-process coordinator or submit it to
//! `nonced` (`--socket`/`NONCE_SOCKET`, or `--endpoint` with a token); show progress, cancel cleanly on Ctrl-C, report.

use super::daemon_client::CommandError;
use super::{exit, PuzzleArgs, UsageError};
use crate::client::{Daemon, DaemonClient, Target};
use actix::prelude::*;
use clap::Args;
use coordinator::actors::GetTransportCounters;
use coordinator::actors::{follow, system, CancelById, Coordinator, StartJob, Update};
use coordinator::request::report::{self, human_rate, SearchReport};
use coordinator::request::AwsSettings;
use coordinator::request::JobSpec;
use coordinator::request::{LauncherKind, SearchRequest, TransportKind};
use coordinator::transport::aws::AwsContext;
use indicatif::{ProgressBar, ProgressStyle};
use nonce_api::JobStatus;
use std::io::IsTerminal;
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
    /// How coordinator and workers talk: memory (this machine; the default) or aws (SQS + SNS).
    #[arg(long)]
    transport: Option<String>,
    /// Where workers run: threads (in this process; the default), process (nonce-worker
    /// processes) or ecs (Fargate tasks; needs --transport aws).
    #[arg(long)]
    launcher: Option<String>,
    /// Replacement workers the job may start for ones that stall or die (default: --workers;
    /// 0 re-shards lost ranges across the live workers only).
    #[arg(long)]
    replacements: Option<usize>,
    /// Workers report this often (default: 250ms in memory, 9s over aws).
    #[arg(long, value_name = "DUR")]
    heartbeat: Option<String>,
    /// A worker silent this long loses its shards (default: 3s in memory, 21s over aws).
    #[arg(long = "stall-timeout", value_name = "DUR")]
    stall_timeout: Option<String>,
    /// A worker that hears nothing from the coordinator this long stops itself (default: 10s, 300s over aws).
    #[arg(long = "orphan-timeout", value_name = "DUR")]
    orphan_timeout: Option<String>,
    /// Shares: workers prove their work with every nonce of at least this many leading zero
    /// bits (default: about 8 per heartbeat per worker, from the calibrated rate).
    #[arg(long = "share-bits", value_name = "BITS")]
    share_bits: Option<u32>,
    /// Fraction of claimed work searched again by another worker (default 1/1024; 1/256
    /// below a `lowest` answer). 0 turns spot checks off.
    #[arg(long = "spot-check", value_name = "FRACTION")]
    spot_check: Option<f64>,
    /// aws: resource name prefix (queues <prefix>-events, <prefix>-events-dlq, topic <prefix>-control).
    #[arg(long = "aws-prefix", value_name = "NAME")]
    aws_prefix: Option<String>,
    /// aws: create the queues and topic if missing (emulators, dev accounts; production uses Terraform).
    #[arg(long = "aws-bootstrap")]
    aws_bootstrap: bool,
    /// ecs: the cluster.
    #[arg(long = "ecs-cluster", value_name = "NAME")]
    ecs_cluster: Option<String>,
    /// ecs: the worker task definition (family[:revision] or ARN).
    #[arg(long = "ecs-task-definition", value_name = "TD")]
    ecs_task_definition: Option<String>,
    /// ecs: subnet ids, comma-separated.
    #[arg(long = "ecs-subnets", value_name = "IDS")]
    ecs_subnets: Option<String>,
    /// ecs: security group ids, comma-separated.
    #[arg(long = "ecs-security-groups", value_name = "IDS")]
    ecs_security_groups: Option<String>,
    /// ecs: the worker container's name in the task definition (default nonce-worker).
    #[arg(long = "ecs-container", value_name = "NAME")]
    ecs_container: Option<String>,
    /// ecs: give tasks a public IP (public subnets without NAT or VPC endpoints).
    #[arg(long = "ecs-public-ip")]
    ecs_public_ip: bool,
    /// ecs: capacity: fargate (on-demand), spot (about half the price, interruptible),
    /// mixed (every other worker on Spot), auto (the planner's cheapest Fargate kind that
    /// keeps the promise; needs --confidence), or gpu (EC2 GPU instances: needs
    /// --ecs-gpu-task-definition and --ecs-gpu-capacity-provider).
    #[arg(long, value_name = "KIND")]
    capacity: Option<String>,
    /// ecs: the GPU worker task definition (EC2 launch type, one GPU) for --capacity gpu.
    #[arg(long = "ecs-gpu-task-definition", value_name = "TD")]
    ecs_gpu_task_definition: Option<String>,
    /// ecs: the capacity provider of the GPU instances, for --capacity gpu.
    #[arg(long = "ecs-gpu-capacity-provider", value_name = "NAME")]
    ecs_gpu_capacity_provider: Option<String>,
    /// ecs: the account's task launch quota when raised, BURST:RATE (default 100:20).
    #[arg(long = "ecs-task-quota", value_name = "BURST:RATE")]
    ecs_task_quota: Option<String>,
    /// ecs: the account's RunTask call quota when raised, BURST:RATE (default 20:20).
    #[arg(long = "ecs-call-quota", value_name = "BURST:RATE")]
    ecs_call_quota: Option<String>,
    /// ecs: how long a worker whose task finds no Fargate capacity is retried (default 5m).
    #[arg(long = "ecs-capacity-retry", value_name = "DUR")]
    ecs_capacity_retry: Option<String>,
}

impl SearchArgs {
    fn request(&self) -> Result<SearchRequest, UsageError> {
        Ok(SearchRequest {
            mode: Some(self.mode.clone()),
            range: self.range.clone(),
            workers: self.workers,
            threads: Some(self.threads),
            max_time: self.max_time.clone(),
            confidence: self.confidence,
            transport: self.transport.as_deref().map(TransportKind::parse).transpose()?,
            launcher: self.launcher.as_deref().map(LauncherKind::parse).transpose()?,
            replacements: self.replacements,
            heartbeat: self.heartbeat.clone(),
            stall_timeout: self.stall_timeout.clone(),
            orphan_timeout: self.orphan_timeout.clone(),
            share_bits: self.share_bits,
            spot_check: self.spot_check,
            aws_prefix: self.aws_prefix.clone(),
            aws_bootstrap: self.aws_bootstrap.then_some(true),
            ecs_cluster: self.ecs_cluster.clone(),
            ecs_task_definition: self.ecs_task_definition.clone(),
            ecs_subnets: self.ecs_subnets.clone(),
            ecs_security_groups: self.ecs_security_groups.clone(),
            ecs_container: self.ecs_container.clone(),
            ecs_public_ip: self.ecs_public_ip.then_some(true),
            capacity: self.capacity.clone(),
            ecs_gpu_task_definition: self.ecs_gpu_task_definition.clone(),
            ecs_gpu_capacity_provider: self.ecs_gpu_capacity_provider.clone(),
            ecs_task_quota: self.ecs_task_quota.clone(),
            ecs_call_quota: self.ecs_call_quota.clone(),
            ecs_capacity_retry: self.ecs_capacity_retry.clone(),
            ..self.puzzle.request()
        })
    }
}

/// `kernel`: the hashing backend of in-process and process workers (`NONCE_KERNEL`, or the
/// fastest); a daemon's workers use the daemon's.
pub fn run(
    args: SearchArgs,
    kernel: nonce_kernel::Backend,
    global: &super::GlobalArgs,
) -> Result<u8, UsageError> {
    let mut request = args.request()?;
    let target = global.connection.target()?;
    // `--capacity` to a daemon means its ECS workers: the launcher and transport that implies,
    // unless given (the daemon says so if it has none).
    if target.is_some() && request.capacity.is_some() && request.launcher.is_none() {
        request.launcher = Some(LauncherKind::Ecs);
        request.transport.get_or_insert(TransportKind::Aws);
    }
    // Validated locally first: same errors, exit 2, either way.
    let cache = super::cache_dir_from_env();
    let spec = request.spec_with(coordinator::request::Knowledge {
        backend: Some(kernel),
        worker_binary: super::worker_binary_from_env().as_deref(),
        saved_in: Some(&cache),
        ..Default::default()
    })?;
    let json = global.json;
    let result = match target {
        Some(target) => system().block_on(drive_daemon(target, request, json)),
        None => {
            // Flags from the environment (NONCE_AWS_PREFIX, NONCE_ECS_*) only matter over aws.
            let aws =
                if request.transport == Some(TransportKind::Aws) { request.aws_settings()? } else { None };
            system().block_on(drive_local(spec, aws, json)).map_err(CommandError::Local)
        }
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            let (line, code) = e.explain();
            eprintln!("error: {line}");
            Ok(code)
        }
    }
}

fn print_result(r: &nonce_api::Report, json: bool) -> u8 {
    if json {
        match serde_json::to_string(r) {
            Ok(line) => coordinator::outln!("{line}"),
            Err(e) => eprintln!("error: the report did not serialize: {e}"),
        }
    } else {
        coordinator::outln!("{}", report::report_text(r));
    }
    exit::of_outcome(r.outcome)
}

async fn drive_local(spec: JobSpec, aws: Option<AwsSettings>, json: bool) -> Result<u8, String> {
    let aws = match aws {
        Some(settings) => Some(AwsContext::connect(settings).await.map_err(|e| e.to_string())?),
        None => None,
    };
    let coordinator = Coordinator::with_aws(aws.clone()).start();
    let (puzzle, mode, workers, startup_key) =
        (spec.puzzle.clone(), spec.mode, spec.workers, spec.startup_key());
    let mut interrupt = interrupts()?;
    let (job, sup) = coordinator
        .send(StartJob(spec, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(&job.to_string()));
    let mut cancelled = false;
    // Followed across its lives: an actor that died (a bug) is started again by the registry
    // from its last kept snapshot, and the search goes on with it. (In a block: the follower
    // borrows the bar, and is done with it before the bar is cleared.)
    let coordinator::actors::Followed { outcome, last_life: sup } = {
        let on_update = |update: Update<'_>| {
            if let (Some(bar), Update::Status(st)) = (&bar, update) {
                show(bar, &coordinator::request::report::progress(job, st));
            }
        };
        let followed = follow(&coordinator, job, sup, on_update, || true);
        tokio::pin!(followed);
        loop {
            tokio::select! {
                res = &mut followed => break res.map_err(|e| e.to_string())?,
                _ = interrupt.recv(), if !cancelled => {
                    cancelled = true;
                    // To whichever life runs (and any started after).
                    coordinator.do_send(CancelById(job));
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Asked now: the job's actor stops a few seconds after the end (its counters are those
    // at the end either way).
    let job_counters = sup.send(GetTransportCounters).await.ok().flatten();
    // What this run's workers took to start is what the next plan for this launcher uses.
    let history = crate::cache_dir_from_env().join(coordinator::request::startup::FILE);
    if let Err(e) =
        coordinator::request::startup::record(&history, startup_key, &outcome.startups, &outcome.unstarted)
    {
        tracing::warn!(error = %e, "could not record start-up samples");
    }
    // Give stopping workers a moment to leave before the runtime goes; over aws, let the
    // Stop broadcast and StopTask calls go out (and process workers leave) first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut report = SearchReport { job, puzzle: &puzzle, mode, workers, outcome: &outcome }.report();
    if let Some(aws) = &aws {
        aws.settle(Duration::from_secs(10)).await;
        let st = aws.stats();
        report.transport = Some(nonce_api::TransportCounts {
            name: Some("aws".into()),
            ghosts: st.ghosts,
            undecodable: st.undecodable,
            events: st.delivered,
            coordinator_sqs_requests: Some(aws.clients.calls.sqs()),
            job: job_counters.map(|c| Box::new(c.counts())),
            ..nonce_api::TransportCounts::default()
        });
    }
    Ok(print_result(&report, json))
}

/// Ctrl-C, caught from before the job starts: one pressed while the start is on its way
/// still cancels the job once it has an id (the default action would leave it running).
fn interrupts() -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot watch Ctrl-C: {e}"))
}

/// Through the daemon, either way: start, follow (pushed over the network, polled over the
/// socket: [`Daemon::next_update`]), cancel on Ctrl-C, print the report.
async fn drive_daemon(target: Target, request: SearchRequest, json: bool) -> Result<u8, CommandError> {
    let mut interrupt = interrupts()?;
    let mut client = DaemonClient::connect(&target).await?;
    let job = client.start(&request).await?.job_id;
    let bar = std::io::stderr().is_terminal().then(|| progress_bar(&job));
    let mut cancelled = false;
    let result = loop {
        // A call dropped by Ctrl-C leaves the connection usable (both clients are cancel-safe).
        let update = tokio::select! {
            u = client.next_update(&job) => Some(u?),
            _ = interrupt.recv(), if !cancelled => None,
        };
        match update {
            None => {
                cancelled = true;
                client.cancel(&job).await?;
            }
            Some(JobStatus::Finished(f)) => break f.result,
            Some(JobStatus::Running(p)) => {
                if let Some(bar) = &bar {
                    show(bar, &p);
                }
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(print_result(&result, json))
}

fn show(bar: &ProgressBar, p: &nonce_api::Progress) {
    // The bar counts in u64: a whole 64-bit space (2^64) shows as one short of it.
    let clamp = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    bar.set_length(clamp(p.total));
    bar.set_position(clamp(p.searched));
    bar.set_message(format!("{} · {} workers", human_rate(p.rate), p.workers));
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
