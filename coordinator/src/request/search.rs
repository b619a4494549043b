//! `SearchRequest`: a search as a user states it, the same whether it comes from `noncectl`
//! flags or from a JSON-RPC `search.start`. One validation path for both.

use super::parse::{parse_duration_flag, parse_hex, parse_nbits, UsageError};
use super::spec::{cpus, AwsSettings, CapacityKind, JobSpec, LaunchPacing, LauncherKind, TransportKind};
use super::timings::WorkerTimings;
use aws_transport::ecs::EcsSettings;
use nonce_core::pricing;
use nonce_core::startup::{StartupBook, StartupEstimate, StartupSource};
use protocol::{Encoding, Layout, Mode, NonceRange, Puzzle, Target};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most workers a search may ask for (quotas may say fewer).
pub const MAX_LOCAL_WORKERS: usize = 1024;

/// The fields mirror `noncectl search`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The block as text (`--block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// The block as hex (`--block-hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hex: Option<String>,
    /// An 80-byte Bitcoin header as hex (`--header-hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_hex: Option<String>,
    /// Leading zero bits a golden hash needs (`--difficulty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<u32>,
    /// A compact nBits target instead (`--target-bits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_bits: Option<String>,
    /// How the nonce is written: `be32`, `le32`, `be64`, `le64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `first`, `lowest` or `exhaustive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The nonces searched, `START..END` (default: the encoding's whole space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Workers to launch (or planned from `max_time` and `confidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Hashing threads per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The time limit, a duration (`90`, `30s`, `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_text")]
    pub max_time: Option<String>,
    /// The chance of an answer within `max_time` the planner must promise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// How coordinator and workers talk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportKind>,
    /// Where workers run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<LauncherKind>,
    /// Replacement workers for ones that stall or die (default: as many as `workers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacements: Option<usize>,
    /// Liveness timings (durations like `1s`): defaults suit the transport.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_text")]
    pub heartbeat: Option<String>,
    /// Silence after which a worker's shards go to others.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_text")]
    pub stall_timeout: Option<String>,
    /// Silence after which a worker leaves its dead coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_text")]
    pub orphan_timeout: Option<String>,
    /// Share bits (default: about 8 shares per heartbeat per worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_bits: Option<u32>,
    /// Fraction of claimed work spot-checked (default 1/1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_check: Option<f64>,
    /// aws and ecs settings: CLI only (the daemon takes them from its config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_prefix: Option<String>,
    /// Create the deployment's queues and topic if missing (emulators, dev accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_bootstrap: Option<bool>,
    /// The ECS cluster (`ecs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_cluster: Option<String>,
    /// The worker task definition (`ecs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_task_definition: Option<String>,
    /// Subnets, comma-separated (`ecs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_subnets: Option<String>,
    /// Security groups, comma-separated (`ecs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_security_groups: Option<String>,
    /// The worker container's name in the task definition (`ecs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_container: Option<String>,
    /// Give tasks public IPs (subnets without a NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_public_ip: Option<bool>,
    /// The account's launch quotas when raised, `BURST:RATE` (tasks launched; RunTask calls)
    /// and how long a launch without capacity is retried: CLI only, like the other ecs settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_task_quota: Option<String>,
    /// The account's RunTask call quota, `BURST:RATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_call_quota: Option<String>,
    /// How long a worker's launch is retried for want of capacity (a duration).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "duration_text")]
    pub ecs_capacity_retry: Option<String>,
    /// Capacity of an `ecs` job: fargate, spot, mixed, auto or gpu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// The GPU worker task definition (`--capacity gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_gpu_task_definition: Option<String>,
    /// The capacity provider of the GPU instances (`--capacity gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_gpu_capacity_provider: Option<String>,
}

/// The resource prefix when none is given.
pub const DEFAULT_AWS_PREFIX: &str = "nonce-cloud";
/// The worker container's name in the task definition when none is given.
pub const DEFAULT_ECS_CONTAINER: &str = "nonce-worker";

/// A duration field of a request: text in the duration grammar (`"90s"`, `"1m30s"`), or a JSON
/// number of seconds (`90`, `1.5`), as a bare number is on the command line.
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    // Through a Value: an untagged enum would lose the number (exact numbers are buffered).
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a duration (text like \"90s\" or a number of seconds), not {other}"
        ))),
    }
}

/// What the planner knows that a request does not say: start-up histories and the hash rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knowledge<'a> {
    /// Start-ups per launcher (the daemon's history); `None`: the history in [`Self::saved_in`].
    pub startups: Option<&'a StartupBook>,
    /// The directory where the program keeps its calibration and start-up history
    /// (`noncectl`: its cache directory, which it names); `None`: nothing saved is read, and
    /// a rate not given is measured without being kept.
    pub saved_in: Option<&'a std::path::Path>,
    /// One hashing thread's rate for a backend, measured already (the daemon calibrates at
    /// start, off the request path); `None`: the saved figure, else a 0.3 s measurement now
    /// (a one-shot CLI can afford it; a daemon answering requests cannot).
    pub rate: Option<(nonce_kernel::Backend, f64)>,
    /// The account's launch quotas (the daemon's `[ecs]`); `None`: the request's, else
    /// Fargate's documented ones.
    pub quotas: Option<nonce_core::launch_quota::LaunchQuotas>,
    /// The hashing backend the program chose (`NONCE_KERNEL`, read by the program); `None`:
    /// the fastest this CPU runs.
    pub backend: Option<nonce_kernel::Backend>,
    /// The `nonce-worker` binary (`NONCE_WORKER_BIN`, read by the program); `None`: beside
    /// this executable.
    pub worker_binary: Option<&'a std::path::Path>,
}

impl Knowledge<'_> {
    /// Nonces a second of one thread of `backend`.
    pub fn per_thread_rate(&self, backend: nonce_kernel::Backend) -> f64 {
        match self.rate {
            Some((b, r)) if b == backend => r,
            // Known but for another backend: the saved figure or the documented default,
            // never a measurement on this path.
            Some(_) => self.known_rate(backend),
            None => match self.saved_in {
                Some(dir) => super::calibration::per_thread_rate(dir, backend),
                None => super::calibration::measure(backend),
            },
        }
    }

    /// As [`Self::per_thread_rate`], but never a measurement: what is known, else the saved
    /// figure, else the documented default (what share bits are sized from: a search never
    /// waits for a calibration run to choose them).
    pub fn known_rate(&self, backend: nonce_kernel::Backend) -> f64 {
        match self.rate {
            Some((b, r)) if b == backend => r,
            _ => self
                .saved_in
                .and_then(|dir| super::calibration::saved_rate(dir, backend))
                .unwrap_or(super::calibration::DEFAULT_PER_THREAD),
        }
    }
}

impl SearchRequest {
    /// The puzzle named by the block and goal fields.
    pub fn puzzle(&self) -> Result<Puzzle, UsageError> {
        let target = match (self.difficulty, &self.target_bits) {
            (Some(d), None) => Target::LeadingZeros(d),
            (None, Some(bits)) => Target::Compact(parse_nbits(bits)?),
            (Some(_), Some(_)) => {
                return Err(UsageError("give only one of difficulty and target_bits".into()))
            }
            (None, None) => return Err(UsageError("give one of --difficulty or --target-bits".into())),
        };
        let layout = match (&self.block, &self.block_hex, &self.header_hex) {
            (Some(text), None, None) => {
                Layout::Append { block: text.as_bytes().to_vec(), encoding: self.encoding()? }
            }
            (None, Some(h), None) => {
                Layout::Append { block: parse_hex("--block-hex", h)?, encoding: self.encoding()? }
            }
            (None, None, Some(h)) => {
                if self.encoding.is_some() {
                    return Err(UsageError(
                        "--encoding does not apply to --header-hex (the nonce is le32 at bytes 76..80)"
                            .into(),
                    ));
                }
                Layout::Header { header: parse_hex("--header-hex", h)? }
            }
            (None, None, None) => {
                return Err(UsageError("give one of --block, --block-hex or --header-hex".into()))
            }
            _ => return Err(UsageError("give only one of --block, --block-hex and --header-hex".into())),
        };
        Puzzle::new(layout, target).map_err(|e| UsageError(e.to_string()))
    }

    fn encoding(&self) -> Result<Encoding, UsageError> {
        match &self.encoding {
            None => Ok(Encoding::Be32),
            Some(e) => e.parse().map_err(|e: protocol::PuzzleError| UsageError(e.to_string())),
        }
    }

    /// The validated job spec, with embedded defaults for what is not given, knowing nothing
    /// saved ([`Knowledge::default`]): with `confidence`, the fleet is planned with the
    /// documented start-up defaults and a rate measured now.
    pub fn spec(&self) -> Result<JobSpec, UsageError> {
        self.spec_with(Knowledge::default())
    }

    /// As [`Self::spec`], planning with what the daemon knows instead of the CLI's caches
    /// (read only when `confidence` needs them).
    pub fn spec_with(&self, known: Knowledge<'_>) -> Result<JobSpec, UsageError> {
        let puzzle = self.puzzle()?;
        let mode: Mode = self.mode.as_deref().unwrap_or("first").parse().map_err(UsageError)?;
        let space = puzzle.space();
        let range = match &self.range {
            Some(r) => NonceRange::parse(r, space.end).map_err(|e| UsageError(e.to_string()))?,
            None => space,
        };
        let mut spec = JobSpec::new(puzzle, mode, range);
        if let Some(b) = known.backend {
            spec.backend = b;
        }
        spec.worker_binary = known.worker_binary.map(std::path::Path::to_path_buf);
        if let Some(w) = self.workers {
            if w == 0 || w > MAX_LOCAL_WORKERS {
                return Err(UsageError(format!("--workers must be 1..={MAX_LOCAL_WORKERS}, not {w}")));
            }
            spec.workers = w;
        }
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 4 * cpus().max(64) {
            return Err(UsageError(format!("--threads {threads} is out of range")));
        }
        spec.threads_per_worker = threads;
        spec.deadline = self.max_time.as_deref().map(|t| parse_duration_flag("max-time", t)).transpose()?;
        spec.transport = self.transport.unwrap_or_default();
        spec.launcher = self.launcher.unwrap_or_default();
        spec.launcher.check_transport(spec.transport)?;
        spec.timings = self.timings(spec.transport)?;
        spec.capacity = match self.capacity.as_deref() {
            None => CapacityKind::Fargate,
            Some(c) => CapacityKind::parse(c).map_err(UsageError)?,
        };
        if self.capacity.is_some() && spec.launcher != LauncherKind::Ecs {
            return Err(UsageError("--capacity chooses ECS capacity: it needs --launcher ecs".into()));
        }
        if spec.capacity == CapacityKind::Auto && self.confidence.is_none() {
            // Nothing to weigh Spot's risk against: on-demand.
            spec.capacity = CapacityKind::Fargate;
        }
        // Settings a request carries must be whole; a request without any (to a daemon, whose
        // config supplies them) is checked where they are chosen: `aws_settings` in-process,
        // the daemon's config check in nonced.
        if self.has_aws_settings() {
            self.aws_settings()?;
        }
        if let Some(p) = self.confidence {
            self.plan_fleet(&mut spec, p, known)?;
        }
        spec.share_bits = match self.share_bits {
            Some(b) if (1..=64).contains(&b) => Some(b),
            Some(b) => return Err(UsageError(format!("--share-bits must be 1..=64, not {b}"))),
            // Sized here, from the rate the program knows, so that starting the job (in the
            // coordinator's actor) reads no calibration file.
            None => Some(spec.default_share_bits(known.known_rate(spec.backend))),
        };
        if let Some(f) = self.spot_check {
            if !(0.0..=1.0).contains(&f) {
                return Err(UsageError(format!("--spot-check must be a fraction from 0 to 1, not {f}")));
            }
            spec.spot_check = Some(f);
        }
        spec.replacements = match self.replacements {
            Some(r) if r > MAX_LOCAL_WORKERS => {
                return Err(UsageError(format!("--replacements must be 0..={MAX_LOCAL_WORKERS}, not {r}")))
            }
            Some(r) => r,
            None => spec.workers,
        };
        Ok(spec)
    }

    /// Liveness timings: the transport's defaults, then what the request says.
    fn timings(&self, transport: TransportKind) -> Result<WorkerTimings, UsageError> {
        let mut t = match transport {
            TransportKind::Memory => WorkerTimings::default(),
            TransportKind::Aws => WorkerTimings::aws(),
        };
        let given = |v: &Option<String>, flag: &str| -> Result<Option<Duration>, UsageError> {
            v.as_deref().map(|d| parse_duration_flag(flag, d)).transpose()
        };
        if let Some(h) = given(&self.heartbeat, "heartbeat")? {
            t.heartbeat = h;
            if self.stall_timeout.is_none() {
                t.stall_timeout = t.stall_timeout.max(h * 3);
            }
        }
        if let Some(s) = given(&self.stall_timeout, "stall-timeout")? {
            t.stall_timeout = s;
        }
        if let Some(o) = given(&self.orphan_timeout, "orphan-timeout")? {
            t.orphan_timeout = o;
        }
        if t.heartbeat < Duration::from_millis(10) {
            return Err(UsageError("--heartbeat must be at least 10ms".into()));
        }
        if t.stall_timeout < t.heartbeat * 2 {
            return Err(UsageError(format!(
                "--stall-timeout ({:?}) must be at least twice the heartbeat ({:?})",
                t.stall_timeout, t.heartbeat
            )));
        }
        if t.orphan_timeout < Duration::from_secs(1) {
            return Err(UsageError("--orphan-timeout must be at least 1s".into()));
        }
        Ok(t)
    }

    /// Whether any aws or ecs setting is given (the daemon refuses them: its config sets them).
    pub fn has_aws_settings(&self) -> bool {
        self.aws_prefix.is_some()
            || self.aws_bootstrap.is_some()
            || self.ecs_cluster.is_some()
            || self.ecs_task_definition.is_some()
            || self.ecs_subnets.is_some()
            || self.ecs_security_groups.is_some()
            || self.ecs_container.is_some()
            || self.ecs_public_ip.is_some()
            || self.ecs_task_quota.is_some()
            || self.ecs_call_quota.is_some()
            || self.ecs_capacity_retry.is_some()
            || self.ecs_gpu_task_definition.is_some()
            || self.ecs_gpu_capacity_provider.is_some()
    }

    /// How fast `ecs` may launch (the request's quotas, else Fargate's documented ones) and how
    /// long it retries.
    pub fn launch_pacing(&self) -> Result<LaunchPacing, UsageError> {
        let mut p = LaunchPacing::default();
        let bucket = |flag: &str, v: &Option<String>, into: &mut nonce_core::launch_quota::Bucket| {
            if let Some(text) = v {
                *into = nonce_core::launch_quota::Bucket::parse(text)
                    .map_err(|e| UsageError(format!("--{flag}: {e}")))?;
            }
            Ok::<(), UsageError>(())
        };
        bucket("ecs-task-quota", &self.ecs_task_quota, &mut p.quotas.tasks)?;
        bucket("ecs-call-quota", &self.ecs_call_quota, &mut p.quotas.calls)?;
        p.quotas.validate().map_err(|e| UsageError(e.to_string()))?;
        if let Some(d) = &self.ecs_capacity_retry {
            p.retry.give_up_after = super::parse::parse_duration_flag_or_zero("ecs-capacity-retry", d)?;
        }
        Ok(p)
    }

    /// The aws settings this request asks for (`None` with the memory transport).
    pub fn aws_settings(&self) -> Result<Option<AwsSettings>, UsageError> {
        if self.transport != Some(TransportKind::Aws) {
            if self.has_aws_settings() {
                return Err(UsageError("--aws-* and --ecs-* flags need --transport aws".into()));
            }
            return Ok(None);
        }
        let list = |v: &Option<String>| -> Vec<String> {
            v.as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let ecs = (self.launcher == Some(LauncherKind::Ecs)).then(|| EcsSettings {
            cluster: self.ecs_cluster.clone().unwrap_or_default(),
            task_definition: self.ecs_task_definition.clone().unwrap_or_default(),
            subnets: list(&self.ecs_subnets),
            security_groups: list(&self.ecs_security_groups),
            container: self.ecs_container.clone().unwrap_or_else(|| DEFAULT_ECS_CONTAINER.into()),
            assign_public_ip: self.ecs_public_ip.unwrap_or(false),
            gpu: aws_transport::ecs::GpuCapacity::from_settings(
                self.ecs_gpu_task_definition.as_deref(),
                self.ecs_gpu_capacity_provider.as_deref(),
            ),
        });
        if let Some(e) = &ecs {
            e.check().map_err(|e| UsageError(e.to_string()))?;
            if self.capacity.as_deref() == Some(CapacityKind::Gpu.name()) && e.gpu.is_none() {
                return Err(UsageError(
                    "--capacity gpu needs --ecs-gpu-task-definition and --ecs-gpu-capacity-provider".into(),
                ));
            }
        } else if self.ecs_cluster.is_some()
            || self.ecs_task_definition.is_some()
            || self.ecs_subnets.is_some()
            || self.ecs_gpu_task_definition.is_some()
            || self.ecs_gpu_capacity_provider.is_some()
        {
            return Err(UsageError("--ecs-* flags need --launcher ecs".into()));
        }
        let prefix = self.aws_prefix.clone().unwrap_or_else(|| DEFAULT_AWS_PREFIX.into());
        aws_transport::ResourceNames::new(&prefix).map_err(|e| UsageError(e.to_string()))?;
        let launch = self.launch_pacing()?;
        Ok(Some(AwsSettings { prefix, bootstrap: self.aws_bootstrap.unwrap_or(false), ecs, launch }))
    }

    /// `--max-time T --confidence P`: the planner picks the fleet; the deadline ends the job.
    fn plan_fleet(
        &self,
        spec: &mut JobSpec,
        confidence: f64,
        known: Knowledge<'_>,
    ) -> Result<(), UsageError> {
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(UsageError(format!(
                "--confidence must be between 0 and 1 (exclusive), not {confidence}"
            )));
        }
        let Some(deadline) = spec.deadline else {
            return Err(UsageError("--confidence needs --max-time (the deadline it promises)".into()));
        };
        if self.workers.is_some() {
            return Err(UsageError("give --workers, or --max-time with --confidence, not both".into()));
        }
        let difficulty = match spec.puzzle.target() {
            protocol::Target::LeadingZeros(d) => d,
            // An nBits target is about as hard as its leading zero bits.
            protocol::Target::Compact(_) => leading_zero_bits_of_target(&spec.puzzle),
        };
        // GPU workers' start-ups are learned apart (`startup_key`), with their own default.
        let key = spec.startup_key();
        let startup = match known.startups {
            Some(book) => book.estimate(key),
            None => match known.saved_in {
                Some(dir) => super::startup::load(&dir.join(super::startup::FILE)).estimate(key),
                None => StartupBook::default().estimate(key),
            },
        }
        .unwrap_or(StartupEstimate { seconds: 0.1, source: StartupSource::Default });
        let ecs = spec.launcher == LauncherKind::Ecs;
        let base = nonce_core::planner::PlanInput {
            difficulty,
            max_time: deadline.as_secs_f64(),
            confidence,
            rate: known.per_thread_rate(spec.backend) * spec.threads_per_worker as f64,
            startup: startup.seconds,
            space: spec.range.len() as f64,
            // Local workers share this machine's CPUs; Fargate tasks bring their own (the
            // daemon's max_fleet quota, set from the account's vCPU quota, bounds them).
            capacity: match spec.launcher {
                LauncherKind::Ecs => MAX_LOCAL_WORKERS,
                LauncherKind::Threads | LauncherKind::Process => (cpus() / spec.threads_per_worker).max(1),
            },
            // Fargate's price for the default worker task; local work is not priced.
            worker_vcpus: if ecs { pricing::DEFAULT_WORKER_VCPUS } else { spec.threads_per_worker as f64 },
            worker_memory_gb: if ecs { pricing::DEFAULT_WORKER_GB } else { 0.0 },
            vcpu_hour: if ecs { nonce_core::planner::FARGATE_VCPU_HOUR } else { 0.0 },
            gb_hour: if ecs { nonce_core::planner::FARGATE_GB_HOUR } else { 0.0 },
            // Fargate tasks start as fast as the account's launch quotas allow.
            ramp: match (ecs, known.quotas) {
                (false, _) => None,
                (true, Some(q)) => Some(q),
                (true, None) => Some(self.launch_pacing()?.quotas),
            },
            spot: None,
        };
        let kinds = spec.capacity.weighed();
        let options: Vec<nonce_core::planner::PlanInput> = kinds
            .iter()
            .map(|&k| match k {
                CapacityKind::Gpu => pricing::GPU_WORKER.priced(base.clone()),
                _ => nonce_core::planner::PlanInput {
                    spot: (k.spot_share() > 0.0).then(|| pricing::spot_terms(k.spot_share())),
                    ..base.clone()
                },
            })
            .collect();
        let Some((chosen, plan)) = nonce_core::planner::cheapest(&options) else {
            return Err(UsageError("no capacity to plan for".into()));
        };
        spec.capacity = kinds[chosen];
        if let Some(why) = &plan.impossible {
            return Err(UsageError(format!(
                "cannot promise a golden nonce with probability {confidence}: {why}"
            )));
        }
        tracing::info!(
            workers = plan.workers,
            probability = plan.probability,
            expected_s = plan.expected_seconds,
            startup_s = startup.seconds,
            startup_from = %startup.source.describe(),
            launch_ramp_s = plan.launch_ramp_s,
            capacity = spec.capacity.name(),
            "planned the fleet"
        );
        spec.workers = plan.workers;
        spec.startup = Some(startup);
        spec.planned = Some(plan);
        Ok(())
    }
}

/// Leading zero bits of an nBits puzzle's expanded target: the difficulty it is close to.
fn leading_zero_bits_of_target(p: &Puzzle) -> u32 {
    match p.target() {
        Target::Compact(bits) => {
            protocol::pow::expand_compact(bits).map_or(0, |t| protocol::pow::leading_zeros(&t))
        }
        Target::LeadingZeros(d) => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SearchRequest {
        SearchRequest {
            block: Some("COMSM0010cloud".into()),
            difficulty: Some(24),
            workers: Some(2),
            range: Some("0..0x40000000".into()),
            ..SearchRequest::default()
        }
    }

    /// The daemon calibrates in memory at start; the shares a job asks for must be sized from
    /// that figure, here and not later in the coordinator's actor from a file.
    #[test]
    fn share_bits_are_sized_from_the_rate_the_program_knows() {
        let backend = nonce_kernel::Backend::Portable;
        for rate in [1e3, 1e9] {
            let known =
                Knowledge { rate: Some((backend, rate)), backend: Some(backend), ..Knowledge::default() };
            let spec = request().spec_with(known).expect("a valid request");
            let want =
                nonce_core::proof::share_bits_for_job(rate, spec.timings.heartbeat, spec.range.len(), 2);
            assert_eq!(spec.share_bits, Some(want), "at {rate} nonces/s a thread");
            assert_eq!(spec.share_bits(), want);
        }
    }

    #[test]
    fn share_bits_asked_for_are_kept_and_out_of_range_ones_refused() {
        let mut r = request();
        r.share_bits = Some(7);
        assert_eq!(r.spec().expect("valid").share_bits(), 7);
        r.share_bits = Some(65);
        assert!(r.spec().is_err());
    }
}
