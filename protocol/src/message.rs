//! The messages coordinator and workers exchange. Every one names its job, and every
//! shard-level one its shard and epoch, so stale and foreign messages can be recognised and
//! dropped instead of being acted on (the coursework system's "ghost" results).

pub use crate::auth::{SealedCommand, SealedEvent, SignedBroadcast};
use crate::pow::{Mode, NonceRange, Puzzle};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one search job. Random, so a queue reused across jobs cannot confuse them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s.trim(), 16)
            .map(JobId)
            .map_err(|_| format!("{s:?} is not a job id (16 hex digits)"))
    }
}

/// Identifies one assignment of a range to a worker within a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub u64);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// Bumped every time a shard changes hands or shape; messages from older epochs are stale.
pub type Epoch = u64;

/// Identifies a worker process or actor: chosen by the launcher, unique within a job.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub String);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hash seen by a worker with the most leading zero bits so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Best {
    /// The nonce.
    pub nonce: u64,
    /// Leading zero bits of its double SHA-256.
    pub leading_zeros: u32,
}

/// Progress on one shard: every nonce of the shard below `watermark` has been checked, and
/// `found` holds every golden nonce below it (the shard's lowest, bounded). Results travel
/// with the progress that covers them, so a lost `Found` can never be hidden by a watermark.
///
/// `shares` proves the work of the segment `from..watermark` (what was searched since the
/// previous heartbeat): every nonce in it whose hash has at least the job's share bits of
/// leading zeros, none left out. The coordinator verifies each and counts them against the
/// segment's length; a segment whose `from` is above what the coordinator has credited (a
/// heartbeat lost on the way) leaves the gap to be searched again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardProgress {
    /// The shard.
    pub shard: ShardId,
    /// The assignment it was searched under (a stale epoch is ignored).
    pub epoch: Epoch,
    /// Where this report's segment starts (the previous report's watermark).
    pub from: u128,
    /// Every nonce of the shard below this has been checked.
    pub watermark: u128,
    /// The golden nonces below the watermark (the shard's lowest, bounded).
    pub found: Vec<u64>,
    /// Every share of `from..watermark`, ascending.
    pub shares: Vec<u64>,
}

/// Most shares one segment carries: a worker whose segment holds more reports only the part
/// below its next share, so a message stays far under the size limit.
pub const MAX_SHARES_PER_SEGMENT: usize = 1024;

/// Coordinator -> worker: sent to one worker's inbox, or (`Stop`, `KeepAlive`) to all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Search `range` of `puzzle` as shard `shard`, reporting as shares every nonce whose
    /// hash has at least `share_bits` leading zero bits.
    Assign {
        /// The job.
        job: JobId,
        /// The shard it is searched as.
        shard: ShardId,
        /// This assignment's epoch: later commands for the shard carry it.
        epoch: Epoch,
        /// What to hash.
        puzzle: Puzzle,
        /// Which nonces.
        range: NonceRange,
        /// When a golden nonce ends the shard (`first`) or not.
        mode: Mode,
        /// Leading zero bits that make a hash a share.
        share_bits: u32,
    },
    /// Give up the part of the shard at and above `new_end` (work stealing); answer `ShrinkAck`.
    Shrink {
        /// The job.
        job: JobId,
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// Its end from now on, if the worker has not searched past it.
        new_end: u128,
    },
    /// Stop working on the shard: it has been given to someone else or is no longer needed.
    Revoke {
        /// The job.
        job: JobId,
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
    },
    /// Stop everything for `job` (or for every job when `None`) and exit.
    Stop {
        /// The job; `None`: every job.
        job: Option<JobId>,
    },
    /// The coordinator is alive; workers that stop hearing these stop themselves. A new
    /// `incarnation` means the coordinator restarted: workers say Hello again to be adopted.
    KeepAlive {
        /// The job.
        job: JobId,
        /// Which life of the coordinator sends it.
        incarnation: u64,
    },
}

impl Command {
    /// The job it is for (`None`: a `Stop` for every job).
    pub fn job(&self) -> Option<JobId> {
        match self {
            Command::Assign { job, .. }
            | Command::Shrink { job, .. }
            | Command::Revoke { job, .. }
            | Command::KeepAlive { job, .. } => Some(*job),
            Command::Stop { job } => *job,
        }
    }
}

/// Worker -> coordinator, always naming the job and the sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The job.
    pub job: JobId,
    /// The sender.
    pub worker: WorkerId,
    /// What it says.
    pub body: EventBody,
}

/// What a worker reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    /// The worker is up: where to reach it and how many hashing threads it runs.
    Hello {
        /// Its inbox (an SQS queue URL, `stdio://…`, or an actor's name).
        inbox: String,
        /// Hashing threads.
        cpus: u32,
    },
    /// Liveness and progress, with the worker's hash rate in nonces per second.
    Heartbeat {
        /// Progress of each shard it holds.
        shards: Vec<ShardProgress>,
        /// Nonces a second.
        rate: f64,
        /// Its lowest hash so far.
        best: Option<Best>,
    },
    /// A candidate golden nonce; the coordinator verifies it before believing it.
    Found {
        /// The shard it is in.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// The nonce.
        nonce: u64,
    },
    /// The whole shard has been checked, up to `end` (its end as the worker knew it, which
    /// a `Shrink` may have lowered); `shares` are those of the last segment, `from..end`.
    ShardDone {
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// Its lowest hash.
        best: Option<Best>,
        /// Where the last segment starts.
        from: u128,
        /// The shard's end as the worker knew it.
        end: u128,
        /// Its golden nonces (the lowest, bounded).
        found: Vec<u64>,
        /// The shares of `from..end`.
        shares: Vec<u64>,
    },
    /// Answer to `Shrink`: the shard now ends at `end` (never below what was already claimed).
    ShrinkAck {
        /// The shard.
        shard: ShardId,
        /// Its assignment's epoch.
        epoch: Epoch,
        /// Its end from now on.
        end: u128,
    },
    /// The worker is exiting, and why. Its last heartbeat went out just before, so nothing
    /// it searched is lost.
    Bye {
        /// Why.
        reason: ByeReason,
    },
}

/// Why a worker leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ByeReason {
    /// Told to stop (the job ended), or its launcher stopped it.
    Stopped,
    /// Its platform stopped it (SIGTERM: a Fargate Spot interruption, a StopTask, a host
    /// shutting down) while it still had work.
    Terminated,
    /// The coordinator went silent past the orphan timeout.
    Orphaned,
    /// It could not hash (a thread failed).
    Failed,
}

impl EventBody {
    /// Its name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Hello { .. } => "hello",
            EventBody::Heartbeat { .. } => "heartbeat",
            EventBody::Found { .. } => "found",
            EventBody::ShardDone { .. } => "shard_done",
            EventBody::ShrinkAck { .. } => "shrink_ack",
            EventBody::Bye { .. } => "bye",
        }
    }
}

/// Anything that travels on a transport: always sealed (see [`crate::auth`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// To one worker's inbox.
    Command(SealedCommand),
    /// To every worker of a job (the control topic).
    Broadcast(SignedBroadcast),
    /// To the coordinator (the events queue).
    Event(SealedEvent),
}
