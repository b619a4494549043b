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
    /// A golden nonce, verified (and, for `lowest`, every nonce below it searched).
    Found,
    /// The whole range searched, no golden nonce in it.
    Exhausted,
    /// Cancelled by the user.
    Cancelled,
    /// The deadline came first.
    TimedOut,
    /// It could not go on, and why (no worker could be launched, say).
    Failed(String),
}

impl OutcomeKind {
    /// The report's `outcome`.
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
    /// Of those, the nonces an earlier life of the job had searched (a resumed job): this
    /// life's rate leaves them out.
    pub resumed: u128,
    /// Workers found silent past the stall timeout.
    pub stalls: u64,
    /// Ranges handed to another worker (a stall, an exit, an eviction).
    pub reshards: u64,
    /// Messages of other jobs, dropped.
    pub ghosts: u64,
    /// Messages from the wrong owner or epoch, or of finished shards, ignored.
    pub stale: u64,
    /// `Found` claims that failed verification.
    pub rejected: u64,
    /// Messages whose tag did not verify under the key of the worker they name (or a valid
    /// worker's `Hello` naming an inbox not its own): dropped, never acted on.
    pub forged: u64,
    /// Messages seen before (same worker, same sequence number): dropped.
    pub replayed: u64,
    /// Work taken from a busy worker's shard for an idle one (`Shrink`).
    pub steals: u64,
    /// Workers that left with work in hand because their platform stopped them (SIGTERM: a
    /// Fargate Spot interruption); their final progress was kept, the rest re-sharded.
    pub interruptions: u64,
    /// Workers launched (replacements included).
    pub launched: usize,
    /// Workers heartbeating now.
    pub workers_live: usize,
    /// Workers that ever said Hello.
    pub workers_seen: usize,
    /// Sum of the live workers' last reported rates, nonces per second.
    pub rate: f64,
}

/// The end of a job: its answer and its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// How it ended.
    pub kind: OutcomeKind,
    /// The answer: the nonce that ended a `first` job, the lowest golden one otherwise.
    pub nonce: Option<u64>,
    /// Verified golden nonces, lowest first (at most [`MAX_FOUND`]).
    pub found: Vec<u64>,
    /// The verified hash with the most leading zero bits seen.
    pub best: Option<Best>,
    /// Its counters at the end.
    pub stats: Stats,
    /// From its start to its end.
    pub elapsed: Duration,
    /// Each launched worker's start-up (launch request to its first `Hello`), in the order they
    /// joined: the samples the planner learns start-up from ([`crate::startup`]). Empty for a
    /// resumed job, whose first Hellos may be adopted workers rather than launched ones.
    pub startups: Vec<Duration>,
    /// How long each launch that never said Hello had waited when the job ended: start-ups
    /// known only to be longer than that (censored samples). Empty for a resumed job.
    pub unstarted: Vec<Duration>,
    /// How far the answer can be trusted: shares verified, spot checks, suspects.
    pub verification: Verification,
}

/// What a job checked of its workers' work, and what it found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verification {
    /// Leading zero bits that make a hash a share.
    pub share_bits: u32,
    /// Shares received and verified (each one double hash).
    pub shares_verified: u64,
    /// Shares expected from the nonces credited to workers.
    pub shares_expected: f64,
    /// Spot checks: sub-ranges of claimed work searched again by another worker.
    pub spot_checks: u64,
    /// Nonces those spot checks covered.
    pub spot_checked_nonces: u128,
    /// Spot checks whose answer differed from the claim (a worker caught).
    pub spot_check_mismatches: u64,
    /// Spot checks assigned but not answered when the job ended.
    pub spot_checks_pending: u64,
    /// Workers caught, why, and how much of their claimed work was searched again.
    pub suspects: Vec<Suspect>,
    /// For the worker with the least evidence (fewest expected shares): the chance it would
    /// have been caught had it skipped half, a tenth, a hundredth of what it claimed.
    pub catch_if_skipped: Vec<(f64, f64)>,
    /// The false-alarm rate per job the share test was set for.
    pub false_alarm: f64,
}

/// A worker found lying or miscomputing.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspect {
    /// The worker.
    pub worker: WorkerId,
    /// What gave it away (a share that does not verify, too few shares, a spot check).
    pub reason: String,
    /// Nonces it had claimed, put back to be searched by others.
    pub reopened: u128,
    /// When, since the job started.
    pub at: Duration,
}

/// A worker's health as its job sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerHealth {
    /// Heartbeating.
    Live,
    /// Silent past the stall timeout; may come back.
    Stalled,
    /// Known gone (it said Bye, its process or task ended).
    Gone,
    /// Caught lying or miscomputing: stopped, its claims searched again, never heard again.
    Suspect,
}

impl WorkerHealth {
    /// The name on the wire (`workers.list`, the dashboard).
    pub fn name(self) -> &'static str {
        match self {
            WorkerHealth::Live => "live",
            WorkerHealth::Stalled => "stalled",
            WorkerHealth::Gone => "gone",
            WorkerHealth::Suspect => "suspect",
        }
    }
}

/// One worker as the job sees it, for `workers.list`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// The worker.
    pub worker: WorkerId,
    /// Heartbeating, stalled, gone, or caught.
    pub health: WorkerHealth,
    /// Its last reported rate, nonces a second.
    pub rate: f64,
    /// Shards it holds.
    pub shards: usize,
    /// Time since the worker was last heard from.
    pub silent_for: Duration,
    /// What it still holds: each shard from its watermark to its end.
    pub ranges: Vec<NonceRange>,
    /// Launch to first Hello, for a worker this job launched.
    pub startup: Option<Duration>,
    /// Shares verified from it, and how many its credited work should have held.
    pub shares: u64,
    /// The shares its credited nonces should have held, on average.
    pub shares_expected: f64,
}

/// The nonce space of a job as its ledger holds it ([`crate::job::Job::space_map`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceMap {
    /// The job's whole range.
    pub range: NonceRange,
    /// Its intervals in order, each in one state.
    pub intervals: Vec<MapSpan>,
    /// More intervals than asked for: the rest are left out.
    pub truncated: bool,
}

/// One interval of a [`SpaceMap`].
#[derive(Clone, Debug, PartialEq)]
pub struct MapSpan {
    /// The interval.
    pub range: NonceRange,
    /// What it is doing.
    pub state: MapState,
}

/// What an interval of the space is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum MapState {
    /// Nobody's: waiting for a worker.
    Free,
    /// Searched (credited).
    Done,
    /// Held by `worker`'s shard that began at `shard_start` (the interval starts at its
    /// watermark: everything below is done).
    Assigned {
        /// The worker holding it.
        worker: WorkerId,
        /// Where its shard began.
        shard_start: u128,
    },
}

/// A snapshot for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// Nonces in the job's range.
    pub total: u128,
    /// Its counters now.
    pub stats: Stats,
    /// The lowest verified golden nonce so far.
    pub lowest: Option<u64>,
    /// Whether it has an outcome.
    pub finished: bool,
    /// The checks of its workers' claims so far.
    pub verification: Verification,
}
