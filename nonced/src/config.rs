//! `nonced`'s configuration: a TOML file (see `infra/nonced.example.toml`), then environment,
//! then flags, each overriding the one before.

use coordinator::request::{LauncherKind, TransportKind};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variables `nonced` reads (each overrides the config file's key). The ECS
/// service sets these instead of shipping a file; see `infra/terraform/daemon.tf`.
pub const ENV_VARS: &[&str] = &[
    "NONCE_CONFIG",
    "NONCE_SOCKET",
    "NONCE_STATE_DIR",
    "NONCE_TRANSPORT",
    "NONCE_LAUNCHER",
    "NONCE_AWS_PREFIX",
    "NONCE_SWEEP_EVERY_S",
    "NONCE_ECS_CLUSTER",
    "NONCE_ECS_TASK_DEFINITION",
    "NONCE_ECS_SUBNETS",
    "NONCE_ECS_SECURITY_GROUPS",
    "NONCE_ECS_CONTAINER",
    "NONCE_ECS_PUBLIC_IP",
    "NONCE_ECS_TASK_QUOTA",
    "NONCE_ECS_CALL_QUOTA",
    "NONCE_ECS_CAPACITY_RETRY",
    "NONCE_ECS_CAPACITY",
    "NONCE_ECS_GPU_TASK_DEFINITION",
    "NONCE_ECS_GPU_CAPACITY_PROVIDER",
    "NONCE_MAX_WORKERS_PER_JOB",
    "NONCE_MAX_CONCURRENT_JOBS",
    "NONCE_MAX_FLEET",
    "NONCE_MAX_VCPU_SECONDS_PER_JOB",
    "NONCE_USER_MAX_WORKERS_PER_JOB",
    "NONCE_USER_MAX_CONCURRENT_JOBS",
    "NONCE_USER_MAX_VCPU_SECONDS_PER_DAY",
    "NONCE_KEEP_FINISHED",
    "NONCE_LOG",
    "NONCE_HTTP_LISTEN",
    "NONCE_HTTP_TLS_CERT",
    "NONCE_HTTP_TLS_KEY",
    "NONCE_HTTP_PLAIN",
    "NONCE_HTTP_FORWARDED_FOR",
    "NONCE_HTTP_METRICS_PUBLIC",
    "NONCE_METRICS_EMF",
    "NONCE_USERS",
    "NONCE_KERNEL",
    "NONCE_WORKER_BIN",
    "NONCE_AWS_CALL_LOG",
];

/// What a daemon that runs Fargate workers cannot do without (when no config file says it).
pub const REQUIRED_ON_ECS: &[&str] = &[
    "NONCE_TRANSPORT",
    "NONCE_LAUNCHER",
    "NONCE_AWS_PREFIX",
    "NONCE_ECS_CLUSTER",
    "NONCE_ECS_TASK_DEFINITION",
    "NONCE_ECS_SUBNETS",
    "NONCE_ECS_SECURITY_GROUPS",
];

/// Finished jobs kept by default: about 10 KB each in memory (request, result) and 1 KB in the
/// journal, so ~10 MB and a restart that replays a few thousand lines.
pub const DEFAULT_KEEP_FINISHED: usize = 1000;

/// The largest vCPU-second quota taken: a thousand vCPUs for a year (3.2e10). Beyond it a
/// budget is no longer a duration (`1e300` made a start request fail on its deadline).
pub const MAX_VCPU_SECONDS: f64 = 1000.0 * 365.0 * 86_400.0;

/// What to do with running jobs on SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnShutdown {
    /// Leave them in the journal; the next start resumes them.
    #[default]
    Keep,
    /// Cancel them and record the cancellation.
    Cancel,
}

/// Limits that keep one user or one mistake from taking the whole machine or account.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub max_workers_per_job: usize,
    pub max_concurrent_jobs: usize,
    /// Workers across all running jobs.
    pub max_fleet: usize,
    /// Worker threads x seconds one job may use; a job with no --max-time gets a deadline from it.
    pub max_vcpu_seconds_per_job: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_workers_per_job: 64,
            max_concurrent_jobs: 4,
            max_fleet: 256,
            max_vcpu_seconds_per_job: 7.0 * 86400.0,
        }
    }
}

/// `[aws]`: where the aws transport's queues and topic are (Terraform's outputs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsTable {
    /// Resource name prefix: queues `<prefix>-events`, `<prefix>-events-dlq`, topic `<prefix>-control`.
    pub prefix: String,
    /// Create missing queues and topic (emulators and dev accounts only).
    pub bootstrap: bool,
    /// How often the daemon sweeps inboxes that dead workers left (and once at start).
    pub sweep_every_s: u64,
}

impl Default for AwsTable {
    fn default() -> Self {
        AwsTable {
            prefix: coordinator::request::DEFAULT_AWS_PREFIX.into(),
            bootstrap: false,
            sweep_every_s: 300,
        }
    }
}

/// `[ecs]`: where the `ecs` launcher runs worker tasks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsTable {
    pub cluster: String,
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    #[serde(default = "default_container")]
    pub container: String,
    #[serde(default)]
    pub assign_public_ip: bool,
    /// The account's Fargate task launch quota, `BURST:RATE` (default 100:20, AWS's).
    #[serde(default)]
    pub task_quota: Option<String>,
    /// The account's RunTask call quota, `BURST:RATE` (default 20:20, AWS's).
    #[serde(default)]
    pub call_quota: Option<String>,
    /// How long a worker whose task finds no Fargate capacity is retried (default 5m).
    #[serde(default)]
    pub capacity_retry: Option<String>,
    /// Capacity of jobs that do not choose: fargate (default), spot, mixed, auto or gpu.
    #[serde(default)]
    pub capacity: Option<String>,
    /// The GPU worker task definition (`--capacity gpu`; infra/terraform/gpu.tf).
    #[serde(default)]
    pub gpu_task_definition: Option<String>,
    /// The capacity provider of the GPU instances; given with `gpu_task_definition`.
    #[serde(default)]
    pub gpu_capacity_provider: Option<String>,
}

impl EcsTable {
    /// The GPU capacity these settings name: present when either GPU setting is (a half-given
    /// pair is refused by `EcsSettings::check`).
    pub fn gpu(&self) -> Option<aws_transport::ecs::GpuCapacity> {
        aws_transport::ecs::GpuCapacity::from_settings(
            self.gpu_task_definition.as_deref(),
            self.gpu_capacity_provider.as_deref(),
        )
    }

    /// The launch pacing these settings give (checked by [`DaemonConfig::check`]).
    pub fn launch_pacing(&self) -> Result<coordinator::request::LaunchPacing, ConfigError> {
        let request = coordinator::request::SearchRequest {
            ecs_task_quota: self.task_quota.clone(),
            ecs_call_quota: self.call_quota.clone(),
            ecs_capacity_retry: self.capacity_retry.clone(),
            ..Default::default()
        };
        let strip = |e: coordinator::request::UsageError| {
            e.0.replace("--ecs-", "[ecs] ")
                .replace("task-quota", "task_quota")
                .replace("call-quota", "call_quota")
                .replace("capacity-retry", "capacity_retry")
        };
        request.launch_pacing().map_err(|e| ConfigError::Invalid(strip(e)))
    }
}

fn default_container() -> String {
    coordinator::request::DEFAULT_ECS_CONTAINER.into()
}

/// `[http]`: the network listener (JSON-RPC over HTTP POST `/rpc` and WebSocket `/ws`,
/// `/healthz`), off unless `listen` is set. TLS from `tls_cert`/`tls_key` (PEM, re-read on
/// SIGHUP), or plain HTTP only when `plain = true` says TLS ends at a load balancer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTable {
    /// `host:port`, e.g. `127.0.0.1:8443` (env `NONCE_HTTP_LISTEN`).
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP: TLS is terminated in front of the daemon (an ALB).
    pub plain: bool,
    /// Connections served at once, from everyone.
    pub max_connections: usize,
    /// Connections at once from one client address.
    pub max_connections_per_ip: usize,
    /// Largest request body or WebSocket message.
    pub max_request_bytes: u32,
    /// A connection that sends nothing for this long is closed (WebSocket clients answer the
    /// daemon's pings, sent at a third of it, so a quiet subscriber stays).
    pub idle_timeout_s: u64,
    /// Failed authentications one client address may make per minute; then 429 until the
    /// minute has passed.
    pub auth_failures_per_minute: u32,
    /// Take the client address for the failed-authentication limit from the last hop of
    /// `X-Forwarded-For` (set this only behind a load balancer that writes it).
    pub forwarded_for: bool,
    /// Serve `/metrics` without a token (a scraper inside the VPC); otherwise admins only.
    pub metrics_public: bool,
}

/// `[metrics]`: CloudWatch Embedded Metric Format lines on stdout (the awslogs driver makes
/// metrics of them: no PutMetricData calls, no IAM).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsTable {
    pub emf: bool,
    /// One line this often (CloudWatch's standard resolution is a minute).
    pub emf_every_s: u64,
}

impl Default for MetricsTable {
    fn default() -> Self {
        MetricsTable { emf: false, emf_every_s: 60 }
    }
}

impl Default for HttpTable {
    fn default() -> Self {
        HttpTable {
            listen: None,
            tls_cert: None,
            tls_key: None,
            plain: false,
            max_connections: 512,
            max_connections_per_ip: 32,
            max_request_bytes: 1 << 20,
            idle_timeout_s: 60,
            auth_failures_per_minute: 10,
            forwarded_for: false,
            metrics_public: false,
        }
    }
}

impl HttpTable {
    /// Refuses a listener that would be unauthenticated-in-transit by accident, or limits
    /// that would turn it off.
    pub fn check(&self) -> Result<(), ConfigError> {
        let Some(listen) = &self.listen else { return Ok(()) };
        listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("[http] listen = {listen:?}: expected host:port, e.g. 127.0.0.1:8443"))?;
        match (&self.tls_cert, &self.tls_key, self.plain) {
            (Some(_), Some(_), false) => {}
            (None, None, true) => {}
            (Some(_), Some(_), true) => {
                return Err("[http]: plain = true and a TLS certificate: choose one".into())
            }
            (None, None, false) => {
                return Err(
                    "[http] listen needs tls_cert and tls_key, or plain = true when TLS ends at a load \
                            balancer in front of the daemon"
                        .into(),
                )
            }
            _ => return Err("[http]: tls_cert and tls_key go together".into()),
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err("[http] connection limits must be at least 1".into());
        }
        if self.max_request_bytes < 1024 {
            return Err("[http] max_request_bytes must be at least 1024".into());
        }
        if !(3..=3600).contains(&self.idle_timeout_s) {
            return Err("[http] idle_timeout_s must be between 3 and 3600".into());
        }
        if self.auth_failures_per_minute == 0 {
            return Err("[http] auth_failures_per_minute must be at least 1".into());
        }
        Ok(())
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The file is not this configuration in TOML.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// A setting (in the file or the environment) that cannot work, and why.
    #[error("{0}")]
    Invalid(String),
}

/// The checks below say why in words: each is a setting that cannot work.
impl From<String> for ConfigError {
    fn from(why: String) -> Self {
        ConfigError::Invalid(why)
    }
}

impl From<&str> for ConfigError {
    fn from(why: &str) -> Self {
        ConfigError::Invalid(why.to_string())
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// When set, the socket is mode 0660 and owned by this group; otherwise 0600.
    pub socket_group: Option<String>,
    pub on_shutdown: OnShutdown,
    /// Finished jobs the daemon remembers (status, list, the journal), the newest: older ones
    /// are forgotten, so memory and restart time stay bounded however many jobs it runs.
    pub keep_finished: usize,
    /// The transport of jobs whose request names none.
    pub transport: TransportKind,
    /// The launcher of jobs whose request names none.
    pub launcher: LauncherKind,
    pub quotas: Quotas,
    pub aws: Option<AwsTable>,
    pub ecs: Option<EcsTable>,
    /// `[[users]]`: who may call, with which role (see `daemon::users`).
    pub users: Vec<super::users::UserEntry>,
    pub user_quotas: super::users::UserQuotas,
    pub http: HttpTable,
    pub metrics: MetricsTable,
    /// The hashing backend of this daemon's own workers (`threads` and `process`):
    /// `avx512`, `shani`, `avx2` or `portable`; the fastest this CPU has when unset.
    pub kernel: Option<String>,
    /// The `nonce-worker` binary the `process` launcher starts (`NONCE_WORKER_BIN`); unset:
    /// the one beside `nonced`.
    pub worker_binary: Option<PathBuf>,
    /// Where to append the AWS calls this daemon made when it stops (`NONCE_AWS_CALL_LOG`:
    /// the least-privilege test's tally; never from the file).
    #[serde(skip)]
    pub aws_call_log: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: None,
            state_dir: None,
            socket_group: None,
            on_shutdown: OnShutdown::Keep,
            keep_finished: DEFAULT_KEEP_FINISHED,
            transport: TransportKind::Memory,
            launcher: LauncherKind::Threads,
            quotas: Quotas::default(),
            aws: None,
            ecs: None,
            users: Vec::new(),
            user_quotas: super::users::UserQuotas::default(),
            http: HttpTable::default(),
            metrics: MetricsTable::default(),
            kernel: None,
            worker_binary: None,
            aws_call_log: None,
        }
    }
}

/// What a SIGHUP applies of `new` over `old`: the users (their tokens, uids, roles and own
/// quotas), `[quotas]`, `[user_quotas]` and `keep_finished`; everything else keeps `old`'s
/// value (it is read once at start), and is named in the second list if `new` changed it.
pub fn reload_split(old: &DaemonConfig, new: &DaemonConfig) -> (DaemonConfig, Vec<&'static str>) {
    let mut merged = old.clone();
    merged.users = new.users.clone();
    merged.user_quotas = new.user_quotas.clone();
    merged.quotas = new.quotas.clone();
    merged.keep_finished = new.keep_finished;
    let mut restart = Vec::new();
    let mut differs = |name: &'static str, changed: bool| {
        if changed {
            restart.push(name);
        }
    };
    differs("socket", old.socket != new.socket);
    differs("state_dir", old.state_dir != new.state_dir);
    differs("socket_group", old.socket_group != new.socket_group);
    differs("on_shutdown", old.on_shutdown != new.on_shutdown);
    differs("transport", old.transport != new.transport);
    differs("launcher", old.launcher != new.launcher);
    differs("[aws]", old.aws != new.aws);
    differs("[ecs]", old.ecs != new.ecs);
    // The certificate's files are re-read; which files, and the rest of [http], are not.
    differs("[http]", old.http != new.http);
    differs("[metrics]", old.metrics != new.metrics);
    differs("kernel", old.kernel != new.kernel);
    differs("worker_binary", old.worker_binary != new.worker_binary);
    (merged, restart)
}

/// The reloadable settings `new` changes (for the SIGHUP log line).
pub fn reloadable_changes(old: &DaemonConfig, new: &DaemonConfig) -> Vec<&'static str> {
    [
        ("[[users]]", old.users != new.users),
        ("[quotas]", old.quotas != new.quotas),
        ("[user_quotas]", old.user_quotas != new.user_quotas),
        ("keep_finished", old.keep_finished != new.keep_finished),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let cfg: DaemonConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The limits of user `name` (its `[[users]]` overrides over `[user_quotas]`).
    pub fn quotas_for(&self, name: &str) -> super::users::UserQuotas {
        let mut q = self.user_quotas.clone();
        if let Some(o) = self.users.iter().find(|u| u.name == name).and_then(|u| u.quotas.as_ref()) {
            q.max_workers_per_job = o.max_workers_per_job.unwrap_or(q.max_workers_per_job);
            q.max_concurrent_jobs = o.max_concurrent_jobs.unwrap_or(q.max_concurrent_jobs);
            q.max_vcpu_seconds_per_day =
                o.max_vcpu_seconds_per_day.map_or(q.max_vcpu_seconds_per_day, |v| v as f64);
        }
        q
    }

    /// Applies the environment's overrides (see [`ENV_VARS`]); `get` is the process
    /// environment in production.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let text = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let list = |v: String| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let number = |name: &str| -> Result<Option<usize>, String> {
            text(name)
                .map(|v| v.parse::<usize>().map_err(|_| format!("{name}={v:?} is not a whole number")))
                .transpose()
        };
        if let Some(w) = text("NONCE_WORKER_BIN") {
            self.worker_binary = Some(PathBuf::from(w));
        }
        if let Some(k) = text("NONCE_KERNEL") {
            self.kernel = Some(k);
        }
        if let Some(path) = text(aws_transport::CALL_LOG_VAR) {
            self.aws_call_log = Some(PathBuf::from(path));
        }
        if let Some(t) = text("NONCE_TRANSPORT") {
            self.transport = TransportKind::parse(&t).map_err(|e| format!("NONCE_TRANSPORT: {e}"))?;
        }
        if let Some(l) = text("NONCE_LAUNCHER") {
            self.launcher = LauncherKind::parse(&l).map_err(|e| format!("NONCE_LAUNCHER: {e}"))?;
        }
        if let Some(p) = text("NONCE_AWS_PREFIX") {
            self.aws.get_or_insert_with(AwsTable::default).prefix = p;
        }
        if let Some(n) = number("NONCE_SWEEP_EVERY_S")? {
            // Only where the aws transport is in use: this alone must not turn it on.
            if self.transport == TransportKind::Aws || self.aws.is_some() {
                self.aws.get_or_insert_with(AwsTable::default).sweep_every_s = (n as u64).max(1);
            }
        }
        let ecs_given = [
            "NONCE_ECS_CLUSTER",
            "NONCE_ECS_TASK_DEFINITION",
            "NONCE_ECS_SUBNETS",
            "NONCE_ECS_SECURITY_GROUPS",
        ]
        .iter()
        .any(|k| text(k).is_some());
        if ecs_given {
            let ecs = self.ecs.get_or_insert_with(|| EcsTable {
                cluster: String::new(),
                task_definition: String::new(),
                subnets: vec![],
                security_groups: vec![],
                container: default_container(),
                assign_public_ip: false,
                task_quota: None,
                call_quota: None,
                capacity_retry: None,
                capacity: None,
                gpu_task_definition: None,
                gpu_capacity_provider: None,
            });
            if let Some(v) = text("NONCE_ECS_CLUSTER") {
                ecs.cluster = v;
            }
            if let Some(v) = text("NONCE_ECS_TASK_DEFINITION") {
                ecs.task_definition = v;
            }
            if let Some(v) = text("NONCE_ECS_SUBNETS") {
                ecs.subnets = list(v);
            }
            if let Some(v) = text("NONCE_ECS_SECURITY_GROUPS") {
                ecs.security_groups = list(v);
            }
            if let Some(v) = text("NONCE_ECS_CONTAINER") {
                ecs.container = v;
            }
            if let Some(v) = text("NONCE_ECS_TASK_QUOTA") {
                ecs.task_quota = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_CALL_QUOTA") {
                ecs.call_quota = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_CAPACITY_RETRY") {
                ecs.capacity_retry = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_CAPACITY") {
                ecs.capacity = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_GPU_TASK_DEFINITION") {
                ecs.gpu_task_definition = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_GPU_CAPACITY_PROVIDER") {
                ecs.gpu_capacity_provider = Some(v);
            }
            if let Some(v) = text("NONCE_ECS_PUBLIC_IP") {
                ecs.assign_public_ip = match v.as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(format!("NONCE_ECS_PUBLIC_IP={v:?}: expected true or false").into()),
                };
            }
        }
        if let Some(v) = text("NONCE_HTTP_LISTEN") {
            self.http.listen = Some(v);
        }
        if let Some(v) = text("NONCE_HTTP_TLS_CERT") {
            self.http.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = text("NONCE_HTTP_TLS_KEY") {
            self.http.tls_key = Some(PathBuf::from(v));
        }
        let flag = |name: &str| -> Result<Option<bool>, String> {
            text(name)
                .map(|v| match v.as_str() {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(format!("{name}={v:?}: expected true or false")),
                })
                .transpose()
        };
        if let Some(b) = flag("NONCE_HTTP_PLAIN")? {
            self.http.plain = b;
        }
        if let Some(b) = flag("NONCE_HTTP_FORWARDED_FOR")? {
            self.http.forwarded_for = b;
        }
        if let Some(b) = flag("NONCE_HTTP_METRICS_PUBLIC")? {
            self.http.metrics_public = b;
        }
        if let Some(b) = flag("NONCE_METRICS_EMF")? {
            self.metrics.emf = b;
        }
        if let Some(v) = text("NONCE_USERS") {
            // A Secrets Manager secret injected by ECS at start: `[[users]]` tables in TOML.
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct UsersOnly {
                users: Vec<super::users::UserEntry>,
            }
            let parsed: UsersOnly = toml::from_str(&v)
                .map_err(|e| format!("NONCE_USERS: expected [[users]] tables in TOML: {e}"))?;
            self.users.extend(parsed.users);
        }
        if let Some(n) = number("NONCE_MAX_WORKERS_PER_JOB")? {
            self.quotas.max_workers_per_job = n;
        }
        if let Some(n) = number("NONCE_MAX_CONCURRENT_JOBS")? {
            self.quotas.max_concurrent_jobs = n;
        }
        if let Some(n) = number("NONCE_KEEP_FINISHED")? {
            self.keep_finished = n;
        }
        if let Some(n) = number("NONCE_MAX_FLEET")? {
            self.quotas.max_fleet = n;
        }
        if let Some(n) = number("NONCE_MAX_VCPU_SECONDS_PER_JOB")? {
            self.quotas.max_vcpu_seconds_per_job = n as f64;
        }
        // [user_quotas] for a daemon configured by its environment alone (the ECS service).
        if let Some(n) = number("NONCE_USER_MAX_WORKERS_PER_JOB")? {
            self.user_quotas.max_workers_per_job = n;
        }
        if let Some(n) = number("NONCE_USER_MAX_CONCURRENT_JOBS")? {
            self.user_quotas.max_concurrent_jobs = n;
        }
        if let Some(n) = number("NONCE_USER_MAX_VCPU_SECONDS_PER_DAY")? {
            self.user_quotas.max_vcpu_seconds_per_day = n as f64;
        }
        self.check()
    }

    /// Refuses settings this build cannot honour, with the reason.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.keep_finished == 0 {
            return Err(
                "keep_finished must be at least 1 (a finished job must be seen by whoever waits on it)"
                    .into(),
            );
        }
        self.launcher.check_transport(self.transport).map_err(|e| e.0)?;
        nonce_kernel::Backend::choose(self.kernel.as_deref()).map_err(|e| format!("kernel: {e}"))?;
        if self.launcher == LauncherKind::Ecs && self.ecs.is_none() {
            return Err(
                "launcher \"ecs\" needs an [ecs] table (cluster, task_definition, subnets, security_groups)"
                    .into(),
            );
        }
        if let Some(settings) = self.aws_settings() {
            aws_transport::ResourceNames::new(&settings.prefix)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if let Some(ecs) = &settings.ecs {
                ecs.check().map_err(|e| format!("[ecs]: {e}"))?;
            }
        }
        if let Some(ecs) = &self.ecs {
            ecs.launch_pacing()?;
            if let Some(c) = &ecs.capacity {
                let kind = coordinator::request::CapacityKind::parse(c)
                    .map_err(|e| format!("[ecs] capacity: {e}"))?;
                if kind == coordinator::request::CapacityKind::Gpu && ecs.gpu().is_none() {
                    return Err(
                        "[ecs] capacity \"gpu\" needs gpu_task_definition and gpu_capacity_provider".into()
                    );
                }
            }
        }
        super::users::Users::new(&self.users, super::users::own_uid())?;
        self.http.check()?;
        if !(1..=3600).contains(&self.metrics.emf_every_s) {
            return Err("[metrics] emf_every_s must be between 1 and 3600".into());
        }
        let uq = &self.user_quotas;
        if uq.max_workers_per_job == 0 || uq.max_concurrent_jobs == 0 {
            return Err("user_quotas must be at least 1".into());
        }
        // A year of seconds at most: past it a day's budget or a deadline cut from it is not a
        // duration any more (a start would fail on it), and no day holds more anyway.
        if !(1.0..=MAX_VCPU_SECONDS).contains(&uq.max_vcpu_seconds_per_day) {
            return Err(format!(
                "user_quotas.max_vcpu_seconds_per_day must be between 1 and {MAX_VCPU_SECONDS:e}"
            )
            .into());
        }
        let q = &self.quotas;
        if q.max_workers_per_job == 0 || q.max_concurrent_jobs == 0 || q.max_fleet == 0 {
            return Err("quotas must be at least 1".into());
        }
        if !(q.max_vcpu_seconds_per_job > 0.0 && q.max_vcpu_seconds_per_job <= MAX_VCPU_SECONDS) {
            return Err(format!(
                "quotas.max_vcpu_seconds_per_job must be a positive number of at most {MAX_VCPU_SECONDS:e}"
            )
            .into());
        }
        Ok(())
    }

    /// The aws set-up: present when the default transport is aws or an `[aws]` table exists.
    pub fn aws_settings(&self) -> Option<coordinator::request::AwsSettings> {
        if self.transport != TransportKind::Aws && self.aws.is_none() {
            return None;
        }
        let table = self.aws.clone().unwrap_or_default();
        let ecs = self.ecs.as_ref().map(|e| aws_transport::ecs::EcsSettings {
            cluster: e.cluster.clone(),
            task_definition: e.task_definition.clone(),
            subnets: e.subnets.clone(),
            security_groups: e.security_groups.clone(),
            container: e.container.clone(),
            assign_public_ip: e.assign_public_ip,
            gpu: e.gpu(),
        });
        // Checked by `check` before anything asks for these.
        let launch = self.ecs.as_ref().and_then(|e| e.launch_pacing().ok()).unwrap_or_default();
        Some(coordinator::request::AwsSettings {
            prefix: table.prefix,
            bootstrap: table.bootstrap,
            ecs,
            launch,
        })
    }

    /// The socket path: flag/env/config, else systemd's RuntimeDirectory, else a per-user /tmp path.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
            return PathBuf::from(dir).join("nonced.sock");
        }
        std::env::temp_dir().join(format!("nonced-{}", user_id())).join("nonced.sock")
    }

    /// The state directory: flag/env/config, else systemd's StateDirectory, else ~/.local/state.
    pub fn state_path(&self) -> PathBuf {
        if let Some(p) = &self.state_dir {
            return p.clone();
        }
        if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
        home.join(".local/state/nonced")
    }
}

/// This process's user id, read without `unsafe` from /proc.
pub fn user_id() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names a struct's `Deserialize` knows, as serde hands them to a deserializer.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = Stop;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                *self.0 = fields;
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    /// Keys the example names (set or commented out), by table ("" for the top level).
    fn example_keys(text: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut keys = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
        let mut table = String::new();
        for line in text.lines() {
            let l = line.trim_start().trim_start_matches('#').trim();
            if l.starts_with('[') {
                table = l.trim_matches(|c| c == '[' || c == ']').to_string();
                keys.entry(table.clone()).or_default();
                continue;
            }
            let Some((key, value)) = l.split_once('=') else { continue };
            let key = key.trim();
            if !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                keys.entry(table.clone()).or_default().insert(key.to_string());
                // An inline table (`quotas = { a = 1, b = 2 }`): its keys, under `table.key`.
                if let Some(inner) = value.trim().strip_prefix('{') {
                    for part in inner.trim_end_matches(|c: char| c != '}').trim_end_matches('}').split(',') {
                        if let Some((k, _)) = part.split_once('=') {
                            keys.entry(format!("{table}.{key}")).or_default().insert(k.trim().to_string());
                        }
                    }
                }
            }
        }
        keys
    }

    /// `infra/nonced.example.toml` names every setting the parser knows, in its table, and
    /// every environment variable the daemon reads: a new setting cannot go undocumented.
    #[test]
    fn the_example_names_every_setting_and_environment_variable() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/nonced.example.toml");
        let text = std::fs::read_to_string(&path).expect("the example");
        let keys = example_keys(&text);
        let tables: [(&str, &[&str]); 9] = [
            ("", fields_of::<DaemonConfig>()),
            ("quotas", fields_of::<Quotas>()),
            ("aws", fields_of::<AwsTable>()),
            ("ecs", fields_of::<EcsTable>()),
            ("http", fields_of::<HttpTable>()),
            ("metrics", fields_of::<MetricsTable>()),
            ("users", fields_of::<super::super::users::UserEntry>()),
            ("users.quotas", fields_of::<super::super::users::UserQuotasOverride>()),
            ("user_quotas", fields_of::<super::super::users::UserQuotas>()),
        ];
        let mut missing = Vec::new();
        for (table, fields) in tables {
            assert!(!fields.is_empty(), "no fields read for [{table}]");
            for f in fields {
                let named = keys.get(table).is_some_and(|k| k.contains(*f))
                    // A table field of the top level is named by its header.
                    || (table.is_empty() && keys.contains_key(*f));
                if !named {
                    missing.push(format!("[{table}] {f}"));
                }
            }
        }
        for var in ENV_VARS {
            if !text.contains(var) {
                missing.push(format!("env {var}"));
            }
        }
        assert!(missing.is_empty(), "infra/nonced.example.toml lacks: {missing:?}");
    }

    #[test]
    fn user_quotas_come_from_the_environment_too() {
        let env: std::collections::HashMap<&str, &str> = [
            ("NONCE_USER_MAX_WORKERS_PER_JOB", "3"),
            ("NONCE_USER_MAX_CONCURRENT_JOBS", "5"),
            ("NONCE_USER_MAX_VCPU_SECONDS_PER_DAY", "7200"),
            ("NONCE_MAX_VCPU_SECONDS_PER_JOB", "3600"),
        ]
        .into();
        let mut c = DaemonConfig::default();
        c.apply_env(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!((c.user_quotas.max_workers_per_job, c.user_quotas.max_concurrent_jobs), (3, 5));
        assert_eq!(c.user_quotas.max_vcpu_seconds_per_day, 7200.0);
        assert_eq!(c.quotas.max_vcpu_seconds_per_job, 3600.0);
        let bad = |k: &str, v: &str| {
            let mut c = DaemonConfig::default();
            c.apply_env(|name| (name == k).then(|| v.to_string())).expect_err(k)
        };
        assert!(bad("NONCE_USER_MAX_WORKERS_PER_JOB", "many")
            .to_string()
            .contains("NONCE_USER_MAX_WORKERS_PER_JOB"));
        assert!(bad("NONCE_USER_MAX_CONCURRENT_JOBS", "0").to_string().contains("user_quotas"));
    }

    #[test]
    fn quotas_past_a_duration_are_refused() {
        let mut c = DaemonConfig::default();
        c.quotas.max_vcpu_seconds_per_job = 1e300;
        assert!(c.check().is_err());
        c.quotas.max_vcpu_seconds_per_job = f64::NAN;
        assert!(c.check().is_err());
        let mut c = DaemonConfig::default();
        c.user_quotas.max_vcpu_seconds_per_day = 1e300;
        assert!(c.check().is_err());
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/nonced.example.toml");
        let cfg = DaemonConfig::load(&path).expect("the example is valid");
        assert_eq!(cfg.quotas.max_concurrent_jobs, 4);
        assert_eq!(cfg.on_shutdown, OnShutdown::Keep);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let env: std::collections::HashMap<&str, &str> = [
            ("NONCE_TRANSPORT", "aws"),
            ("NONCE_LAUNCHER", "ecs"),
            ("NONCE_AWS_PREFIX", "prod"),
            ("NONCE_ECS_CLUSTER", "c"),
            ("NONCE_ECS_TASK_DEFINITION", "td:3"),
            ("NONCE_ECS_SUBNETS", "subnet-1, subnet-2"),
            ("NONCE_ECS_SECURITY_GROUPS", "sg-1"),
            ("NONCE_MAX_FLEET", "500"),
        ]
        .into_iter()
        .collect();
        let mut cfg = DaemonConfig::default();
        cfg.apply_env(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        let aws = cfg.aws_settings().expect("aws");
        assert_eq!(aws.prefix, "prod");
        assert_eq!(aws.ecs.expect("ecs").subnets, vec!["subnet-1", "subnet-2"]);
        assert_eq!(cfg.quotas.max_fleet, 500);
        let mut cfg = DaemonConfig::default();
        let err = cfg.apply_env(|k| (k == "NONCE_MAX_FLEET").then(|| "lots".to_string())).expect_err("bad");
        assert!(err.to_string().contains("NONCE_MAX_FLEET"), "{err}");
        let mut cfg = DaemonConfig::default();
        let err = cfg.apply_env(|k| (k == "NONCE_LAUNCHER").then(|| "ecs".to_string())).expect_err("bad");
        assert!(err.to_string().contains("aws"), "{err}");
    }

    #[test]
    fn gpu_capacity_comes_from_both_gpu_settings_or_is_refused() {
        let ecs = [
            ("NONCE_TRANSPORT", "aws"),
            ("NONCE_LAUNCHER", "ecs"),
            ("NONCE_ECS_CLUSTER", "c"),
            ("NONCE_ECS_TASK_DEFINITION", "td"),
            ("NONCE_ECS_SUBNETS", "subnet-1"),
            ("NONCE_ECS_SECURITY_GROUPS", "sg-1"),
        ];
        let config = |extra: &[(&str, &str)]| {
            let env: std::collections::HashMap<&str, &str> = ecs.iter().chain(extra).copied().collect();
            let mut cfg = DaemonConfig::default();
            cfg.apply_env(|k| env.get(k).map(|v| v.to_string())).map(|()| cfg)
        };
        let cfg = config(&[
            ("NONCE_ECS_GPU_TASK_DEFINITION", "td-gpu"),
            ("NONCE_ECS_GPU_CAPACITY_PROVIDER", "cp-gpu"),
            ("NONCE_ECS_CAPACITY", "gpu"),
        ])
        .expect("GPU capacity, whole");
        let gpu = cfg.aws_settings().and_then(|a| a.ecs).and_then(|e| e.gpu).expect("gpu settings");
        assert_eq!((gpu.task_definition.as_str(), gpu.capacity_provider.as_str()), ("td-gpu", "cp-gpu"));
        // Without GPU settings there is no GPU capacity: none, and gpu as the default is refused.
        let plain = config(&[]).expect("valid");
        assert_eq!(plain.aws_settings().and_then(|a| a.ecs).and_then(|e| e.gpu), None);
        let err = config(&[("NONCE_ECS_CAPACITY", "gpu")]).expect_err("no GPU capacity");
        assert!(err.to_string().contains("gpu_task_definition"), "{err}");
        let err = config(&[("NONCE_ECS_GPU_TASK_DEFINITION", "td-gpu")]).expect_err("half of it");
        assert!(err.to_string().contains("capacity-provider"), "{err}");
    }

    #[test]
    fn the_listener_needs_tls_or_an_explicit_plain_and_users_may_come_from_the_environment() {
        let mut cfg = DaemonConfig::default();
        cfg.apply_env(|k| (k == "NONCE_HTTP_LISTEN").then(|| "127.0.0.1:8443".to_string()))
            .expect_err("a listener with neither TLS nor plain = true is refused");
        let hash = "574682286cfc87413ff66bc73f575b1a42b76c6304fc6aa9be1a1ca71925f3bc";
        let users = format!("[[users]]\nname = \"alice\"\nrole = \"user\"\ntoken_sha256 = \"{hash}\"\n");
        let env: std::collections::HashMap<&str, String> = [
            ("NONCE_HTTP_LISTEN", "0.0.0.0:8443".to_string()),
            ("NONCE_HTTP_PLAIN", "true".to_string()),
            ("NONCE_HTTP_FORWARDED_FOR", "true".to_string()),
            ("NONCE_USERS", users),
        ]
        .into_iter()
        .collect();
        let mut cfg = DaemonConfig::default();
        cfg.apply_env(|k| env.get(k).cloned()).expect("valid");
        assert_eq!(cfg.http.listen.as_deref(), Some("0.0.0.0:8443"));
        assert!(cfg.http.plain && cfg.http.forwarded_for);
        assert_eq!(cfg.users.len(), 1);
        assert_eq!(cfg.users[0].name, "alice");
        let mut cfg = DaemonConfig::default();
        let err = cfg.apply_env(|k| (k == "NONCE_USERS").then(|| "users = 3".to_string())).expect_err("bad");
        assert!(err.to_string().contains("NONCE_USERS"), "{err}");
        for bad in [
            "listen = 'nowhere'\nplain = true",
            "listen = '127.0.0.1:1'\ntls_cert = '/c'",
            "listen = '127.0.0.1:1'\nplain = true\nidle_timeout_s = 0",
        ] {
            let cfg: DaemonConfig = toml::from_str(&format!("[http]\n{bad}")).expect("parses");
            assert!(cfg.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<DaemonConfig>("sokcet = '/x'").is_err());
        let e = toml::from_str::<DaemonConfig>("transport = 'carrier-pigeon'").expect_err("a kind");
        assert!(e.to_string().contains("memory"), "{e}");
        let cfg: DaemonConfig = toml::from_str("launcher = 'ecs'").expect("parses");
        assert!(cfg.check().expect_err("ecs needs aws").to_string().contains("aws"));
        let cfg: DaemonConfig = toml::from_str("transport = 'aws'\n[aws]\nprefix = 'a b'").expect("parses");
        assert!(cfg.check().is_err());
        let text = "transport = 'aws'\nlauncher = 'ecs'\n[aws]\nprefix = 'nc'\n[ecs]\ncluster = 'c'\ntask_definition = 't'\nsubnets = ['s']\nsecurity_groups = ['g']";
        let cfg: DaemonConfig = toml::from_str(text).expect("parses");
        cfg.check().expect("valid");
        assert_eq!(
            cfg.aws_settings().and_then(|a| a.ecs).map(|e| e.container).as_deref(),
            Some("nonce-worker")
        );
        let cfg: DaemonConfig = toml::from_str("[quotas]\nmax_fleet = 0").expect("parses");
        assert!(cfg.check().is_err());
    }
}
