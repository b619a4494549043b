//! Following a job to its end across its lives: what the embedded CLI waits with. An actor
//! that dies (a panic: a bug) is started again by the registry from its last kept snapshot;
//! a follower that waited on the dead actor alone would report a failure while the job went
//! on without anyone to report its answer.

use super::registry::{next_life, Coordinator, NextLife, MAX_RESTARTS};
use super::supervisor::{wait, JobSupervisor, WatchJob};
use actix::Addr;
use nonce_core::job::{Outcome, Status};
use protocol::JobId;

/// Why a followed job has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// Its actor kept dying, and the registry gave it up.
    #[error("job {0}: its actor died {n} times (a bug: see the log) and it was given up", n = MAX_RESTARTS + 1)]
    GivenUp(JobId),
    /// The registry is gone (the program is ending).
    #[error("job {0}: the coordinator stopped")]
    CoordinatorGone(JobId),
}

/// Waits for `job`, whose actor is `sup`, to end, in whichever life; `on_status` sees its
/// progress as it is published. Answers the outcome and the actor of the life that ended
/// (still there for its linger: its counters can be asked for).
pub async fn follow(
    coordinator: &Addr<Coordinator>,
    job: JobId,
    mut sup: Addr<JobSupervisor>,
    mut on_status: impl FnMut(&Status),
) -> Result<(Outcome, Addr<JobSupervisor>), FollowError> {
    loop {
        if let Ok(watch) = sup.send(WatchJob).await {
            let mut status = watch.status;
            let this = sup.clone();
            let ended = wait(&this);
            tokio::pin!(ended);
            loop {
                tokio::select! {
                    res = &mut ended => match res {
                        Ok(outcome) => return Ok((outcome, sup)),
                        Err(_) => break, // it died
                    },
                    Ok(()) = status.changed() => on_status(&status.borrow_and_update()),
                }
            }
        }
        match next_life(coordinator, job, &sup).await {
            NextLife::Started(next) => sup = next,
            NextLife::GivenUp => return Err(FollowError::GivenUp(job)),
            NextLife::Unknown => return Err(FollowError::CoordinatorGone(job)),
        }
    }
}
