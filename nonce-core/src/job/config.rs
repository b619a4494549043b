//! `JobConfig`: everything fixed about a job when it starts. The shells choose the timings
//! (in memory they are short; over SQS every message is a request, so they are longer); the
//! state machine only reads them.

use super::Snapshot;
use protocol::{JobId, Mode, NonceRange, Puzzle};
use std::time::Duration;

/// Everything fixed about a job when it starts.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub job: JobId,
    pub puzzle: Puzzle,
    pub mode: Mode,
    pub range: NonceRange,
    /// Workers to launch at the start.
    pub workers: usize,
    /// Most workers the job may launch in all, replacements included.
    pub max_launches: usize,
    /// A worker silent this long loses its shards.
    pub stall_timeout: Duration,
    /// How often the coordinator broadcasts that it is alive.
    pub keepalive: Duration,
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
    /// Progress from an earlier run of this job, to resume from.
    pub resume: Option<Snapshot>,
    /// Which life of the coordinator this is; sent in keep-alives so workers that outlived
    /// an earlier one re-introduce themselves.
    pub incarnation: u64,
}

impl JobConfig {
    /// A config with the timings that suit in-process workers.
    pub fn new(job: JobId, puzzle: Puzzle, mode: Mode, range: NonceRange, workers: usize) -> Self {
        let workers = workers.max(1);
        JobConfig {
            job,
            puzzle,
            mode,
            range,
            workers,
            max_launches: workers * 2,
            stall_timeout: Duration::from_secs(3),
            keepalive: Duration::from_millis(500),
            deadline: None,
            // Above a worker's chunk (2^16) so a steal frees real work, not a claimed chunk.
            min_steal: 1 << 18,
            min_shard: 1 << 16,
            abandon_after: Duration::from_secs(60),
            resume: None,
            incarnation: 1,
        }
    }
}
