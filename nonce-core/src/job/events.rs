//! The job's inputs and outputs: everything that can happen to a job, and everything it can
//! ask of its shell. They are the whole interface between the decisions and the world, so a
//! simulation can drive a job with nothing else.

use super::Outcome;
use protocol::{Command, Event, WorkerId};

/// What happens to a job.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Begin: launch the planned fleet.
    Start,
    /// A message from a worker (possibly stale, duplicated, or of another job).
    Event(Event),
    /// Time passed.
    Tick,
    /// The user cancelled.
    Cancel,
    /// The launcher could not start `count` of the workers asked for.
    LaunchFailed { count: usize, reason: String },
    /// The launcher knows this worker is gone (process exit, task stopped).
    WorkerExited(WorkerId),
}

/// What the job asks its shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send { worker: WorkerId, inbox: String, command: Command },
    Broadcast(Command),
    Launch { count: usize },
    StopWorkers,
    Finish(Outcome),
}
