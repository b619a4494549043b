//! The job's inputs and outputs: everything that can happen to a job, and everything it can
//! ask of its shell. They are the whole interface between the decisions and the world, so a
//! simulation can drive a job with nothing else.

use super::Outcome;
use protocol::{Command, SealedEvent, WorkerId};

/// What happens to a job.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin: launch the planned fleet.
    Start,
    /// A message from a worker, as sealed (possibly forged, replayed, stale, duplicated, or
    /// of another job): the job checks its tag before anything else.
    Event(SealedEvent),
    /// Time passed.
    Tick,
    /// The user cancelled.
    Cancel,
    /// The launcher has just sent these workers' launch requests (only launchers that pace
    /// them: see [`super::JobConfig::paced_launches`]).
    LaunchSent { workers: Vec<WorkerId> },
    /// The launcher could not start these workers.
    LaunchFailed { workers: Vec<WorkerId>, reason: String },
    /// The launcher knows this worker is gone (process exit, task stopped).
    WorkerExited(WorkerId),
}

/// What the job asks its shell to do, in the order given: a `Send` or `Broadcast` before a
/// `Finish` must still go out (the shell seals each with the worker's or the job's key).
// `Finish` is large (the outcome with its verification) but comes once per job: boxing it
// would cost every caller a deref for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Deliver `command` to `worker`'s inbox.
    Send { worker: WorkerId, inbox: String, command: Command },
    /// Deliver `command` to every worker of the job (the control topic).
    Broadcast(Command),
    /// Start these workers, each with its own key (`JobSecret::worker_key`).
    Launch { workers: Vec<WorkerId> },
    /// Stop this one worker by force (it was found lying or miscomputing): it was told to
    /// stop, and nothing it says is believed any more.
    Evict { worker: WorkerId },
    /// Stop every worker the job started (after the `Stop` broadcast).
    StopWorkers,
    /// The job has ended with this outcome: nothing follows.
    Finish(Outcome),
}
