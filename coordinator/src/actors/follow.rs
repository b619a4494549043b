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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{restartable, system, Crash, FindJob, StartJob};
    use actix::Actor;
    use protocol::NonceRange;
    use std::time::Duration;

    /// What the embedded CLI waits with: a follower of a job whose actor dies mid-search is
    /// handed the next life's end, not the first actor's death.
    #[test]
    fn a_follower_follows_a_job_across_its_lives_to_its_end() {
        let (followed, lives, seen) = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let (job, sup) =
                coordinator.send(StartJob(restartable(), None)).await.expect("sent").expect("started");
            let mut watch = sup.send(WatchJob).await.expect("sent");
            let _ = watch.kept.wait_for(|k| k.as_ref().is_some_and(|s| !s.done.is_empty())).await;
            let first = sup.clone();
            sup.do_send(Crash);
            let mut seen = 0;
            let (outcome, last) =
                follow(&coordinator, job, sup, |_| seen += 1).await.expect("followed to its end");
            (outcome, last != first, seen)
        });
        assert_eq!(followed.kind.name(), "found", "{:?}", followed.kind);
        assert_eq!(followed.stats.searched, 1 << 26, "the whole range, over two lives");
        assert!(lives, "the outcome is the second life's");
        assert!(seen > 0, "progress was shown");
    }

    #[test]
    fn a_follower_of_a_job_that_keeps_dying_is_told_it_was_given_up() {
        let followed = system().block_on(async {
            let coordinator = Coordinator::default().start();
            let mut spec = restartable();
            spec.range = NonceRange::new(0, 1 << 40);
            let (job, sup) = coordinator.send(StartJob(spec, None)).await.expect("sent").expect("started");
            let killer = coordinator.clone();
            actix::spawn(async move {
                // Every life it finds, until the registry gives the job up.
                while let Some(s) = killer.send(FindJob(job)).await.ok().flatten() {
                    s.do_send(Crash);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            tokio::time::timeout(Duration::from_secs(10), follow(&coordinator, job, sup, |_| {}))
                .await
                .expect("the follower is told within 10 s")
                .map(|(o, _)| o.kind)
        });
        assert!(matches!(followed, Err(FollowError::GivenUp(_))), "{followed:?}");
    }
}
