//! `JobSpec`: a search request once validated, before it becomes a running job: the puzzle,
//! the fleet, where the workers run and how (the transport's settings included).

use super::parse::UsageError;
use super::timings::WorkerTimings;
use aws_transport::ecs::EcsSettings;
use nonce_core::job::{InboxRule, JobConfig};
use nonce_core::startup::StartupEstimate;
use nonce_kernel::Backend;
use protocol::auth::JobSecret;
use protocol::{JobId, Mode, NonceRange, Puzzle};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a job's workers run (`--launcher`, `launcher` in a request or the daemon's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    /// Worker actors in this process.
    #[default]
    Threads,
    /// `nonce-worker` processes on this machine (over their pipes, or over aws).
    Process,
    /// Fargate tasks (aws only).
    Ecs,
}

impl LauncherKind {
    /// The kind a name (as flags and JSON give it) means.
    pub fn parse(name: &str) -> Result<Self, UsageError> {
        match name {
            "threads" => Ok(LauncherKind::Threads),
            "process" => Ok(LauncherKind::Process),
            "ecs" => Ok(LauncherKind::Ecs),
            other => Err(UsageError(format!("unknown launcher {other:?} (threads, process or ecs)"))),
        }
    }

    /// Whether this launcher can start workers that talk over `transport`: the one rule
    /// (Fargate tasks reach the coordinator only through SQS), checked for flags, requests
    /// and the daemon's config alike.
    pub fn check_transport(self, transport: TransportKind) -> Result<(), UsageError> {
        match (self, transport) {
            (LauncherKind::Ecs, TransportKind::Memory) => Err(UsageError(
                "the ecs launcher needs the aws transport (--launcher ecs --transport aws)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The name on flags and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            LauncherKind::Threads => "threads",
            LauncherKind::Process => "process",
            LauncherKind::Ecs => "ecs",
        }
    }
}

/// Which capacity an `ecs` job's workers run on (`--capacity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CapacityKind {
    /// On-demand Fargate: never interrupted.
    #[default]
    Fargate,
    /// Fargate Spot: about half the price or less, and interrupted with two minutes' notice
    /// (a worker's SIGTERM sends its progress and leaves; its range is re-sharded).
    Spot,
    /// Every other worker on Spot: half the saving, and an interruption never takes more
    /// than half the fleet.
    Mixed,
    /// The planner's choice: the cheapest of the three Fargate kinds that keeps the promise
    /// (`--max-time` with `--confidence`); on-demand without a plan.
    Auto,
    /// EC2 GPU instances (the deployment's GPU capacity provider and task definition): one
    /// worker an instance, hashing on its GPU. Never chosen by `Auto`: GPU capacity is a
    /// deployment's choice, and its instances start in minutes, not seconds.
    Gpu,
}

impl CapacityKind {
    /// The name `--capacity` takes.
    pub fn name(self) -> &'static str {
        match self {
            CapacityKind::Fargate => "fargate",
            CapacityKind::Spot => "spot",
            CapacityKind::Mixed => "mixed",
            CapacityKind::Auto => "auto",
            CapacityKind::Gpu => "gpu",
        }
    }

    /// The kind a name means (`on-demand` is `fargate`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "fargate" | "on-demand" => Ok(CapacityKind::Fargate),
            "spot" => Ok(CapacityKind::Spot),
            "mixed" => Ok(CapacityKind::Mixed),
            "auto" => Ok(CapacityKind::Auto),
            "gpu" => Ok(CapacityKind::Gpu),
            _ => Err(format!("unknown capacity {s:?} (fargate, spot, mixed, auto or gpu)")),
        }
    }

    /// The capacities a plan weighs: all three for `Auto`, else this one.
    pub fn weighed(self) -> &'static [CapacityKind] {
        match self {
            CapacityKind::Auto => &[CapacityKind::Fargate, CapacityKind::Spot, CapacityKind::Mixed],
            CapacityKind::Fargate => &[CapacityKind::Fargate],
            CapacityKind::Spot => &[CapacityKind::Spot],
            CapacityKind::Mixed => &[CapacityKind::Mixed],
            CapacityKind::Gpu => &[CapacityKind::Gpu],
        }
    }

    /// The share of the fleet on Spot.
    pub fn spot_share(self) -> f64 {
        match self {
            CapacityKind::Fargate | CapacityKind::Auto | CapacityKind::Gpu => 0.0,
            CapacityKind::Spot => 1.0,
            CapacityKind::Mixed => 0.5,
        }
    }

    /// Where the job's `n`-th launched worker runs.
    pub fn provider_of(self, n: usize) -> aws_transport::ecs::Provider {
        use aws_transport::ecs::Provider;
        match self {
            CapacityKind::Spot => Provider::FargateSpot,
            CapacityKind::Mixed if n % 2 == 1 => Provider::FargateSpot,
            CapacityKind::Gpu => Provider::Gpu,
            CapacityKind::Fargate | CapacityKind::Mixed | CapacityKind::Auto => Provider::Fargate,
        }
    }
}

/// How coordinator and workers talk (`--transport`, `transport` in a request or the
/// daemon's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// In-process messages (process workers: their pipes).
    #[default]
    Memory,
    /// SQS and SNS.
    Aws,
}

impl TransportKind {
    /// The kind a name (as flags and JSON give it) means.
    pub fn parse(name: &str) -> Result<Self, UsageError> {
        match name {
            "memory" => Ok(TransportKind::Memory),
            "aws" => Ok(TransportKind::Aws),
            other => Err(UsageError(format!("unknown transport {other:?} (memory or aws)"))),
        }
    }

    /// The name on flags and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Memory => "memory",
            TransportKind::Aws => "aws",
        }
    }
}

/// A validated search request.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// What is hashed.
    pub puzzle: Puzzle,
    /// When the answer is proven.
    pub mode: Mode,
    /// The nonces searched.
    pub range: NonceRange,
    /// Workers launched at the start.
    pub workers: usize,
    /// Hashing threads per in-process worker.
    pub threads_per_worker: usize,
    /// The time limit.
    pub deadline: Option<Duration>,
    /// Heartbeat, stall and orphan timings.
    pub timings: WorkerTimings,
    /// The hashing kernel.
    pub backend: Backend,
    /// Where workers run.
    pub launcher: LauncherKind,
    /// How they talk.
    pub transport: TransportKind,
    /// Replacement workers the job may launch for ones that stall or die (beyond `workers`);
    /// 0 re-shards lost ranges across the live workers only.
    pub replacements: usize,
    /// Progress of an earlier run of the same job (daemon recovery).
    pub resume: Option<nonce_core::job::Snapshot>,
    /// The start-up the planner used for `--confidence` (and where it came from).
    pub startup: Option<StartupEstimate>,
    /// Delays each in-process worker's start (`experiment planner --startup-dist`); `None`
    /// everywhere else.
    pub launch_delay: Option<LaunchDelay>,
    /// The job's secret when resuming it (the journal keeps it); a new job draws its own.
    pub secret: Option<JobSecret>,
    /// Share bits: asked for, or sized by `SearchRequest::spec_with` from the rate it knew;
    /// `None` (a spec built by hand): sized at the default rate when the job starts.
    pub share_bits: Option<u32>,
    /// Fraction of claimed work spot-checked; `None`: the defaults of `nonce_core::proof`.
    pub spot_check: Option<f64>,
    /// Capacity of an `ecs` job (resolved from `Auto` by the planner).
    pub capacity: CapacityKind,
    /// The planner's plan, when `--confidence` asked for one.
    pub planned: Option<nonce_core::planner::Plan>,
    /// Launches of in-process workers through this (simulated) account's launch buckets
    /// (`experiment planner --launch-quota`); `None` everywhere else.
    pub launch_gate: Option<crate::request::launch_gate::SharedGate>,
    /// The `nonce-worker` binary the `process` launcher starts (the program's
    /// `NONCE_WORKER_BIN`); `None`: the one beside this executable.
    pub worker_binary: Option<std::path::PathBuf>,
}

/// A source of per-worker start delays, drawn once per launched worker. It exists so the
/// planner experiment can give local workers a Fargate-like start-up distribution for real:
/// the `threads` launcher waits this long before it starts the worker, so the `Job` sees the
/// late `Hello` exactly as it would see a slow task.
#[derive(Clone)]
pub struct LaunchDelay(Arc<Mutex<dyn FnMut() -> Duration + Send>>);

impl LaunchDelay {
    /// Delays drawn from `draw`, one call per worker.
    pub fn new(draw: impl FnMut() -> Duration + Send + 'static) -> Self {
        LaunchDelay(Arc::new(Mutex::new(draw)))
    }

    /// The next worker's delay.
    pub fn draw(&self) -> Duration {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (*f)()
    }
}

impl std::fmt::Debug for LaunchDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaunchDelay")
    }
}

impl JobSpec {
    /// A spec with embedded defaults: one worker per CPU, one hashing thread each.
    pub fn new(puzzle: Puzzle, mode: Mode, range: NonceRange) -> Self {
        JobSpec {
            puzzle,
            mode,
            range,
            workers: cpus(),
            threads_per_worker: 1,
            deadline: None,
            timings: WorkerTimings::default(),
            backend: Backend::detect(),
            launcher: LauncherKind::Threads,
            transport: TransportKind::Memory,
            replacements: cpus(),
            resume: None,
            startup: None,
            launch_delay: None,
            secret: None,
            share_bits: None,
            spot_check: None,
            capacity: CapacityKind::Fargate,
            planned: None,
            worker_binary: None,
            launch_gate: None,
        }
    }

    /// The start-up history this job's workers are learned into and planned from: the
    /// launcher's, but GPU workers' apart (an EC2 instance's boot takes minutes, and would
    /// otherwise stretch the Fargate workers' p95).
    pub fn startup_key(&self) -> &'static str {
        match (self.launcher, self.capacity) {
            (LauncherKind::Ecs, CapacityKind::Gpu) => nonce_core::planner::GPU_STARTUP_KEY,
            (launcher, _) => launcher.name(),
        }
    }

    /// vCPUs the job holds while it runs, what quotas in vCPU-seconds count: each GPU worker
    /// its whole instance's (`nonce_core::pricing::GPU_WORKER`), any other its hashing threads.
    pub fn vcpus(&self) -> f64 {
        let per_worker = if self.capacity == CapacityKind::Gpu {
            nonce_core::pricing::GPU_WORKER.vcpus
        } else {
            self.threads_per_worker as f64
        };
        self.workers as f64 * per_worker
    }

    /// The job's secret: the one it resumes with, or 32 bytes from the OS's generator.
    pub fn secret(&self) -> JobSecret {
        self.secret.clone().unwrap_or_else(|| JobSecret::from_bytes(rand::random()))
    }

    /// Share bits: as asked (or as [`super::SearchRequest::spec_with`] sized them), else
    /// [`Self::default_share_bits`] at 50 M nonces/s a thread, about an AVX-512 or SHA-NI
    /// core. Pure: it reads no calibration file (it runs in the coordinator's actor).
    pub fn share_bits(&self) -> u32 {
        self.share_bits.unwrap_or_else(|| self.default_share_bits(super::calibration::DEFAULT_PER_THREAD))
    }

    /// About eight shares per heartbeat for a worker of this spec whose threads each hash
    /// `per_thread` nonces a second (a GPU worker: its stated rate, whatever this machine's
    /// CPU does); see `nonce_core::proof`.
    pub fn default_share_bits(&self, per_thread: f64) -> u32 {
        let rate = if self.capacity == CapacityKind::Gpu {
            nonce_core::pricing::GPU_WORKER.rate
        } else {
            per_thread * self.threads_per_worker as f64
        };
        nonce_core::proof::share_bits_for_job(rate, self.timings.heartbeat, self.range.len(), self.workers)
    }

    /// The job config for this spec under `job`, with `secret`, its workers' inboxes at
    /// `inbox`.
    pub fn config(&self, job: JobId, secret: JobSecret, inbox: InboxRule) -> JobConfig {
        let mut cfg = JobConfig::new(job, secret, self.puzzle.clone(), self.mode, self.range, self.workers);
        cfg.inbox = inbox;
        cfg.share_bits = self.share_bits();
        if let Some(f) = self.spot_check {
            cfg.spot_check = f;
            cfg.spot_check_lowest = f.max(cfg.spot_check_lowest.min(f * 4.0));
        }
        cfg.deadline = self.deadline;
        cfg.max_launches = self.workers + self.replacements;
        cfg.resume = self.resume.clone();
        cfg.incarnation = rand::random();
        cfg.keepalive = self.timings.keepalive();
        cfg.stall_timeout = self.timings.stall_timeout;
        cfg.heartbeat = self.timings.heartbeat;
        cfg.paced_launches = self.launcher == LauncherKind::Ecs || self.launch_gate.is_some();
        if self.transport == TransportKind::Aws {
            // About a minute of one hashing thread: a few requests per shard stay cheap.
            cfg.min_shard = 1 << 30;
            cfg.min_steal = 1 << 26;
        }
        cfg
    }
}

/// CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How the aws transport is set up: CLI flags or the daemon's `[aws]` and `[ecs]` tables.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    /// Resource name prefix (`--aws-prefix`).
    pub prefix: String,
    /// Create the queues and topic if missing (`--aws-bootstrap`).
    pub bootstrap: bool,
    /// Settings of the `ecs` launcher, when it is used.
    pub ecs: Option<EcsSettings>,
    /// How fast the `ecs` launcher may launch, and how long it retries.
    pub launch: LaunchPacing,
}

/// The account's launch quotas and the retry bounds (`[ecs]` in the daemon's config).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchPacing {
    /// The buckets RunTask is paced to.
    pub quotas: nonce_core::launch_quota::LaunchQuotas,
    /// How failed launches are tried again.
    pub retry: RetryPolicy,
}

/// How failed launches are tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// A worker whose launch has found no capacity (or stayed throttled) this long after its
    /// first try is given up.
    pub give_up_after: Duration,
    /// The first wait after "no capacity", doubled each time up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// Calls in flight at once.
    pub in_flight: usize,
}

/// Capacity comes back in minutes, not seconds; past five, a job is better off with the
/// workers it has (its deadline is usually minutes too). 20 calls in flight cover the
/// documented 20 calls a second at a call's ~1 s worst latency.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            give_up_after: Duration::from_secs(300),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            in_flight: 20,
        }
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            prefix: "nonce-cloud".into(),
            bootstrap: false,
            ecs: None,
            launch: LaunchPacing::default(),
        }
    }
}
