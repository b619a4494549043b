//! The actix shells around the decision core: [`registry::Coordinator`] starts one
//! [`supervisor::JobSupervisor`] per job, finds it again by id, and starts it again from its
//! last kept snapshot should it die (a panic: a bug); the supervisor owns the
//! job's `nonce_core::job::Job`, feeds it events and ticks, and carries out its outputs
//! through a transport and a launcher. No decision is made here.
//!
//! actix runs actors on a single-threaded arbiter: the system is started on a multi-thread
//! tokio runtime ([`system`]), handlers never block, and hashing runs on its own OS threads.

pub mod follow;
pub mod registry;
pub mod supervisor;

pub use follow::{follow, given_up, FollowError, Followed, Update};
pub use registry::{CancelById, Coordinator, FindJob, ListJobs, StartError, StartJob};
#[cfg(any(test, feature = "fault-injection"))]
pub use supervisor::Crash;
pub use supervisor::{
    wait, CancelJob, GetSpaceMap, GetStatus, GetTransportCounters, GetWorkers, JobSupervisor, JobWatch,
    SupervisorGone, WatchJob, LINGER,
};

/// A multi-thread tokio runtime under an actix system, as the coordinator needs.
pub fn system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    })
}

/// A test job that runs long enough for its actor to be killed mid-search: exhaustive over
/// 2^26 nonces (a few seconds on one thread) with a few dozen golden nonces in it, every one
/// of which must be listed whatever happened to its actor.
#[cfg(test)]
pub(crate) fn restartable() -> crate::request::JobSpec {
    use protocol::{Encoding, Mode, NonceRange, Puzzle};
    let puzzle = Puzzle::append(b"nonce-cloud restart".to_vec(), Encoding::Be32, 20).expect("valid");
    let mut spec = crate::request::JobSpec::new(puzzle, Mode::Exhaustive, NonceRange::new(0, 1 << 26));
    spec.workers = 1;
    spec.threads_per_worker = 1;
    spec
}
