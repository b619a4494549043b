//! What a job reports: its counters while it runs (`Stats`, `Status`, `WorkerInfo`, the
//! views behind progress bars and `workers.list`) and its end (`Outcome`). Plain data, so
//! the CLI, the daemon and the journal render it without reaching into the state machine.

use protocol::{Best, NonceRange, WorkerId};
use std::time::Duration;

/// Golden nonces a job keeps (the lowest ones).
pub const MAX_FOUND: usize = 100;

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Found,
    Exhausted,
    Cancelled,
    TimedOut,
    Failed(String),
}

impl OutcomeKind {
    pub fn name(&self) -> &'static str {
        match self {
            OutcomeKind::Found => "found",
            OutcomeKind::Exhausted => "exhausted",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::TimedOut => "timed_out",
            OutcomeKind::Failed(_) => "failed",
        }
    }
}

/// Counters the job keeps for users and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Nonces known searched (Done in the ledger).
    pub searched: u128,
    pub stalls: u64,
    pub reshards: u64,
    /// Messages of other jobs, dropped.
    pub ghosts: u64,
    /// Messages from the wrong owner or epoch, or of finished shards, ignored.
    pub stale: u64,
    /// `Found` claims that failed verification.
    pub rejected: u64,
    pub steals: u64,
    pub launched: usize,
    pub workers_live: usize,
    pub workers_seen: usize,
    /// Sum of the live workers' last reported rates, nonces per second.
    pub rate: f64,
}

/// The end of a job: its answer and its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The answer: the nonce that ended a `first` job, the lowest golden one otherwise.
    pub nonce: Option<u64>,
    /// Verified golden nonces, lowest first (at most [`MAX_FOUND`]).
    pub found: Vec<u64>,
    /// The verified hash with the most leading zero bits seen.
    pub best: Option<Best>,
    pub stats: Stats,
    pub elapsed: Duration,
    /// Each launched worker's start-up (launch request to its first `Hello`), in the order they
    /// joined: the samples the planner learns start-up from ([`crate::startup`]). Empty for a
    /// resumed job, whose first Hellos may be adopted workers rather than launched ones.
    pub startups: Vec<Duration>,
    /// How long each launch that never said Hello had waited when the job ended: start-ups
    /// known only to be longer than that (censored samples). Empty for a resumed job.
    pub unstarted: Vec<Duration>,
}

/// One worker as the job sees it, for `workers.list`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    pub worker: WorkerId,
    pub health: &'static str,
    pub rate: f64,
    pub shards: usize,
    /// Time since the worker was last heard from.
    pub silent_for: Duration,
    /// What it still holds: each shard from its watermark to its end.
    pub ranges: Vec<NonceRange>,
    /// Launch to first Hello, for a worker this job launched.
    pub startup: Option<Duration>,
}

/// The nonce space of a job as its ledger holds it ([`crate::job::Job::space_map`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceMap {
    pub range: NonceRange,
    pub intervals: Vec<MapSpan>,
    /// More intervals than asked for: the rest are left out.
    pub truncated: bool,
}

/// One interval of a [`SpaceMap`].
#[derive(Clone, Debug, PartialEq)]
pub struct MapSpan {
    pub range: NonceRange,
    pub state: MapState,
}

/// What an interval of the space is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum MapState {
    Free,
    Done,
    /// Held by `worker`'s shard that began at `shard_start` (the interval starts at its
    /// watermark: everything below is done).
    Assigned {
        worker: WorkerId,
        shard_start: u128,
    },
}

/// A snapshot for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub total: u128,
    pub stats: Stats,
    pub lowest: Option<u64>,
    pub finished: bool,
}
