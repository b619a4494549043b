//! The contract between `nonced` and its clients: the replies of its JSON-RPC methods and
//! its error codes, as serde types. The daemon builds these and the CLI reads them, so a
//! field has one name and one type on both sides (`total` is an exact integer everywhere,
//! 2^64 included, never a float in one reply and an integer in another).
//!
//! A finished job's `result` is the search report (`noncectl search --json`), kept as JSON:
//! it is journaled and read back across versions.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod rpc;

pub use client::{CallError, Daemon};
pub use rpc::{JobRef, Method, NoParams, RpcError, WaitParams, WorkersParams};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// JSON-RPC error codes: the specification's and the daemon's own (-32000 to -32099).
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params of the wrong shape or value.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The daemon failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// No job with that id (or not the caller's).
    pub const JOB_NOT_FOUND: i64 = -32000;
    /// A quota refused the request; `data` says which.
    pub const QUOTA_EXCEEDED: i64 = -32001;
    /// The daemon cannot serve it now (shutting down, journal unwritable).
    pub const UNAVAILABLE: i64 = -32002;
    /// The caller may not do this.
    pub const FORBIDDEN: i64 = -32003;
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Its workers are searching.
    Running,
    /// It has a result.
    Finished,
}

/// How a search ended (the report's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A golden nonce, verified.
    Found,
    /// The whole range searched, no golden nonce in it.
    Exhausted,
    /// The time limit came first.
    TimedOut,
    /// Cancelled by its owner or the daemon.
    Cancelled,
    /// It could not go on (its `error` says why).
    Failed,
}

impl Outcome {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::Exhausted => "exhausted",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }
}

/// One job in `search.list`: every field present in every item, `null` where it does not
/// apply (a running job has no outcome yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// 16 hex digits.
    pub job_id: String,
    /// Who started it (`uid-N` over the socket, the user's name over the network).
    pub owner: Option<String>,
    /// Running or finished.
    pub state: JobState,
    /// `first`, `lowest` or `exhaustive`.
    pub mode: String,
    /// The puzzle in words (block length, encoding, difficulty).
    pub puzzle: String,
    /// Workers asked for.
    pub workers: usize,
    /// Workers heartbeating now (running jobs).
    pub workers_live: Option<usize>,
    /// Nonces searched.
    pub searched: u128,
    /// Nonces in its range.
    pub total: u128,
    /// Nonces a second: now (running) or over its life (finished).
    pub rate: f64,
    /// Seconds since it started (running) or that it took (finished).
    pub elapsed_s: f64,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// The answer's nonce, if any.
    pub nonce: Option<u64>,
    /// The request as given (`search.start`'s params).
    pub request: Value,
}

/// A worker's health as its job sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Heartbeating.
    Live,
    /// Silent past the stall timeout: its shards went to others.
    Stalled,
    /// Said goodbye or was lost.
    Gone,
    /// Caught lying about its work: nothing it says counts.
    Suspect,
}

impl Health {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Health::Live => "live",
            Health::Stalled => "stalled",
            Health::Gone => "gone",
            Health::Suspect => "suspect",
        }
    }
}

/// One worker in `workers.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Its job.
    pub job_id: String,
    /// The worker's name.
    pub worker: String,
    /// Live, stalled, gone or suspect.
    pub health: Health,
    /// Nonces a second, from its heartbeats.
    pub rate: f64,
    /// Shards it holds.
    pub shards: usize,
    /// Seconds since it was last heard.
    pub silent_s: f64,
    /// Seconds it was silent for its job to call it stale: its own heartbeat period (the
    /// dashboard greys it past this, well before the stall timeout takes its shards).
    pub stale_after_s: f64,
}

/// A running job's progress (`search.status`, `search.wait` before the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 16 hex digits.
    pub job_id: String,
    /// Always false (see [`JobStatus`]).
    pub finished: bool,
    /// Nonces searched.
    pub searched: u128,
    /// Nonces in its range.
    pub total: u128,
    /// Nonces a second now.
    pub rate: f64,
    /// Workers heartbeating.
    pub workers: usize,
    /// Workers found silent past the stall timeout.
    pub stalls: u64,
    /// Ranges handed to other workers.
    pub reshards: u64,
    /// Workers their platform stopped mid-work (a Fargate Spot interruption, SIGTERM).
    #[serde(default)]
    pub interruptions: u64,
    /// The lowest verified golden nonce so far (`lowest`).
    pub lowest_so_far: Option<u64>,
    /// Messages refused for a bad tag.
    pub forged: u64,
    /// The checks of its workers' claims so far (the report's `verification`).
    pub verification: VerificationReport,
    /// The job's transport counters (SQS requests and the like), where it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportCounts>,
}

/// What a transport counted: a job's own (`search.status`, a daemon's result), or an embedded
/// run's process-wide counts with the job's own in `job` (`noncectl search --json` over aws).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TransportCounts {
    /// `aws`, on an embedded run's process-wide counts; absent on a job's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Events delivered: routed to the job (a job's, exact), or to any job (the process's).
    pub events: u64,
    /// Events of other or finished jobs, dropped (jobs running at once share this count).
    pub ghosts: u64,
    /// Bodies that did not decode, dead-lettered (shared the same way).
    pub undecodable: u64,
    /// Messages refused for a bad tag (a job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forged: Option<u64>,
    /// The coordinator's SQS requests while the job ran (a job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs_requests: Option<u64>,
    /// The coordinator's SQS requests in all (the process's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator_sqs_requests: Option<u64>,
    /// The job's own counts, inside the process's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<TransportCounts>>,
}

/// A finished job (`search.status`, `search.wait`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// 16 hex digits.
    pub job_id: String,
    /// Always true (see [`JobStatus`]).
    pub finished: bool,
    /// The search report (`noncectl search --json`).
    pub result: Report,
}

/// `search.status` and `search.wait`: a running job's progress or a finished job's report,
/// told apart by `finished` (one flat object either way).
#[derive(Debug, Clone, PartialEq)]
// A reply, built once per call and sent: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum JobStatus {
    /// Still searching.
    Running(Progress),
    /// Ended.
    Finished(Finished),
}

impl JobStatus {
    /// The report's outcome, once finished.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            JobStatus::Running(_) => None,
            JobStatus::Finished(f) => Some(f.result.outcome),
        }
    }
}

impl Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JobStatus::Running(p) => p.serialize(s),
            JobStatus::Finished(f) => f.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Through a Value, not an untagged enum: big integers (`total` = 2^64) survive it.
        let v = Value::deserialize(d)?;
        match v.get("finished") {
            Some(Value::Bool(true)) => serde_json::from_value(v).map(JobStatus::Finished),
            Some(Value::Bool(false)) => serde_json::from_value(v).map(JobStatus::Running),
            _ => return Err(D::Error::custom("a job status needs \"finished\": true or false")),
        }
        .map_err(D::Error::custom)
    }
}

/// `data` of a [`codes::QUOTA_EXCEEDED`] error: which quota, what it allows, what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaRefusal {
    /// The quota's name (`max_workers_per_job`, `user alice: max_concurrent_jobs`, ...).
    pub quota: String,
    /// What it allows.
    pub limit: f64,
    /// What the request asked for.
    pub requested: f64,
}

/// `search.start`'s reply: the job's id and what the daemon made of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// 16 hex digits.
    pub job_id: String,
    /// The plan it runs.
    pub plan: Plan,
}

/// How a job will run, as the daemon validated and planned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Workers it starts.
    pub workers: usize,
    /// Hashing threads each.
    pub threads_per_worker: usize,
    /// `first`, `lowest` or `exhaustive`.
    pub mode: String,
    /// The nonce range, `START..END`.
    pub range: String,
    /// Its time limit (the request's, or the user's vCPU-seconds quota's).
    pub deadline_s: Option<f64>,
    /// The hashing kernel (`avx512`, `shani`, `avx2`, `portable`).
    pub backend: String,
    /// A worker's start-up the planner counted on, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_s: Option<f64>,
    /// Where that start-up figure came from (measured, a default, the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_source: Option<String>,
    /// Fargate capacity (`fargate`, `spot`, `mixed`) of an `ecs` job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// The chance of an answer in time the planner promised (planned jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Expected seconds to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_s: Option<f64>,
    /// Seconds the launch quotas take to ask for the whole fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_ramp_s: Option<f64>,
    /// Expected cost, US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// `search.cancel`'s reply: the job will end as `cancelled` (if it had not ended already).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancelling {
    /// 16 hex digits.
    pub job_id: String,
    /// The stop is on its way (false: the job had ended already).
    pub cancelling: bool,
    /// How it had ended, when it had.
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

/// The daemon's limits per user (the `[quotas]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quotas {
    /// Workers one job may ask for.
    pub max_workers_per_job: usize,
    /// Jobs running at once.
    pub max_concurrent_jobs: usize,
    /// Workers of all jobs at once.
    pub max_fleet: usize,
    /// Worker-seconds one job may be given.
    pub max_vcpu_seconds_per_job: f64,
}

/// The daemon's AWS fabric and its counters since start (all jobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwsInfo {
    /// Resource name prefix.
    pub prefix: String,
    /// The events queue's URL.
    pub events_queue: String,
    /// The control topic's ARN.
    pub control_topic: String,
    /// Events routed to jobs.
    pub events: u64,
    /// Events of jobs not running here, dropped.
    pub ghosts: u64,
    /// Messages that did not decode (moved to the dead-letter queue).
    pub undecodable: u64,
    /// SQS requests made.
    pub sqs_requests: u64,
}

/// `daemon.info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// Default transport of its jobs.
    pub transport: String,
    /// Default launcher of its jobs.
    pub launcher: String,
    /// Its control socket.
    pub socket: String,
    /// Its journal file.
    pub journal: String,
    /// The network listener's address (`[http] listen`), if it has one.
    pub http_listen: Option<String>,
    /// Whether that listener speaks TLS itself (false: plain, TLS ends in front of it).
    pub http_tls: bool,
    /// `[[users]]` configured (token or uid users; local uids without an entry are users too).
    pub users: usize,
    /// Jobs running now.
    pub jobs_running: usize,
    /// Jobs it remembers (running and the newest finished).
    pub jobs_known: usize,
    /// Its limits.
    pub quotas: Quotas,
    /// Its AWS fabric, if it has one.
    pub aws: Option<AwsInfo>,
}

/// The best hash a search saw (a `first` or `exhaustive` search without a golden nonce).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Its nonce.
    pub nonce: u64,
    /// The hash, hex, as it prints.
    pub hash: String,
    /// Leading zero bits of the hash.
    pub leading_zeros: u32,
}

/// A worker caught lying about its work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    /// The worker's name.
    pub worker: String,
    /// What gave it away.
    pub reason: String,
    /// Nonces of its claims searched again.
    pub reopened: u128,
    /// When, seconds into the job.
    pub at_s: f64,
}

/// The chance that a worker skipping part of its claims was caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchChance {
    /// The share of its claims a worker skipped.
    pub skipped: f64,
    /// The probability its shares or the spot checks gave it away.
    pub caught_probability: f64,
}

/// What was checked of the workers' claims, and the bound it gives (README, "Trust").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// Shares prove work with every nonce of at least this many leading zero bits.
    pub share_bits: u32,
    /// Shares checked.
    pub shares_verified: u64,
    /// Shares the claimed work should have found.
    pub shares_expected: f64,
    /// Windows re-searched by another worker.
    pub spot_checks: u64,
    /// Nonces in them.
    pub spot_checked_nonces: u128,
    /// Windows whose two searches disagreed.
    pub spot_check_mismatches: u64,
    /// Windows still waiting for a checker.
    pub spot_checks_pending: u64,
    /// Workers caught.
    pub suspects: Vec<Suspect>,
    /// The catch chance for a few skipped shares.
    pub caught_if_skipped: Vec<CatchChance>,
    /// The chance per job that an honest worker is called a suspect.
    pub false_alarm_per_job: f64,
    /// The bound in words.
    pub bound: Option<String>,
}

/// A search's result: `noncectl search --json`, a finished job's `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The answer (the lowest golden nonce found).
    pub nonce: Option<u64>,
    /// The answer's hash (hex, as it prints).
    pub hash: Option<String>,
    /// The answer's digest (hex, in byte order).
    pub digest: Option<String>,
    /// The answer's leading zero bits.
    pub leading_zeros: Option<u32>,
    /// Golden nonces found (the lowest 100).
    pub found: Vec<u64>,
    /// The best hash, where no golden nonce was found.
    pub best: Option<Best>,
    /// Nonces searched.
    pub searched: u128,
    /// Seconds it took.
    pub elapsed_s: f64,
    /// Nonces a second over its life.
    pub rate: f64,
    /// Workers asked for.
    pub workers: usize,
    /// Workers that said hello (absent in reports journaled before it existed).
    #[serde(default)]
    pub workers_started: Option<usize>,
    /// 16 hex digits.
    pub job_id: String,
    /// `first`, `lowest` or `exhaustive`.
    pub mode: String,
    /// Workers found silent past the stall timeout.
    #[serde(default)]
    pub stalls: u64,
    /// Ranges handed to other workers.
    #[serde(default)]
    pub reshards: u64,
    /// Workers their platform stopped mid-work (a Fargate Spot interruption, SIGTERM): their
    /// last progress kept, the rest re-sharded (absent in reports journaled before it existed).
    #[serde(default)]
    pub interruptions: u64,
    /// Ranges taken from busy workers for idle ones.
    #[serde(default)]
    pub steals: u64,
    /// Messages of other jobs or workers, dropped.
    #[serde(default)]
    pub ghosts: u64,
    /// Claims refused (unverified nonces, bad shares).
    #[serde(default)]
    pub rejected: u64,
    /// Messages refused for a bad tag.
    #[serde(default)]
    pub forged: u64,
    /// Messages refused as replays.
    #[serde(default)]
    pub replayed: u64,
    /// What was checked of the workers' claims.
    #[serde(default)]
    pub verification: VerificationReport,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The transport's counters (SQS requests and the like), where it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportCounts>,
}

/// `search.map`'s reply: which parts of a job's range are done and by whom, its timeline and
/// what it has cost (what the dashboard draws).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceMap {
    /// 16 hex digits.
    pub job_id: String,
    /// Its range, `[start, end)`, decimal.
    pub range: [String; 2],
    /// `threads`, `process` or `ecs`.
    pub launcher: String,
    /// Its counters over time (none once forgotten).
    pub timeline: Option<Timeline>,
    /// Seconds a worker may be silent before the dashboard greys it.
    pub stale_after_s: f64,
    /// Worker vCPU-seconds so far, as the daily quota counts them.
    pub vcpu_seconds: f64,
    /// Their cost at the launcher's price (0 for this host's own CPUs).
    pub cost_usd: f64,
    /// `fargate` (priced) or `local`.
    pub cost_basis: String,
    /// The price used, where there is one.
    pub usd_per_vcpu_second: Option<f64>,
    /// The date of the prices.
    pub prices_as_of: String,
    /// Nonces an earlier life searched (a resumed job), decimal.
    pub resumed_searched: String,
    /// Whether it has ended (`result` then holds its report, `status` is absent).
    pub finished: bool,
    /// Nonces a second in this daemon's life.
    pub rate: f64,
    /// Its report, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Report>,
    /// Its progress, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Progress>,
    /// More intervals than were sent (the lowest are).
    #[serde(default)]
    pub truncated: bool,
    /// The range in pieces, lowest first (none once finished).
    pub intervals: Vec<Interval>,
    /// Its workers (none once finished).
    pub workers: Vec<SpaceWorker>,
}

/// A job's counters over time: samples and the supervision events between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Progress, at most one a second (thinned as it grows).
    pub samples: Vec<TimelineSample>,
    /// Stalls, reshards, steals, launches and the like, as they were counted.
    pub events: Vec<TimelineEvent>,
}

/// One point of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineSample {
    /// Seconds since the job started.
    pub t: f64,
    /// Nonces searched (a float: a picture needs no more).
    pub searched: f64,
    /// Nonces a second.
    pub rate: f64,
    /// Workers heartbeating.
    pub workers: usize,
}

/// Counters that grew between two samples of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Seconds since the job started.
    pub t: f64,
    /// `stall`, `reshard`, `interruption`, `steal`, `launch`, `ghost` or `rejected`.
    pub kind: String,
    /// By how much.
    pub count: u64,
}

/// A piece of a job's range in [`SpaceMap`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// First nonce, decimal.
    pub start: String,
    /// One past the last, decimal.
    pub end: String,
    /// Nobody's, searched, or a worker's to search.
    pub state: IntervalState,
    /// The worker it is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Where that worker's shard starts, decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_start: Option<String>,
}

/// What an [`Interval`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalState {
    /// Waiting for a worker.
    Free,
    /// Searched, its work verified.
    Done,
    /// A worker's.
    Assigned,
}

/// A worker in [`SpaceMap`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceWorker {
    /// The worker's name.
    pub worker: String,
    /// Live, stalled, gone or suspect.
    pub health: Health,
    /// Nonces a second, from its heartbeats.
    pub rate: f64,
    /// The ranges it holds, `[start, end)`, decimal.
    pub ranges: Vec<[String; 2]>,
    /// Seconds since it was last heard.
    pub silent_s: f64,
    /// Seconds from its launch to its first Hello.
    pub startup_s: Option<f64>,
}
