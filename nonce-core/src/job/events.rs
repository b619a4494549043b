//! The job's inputs and outputs: everything that can happen to a job, and everything it can
//! ask of its shell. They are the whole interface between the decisions and the world, so a
//! simulation can drive a job with nothing else.

use super::{Outcome, Snapshot};
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
    LaunchSent {
        /// Whose requests.
        workers: Vec<WorkerId>,
    },
    /// The launcher could not start these workers.
    LaunchFailed {
        /// Who.
        workers: Vec<WorkerId>,
        /// Why, in words.
        reason: String,
    },
    /// The launcher knows this worker is gone (process exit, task stopped).
    WorkerExited(WorkerId),
}

/// What the job asks its shell to do. The shell carries out the outputs of one `handle` in
/// the order given, all of them, before it feeds the next input; a failure it meets doing so
/// comes back as an input (`LaunchFailed`, `WorkerExited`), never as a skipped output. The
/// order within one batch follows these rules:
///
/// - commands (`Send`, `Broadcast`) to one worker go in the order given; across workers no
///   order is promised (over SQS there is none), and none is needed: every assignment
///   carries an epoch, so a late `Revoke` or `Shrink` cannot touch a newer assignment;
/// - `Persist` comes after the commands of the same input and carries the whole state to
///   keep, so keeping only the newest is correct;
/// - an end is `Broadcast(Stop)`, then `StopWorkers`, then `Finish`, always last: the stop
///   goes out on the control topic before any worker is stopped by force, and nothing follows
///   `Finish` (no output, no `poll_timeout`), ever.
///
/// Between batches the shell owes the job only time: it feeds `Input::Tick` no later than
/// [`super::Job::poll_timeout`] says.
// `Finish` is large (the outcome with its verification) but comes once per job: boxing it
// would cost every caller a deref for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Deliver `command` to `worker`'s inbox, sealed with that worker's key. Delivery may
    /// fail or be late: the job copes with lost commands (timeouts, epochs), so the shell
    /// does not retry or report it.
    Send {
        /// To whom.
        worker: WorkerId,
        /// Its inbox.
        inbox: String,
        /// What.
        command: Command,
    },
    /// Deliver `command` to every worker of the job (the control topic), sealed with the
    /// job's broadcast key.
    Broadcast(Command),
    /// Start these workers, each with its own key (`JobSecret::worker_key`). A shell that
    /// paces launches (`JobConfig::paced_launches`) answers `LaunchSent` as each request
    /// goes out; one that cannot start some answers `LaunchFailed`.
    Launch {
        /// The workers, named by the job.
        workers: Vec<WorkerId>,
    },
    /// Stop this one worker by force (it was found lying or miscomputing): it was told to
    /// stop, and nothing it says is believed any more. The shell forgets its key.
    Evict {
        /// The worker.
        worker: WorkerId,
    },
    /// Keep this snapshot durably in place of the last one: a shell that restarts the job
    /// resumes from the newest it kept ([`JobConfig::resume`](super::JobConfig::resume)).
    /// It comes when the kept state would change, at most every
    /// [`persist_every`](super::JobConfig::persist_every), and at once for a new golden
    /// nonce; never for a job that has finished (its `Finish` carries everything).
    Persist(Snapshot),
    /// Stop every worker the job started (after the `Stop` broadcast).
    StopWorkers,
    /// The job has ended with this outcome: nothing follows.
    Finish(Outcome),
}
