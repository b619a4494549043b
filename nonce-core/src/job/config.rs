//! `JobConfig`: everything fixed about a job when it starts. The shells choose the timings
//! (in memory they are short; over SQS every message is a request, so they are longer); the
//! state machine only reads them.

use super::Snapshot;
use protocol::auth::JobSecret;
use protocol::{JobId, Mode, NonceRange, Puzzle, WorkerId};
use std::time::Duration;

/// Everything fixed about a job when it starts.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Its id.
    pub job: JobId,
    /// What is hashed, and when a hash is golden.
    pub puzzle: Puzzle,
    /// When the answer is proven (`first`, `lowest`, `exhaustive`).
    pub mode: Mode,
    /// The nonces searched.
    pub range: NonceRange,
    /// Workers to launch at the start.
    pub workers: usize,
    /// Most workers the job may launch in all, replacements included.
    pub max_launches: usize,
    /// A worker silent this long loses its shards.
    pub stall_timeout: Duration,
    /// How often the coordinator broadcasts that it is alive.
    pub keepalive: Duration,
    /// How often workers report. The job looks at its workers (stalls, lost shrinks,
    /// keep-alives, idle workers) every half of it: see [`crate::job::Job::poll_timeout`].
    pub heartbeat: Duration,
    /// Progress is handed to the shell to keep ([`crate::job::Output::Persist`]) at most this
    /// often, a new golden nonce at once: a coordinator that dies loses at most this much
    /// searching, and a journal is not written on every heartbeat.
    pub persist_every: Duration,
    /// End the job as `timed_out` at this time after the start.
    pub deadline: Option<Duration>,
    /// Smallest piece worth stealing from a busy worker.
    pub min_steal: u128,
    /// Smallest shard `lowest` hands out: each shard costs an `Assign` and a `ShardDone`,
    /// free in memory but a request each over SQS.
    pub min_shard: u128,
    /// With no worker live, none starting and no launches left for this long, the job fails
    /// (so it never waits forever); a launch that never says Hello is written off after it.
    pub abandon_after: Duration,
    /// The launcher sends each launch request when the account's quotas allow (the `ecs`
    /// launcher) and says so with [`crate::job::Input::LaunchSent`]: until then a launch is
    /// queued, neither timed nor written off; its start-up counts from the request.
    pub paced_launches: bool,
    /// Progress from an earlier run of this job, to resume from.
    pub resume: Option<Snapshot>,
    /// Which life of the coordinator this is; sent in keep-alives so workers that outlived
    /// an earlier one re-introduce themselves.
    pub incarnation: u64,
    /// The job's root secret: every worker's key derives from it (see [`protocol::auth`]).
    /// Kept across lives of the coordinator, so adopted workers still verify.
    pub secret: JobSecret,
    /// Where a worker's inbox must be: a `Hello` naming any other is refused (and so is a
    /// sweep of it), so no one can have the coordinator write to, or delete, a foreign queue.
    pub inbox: InboxRule,
    /// Shares: nonces with at least this many leading zero bits, reported with the progress
    /// that covers them (see [`crate::proof`]).
    pub share_bits: u32,
    /// The chance, per job, that an honest worker is wrongly made suspect by the share count.
    pub false_alarm: f64,
    /// The fraction of claimed work searched again by another worker (spot checks).
    pub spot_check: f64,
    /// The same below a `lowest` job's answer so far, where a hidden golden nonce would
    /// change the answer.
    pub spot_check_lowest: f64,
}

/// Where a worker's inbox must be: `before` + its id + `after` (its queue URL under the
/// deployment's inbox prefix, `stdio://<id>`, `mem://<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxRule {
    /// What comes before the worker's id.
    pub before: String,
    /// What comes after it.
    pub after: String,
}

impl InboxRule {
    /// Inboxes `before` + id + `after`.
    pub fn new(before: impl Into<String>, after: impl Into<String>) -> Self {
        InboxRule { before: before.into(), after: after.into() }
    }

    /// The inbox `worker` must have.
    pub fn inbox_of(&self, worker: &WorkerId) -> String {
        format!("{}{}{}", self.before, worker.0, self.after)
    }

    /// Whether `inbox` is the one `worker` must have.
    pub fn allows(&self, worker: &WorkerId, inbox: &str) -> bool {
        inbox == self.inbox_of(worker)
    }
}

impl JobConfig {
    /// A config with the timings that suit in-process workers (inboxes `mem://<id>`).
    pub fn new(
        job: JobId,
        secret: JobSecret,
        puzzle: Puzzle,
        mode: Mode,
        range: NonceRange,
        workers: usize,
    ) -> Self {
        let workers = workers.max(1);
        let share_bits = crate::proof::DEFAULT_SHARE_BITS.min(puzzle.max_share_bits()).max(1);
        JobConfig {
            job,
            puzzle,
            mode,
            range,
            workers,
            max_launches: workers * 2,
            stall_timeout: Duration::from_secs(3),
            keepalive: Duration::from_millis(500),
            heartbeat: Duration::from_millis(250),
            persist_every: Duration::from_secs(1),
            deadline: None,
            // Above a worker's chunk (2^16) so a steal frees real work, not a claimed chunk.
            min_steal: 1 << 18,
            min_shard: 1 << 16,
            abandon_after: Duration::from_secs(60),
            paced_launches: false,
            resume: None,
            incarnation: 1,
            secret,
            inbox: InboxRule::new("mem://", ""),
            share_bits,
            false_alarm: crate::proof::DEFAULT_FALSE_ALARM,
            spot_check: crate::proof::DEFAULT_SPOT_CHECK,
            spot_check_lowest: crate::proof::DEFAULT_SPOT_CHECK_LOWEST,
        }
    }
}
