//! Launchers start and stop a job's workers. They only start things: the workers announce
//! themselves with `Hello` over the transport, like remote ones would.
//!
//! One trait, [`Launcher`], is the seam: [`threads`] (worker actors in this process),
//! [`process`] (`nonce-worker` processes on this machine) and [`ecs`] (Fargate tasks). A new
//! launcher implements it, reports exits with [`WorkerGone`] and late failures with
//! [`LaunchFailed`], and `actors::registry` picks it for a job.

pub mod ecs;
pub mod pacing;
pub mod process;
pub mod threads;

use crate::request::{LaunchDelay, WorkerTimings};
pub use crate::transport::seal::WorkerCredentials;
use crate::transport::WorkerEvent;
use actix::prelude::*;
use nonce_kernel::Backend;
use protocol::{JobId, WorkerId};

pub use ecs::EcsLauncher;
pub use process::ProcessLauncher;
pub use threads::ThreadsLauncher;

/// Tells a job's supervisor that one of its workers is gone.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkerGone(pub WorkerId);

/// Tells a job's supervisor that these workers' launch requests went out just now (a launcher
/// that paces them: `ecs`): their start-ups count from here.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LaunchSent {
    /// Whose requests went out.
    pub workers: Vec<WorkerId>,
}

/// Tells a job's supervisor that workers it asked for could not be started (launchers that
/// start asynchronously, like `ecs`, learn it late).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LaunchFailed {
    /// Who.
    pub workers: Vec<WorkerId>,
    /// Why, in words.
    pub reason: String,
}

/// Starts workers for one job.
pub trait Launcher: Send + 'static {
    /// Starts these workers, each given its credentials over the launch channel only (its
    /// environment, its task's override; never a queue or the topic). Errors say why none
    /// (or not all) could start.
    fn launch(&mut self, workers: Vec<WorkerCredentials>) -> Result<(), LaunchError>;
    /// Stops one worker by force: it was caught lying or miscomputing (it was already told
    /// to stop; this makes sure).
    fn evict(&mut self, worker: &WorkerId);
    /// Stops every worker this launcher started (the broadcast `Stop` is the first resort).
    fn stop_all(&mut self);
}

/// What every launcher needs to start a job's workers: who they serve, where their events
/// and exits go, and how they run.
#[derive(Clone)]
pub struct WorkerWiring {
    /// The job.
    pub job: JobId,
    /// Where the workers' events go (the supervisor).
    pub events: Recipient<WorkerEvent>,
    /// Told when a worker is known gone.
    pub gone: Recipient<WorkerGone>,
    /// Told when a launch fails late.
    pub launch_failed: Recipient<LaunchFailed>,
    /// Told as each paced request goes out.
    pub launch_sent: Recipient<LaunchSent>,
    /// Hashing threads per worker.
    pub threads: usize,
    /// Start each in-process worker only when this gate's buckets allow (`threads` only: the
    /// planner experiment's simulated launch quota), saying so with `LaunchSent`.
    pub launch_gate: Option<crate::request::launch_gate::SharedGate>,
    /// Fargate capacity (`ecs` only).
    pub capacity: crate::request::CapacityKind,
    /// Heartbeat, stall and orphan timings the workers are given.
    pub timings: WorkerTimings,
    /// The hashing kernel the workers use.
    pub backend: Backend,
    /// Wait this long before starting each worker (`threads` only; the planner experiment's
    /// start-up distribution).
    pub launch_delay: Option<LaunchDelay>,
    /// The `nonce-worker` binary (`process` only); `None`: beside this executable.
    pub worker_binary: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for WorkerWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerWiring").field("job", &self.job).field("threads", &self.threads).finish()
    }
}

/// Why workers were not launched (the job records it as each worker's launch failure).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The `nonce-worker` binary is not where it should be.
    #[error("{0}")]
    NoWorkerBinary(String),
    /// The system would not start a process or thread.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What (the worker binary's path, "a pipe reader").
        what: String,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// This launcher cannot start workers here (its reason).
    #[error("{0}")]
    Refused(String),
}

impl LaunchError {
    fn spawn(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
        let what = what.into();
        move |source| LaunchError::Spawn { what, source }
    }
}

/// A launcher that cannot start anything, and says why: the job fails with that reason.
#[derive(Debug)]
pub struct RefusingLauncher(pub String);

impl Launcher for RefusingLauncher {
    fn launch(&mut self, _: Vec<WorkerCredentials>) -> Result<(), LaunchError> {
        Err(LaunchError::Refused(self.0.clone()))
    }

    fn evict(&mut self, _: &WorkerId) {}

    fn stop_all(&mut self) {}
}
