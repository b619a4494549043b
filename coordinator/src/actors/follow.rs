//! Following a job to its end across its lives: what the embedded CLI waits with. An actor
//! that dies (a panic: a bug) is started again by the registry from its last kept snapshot;
//! a follower that waited on the dead actor alone would report a failure while the job went
//! on without anyone to report its answer.

use super::registry::{next_life, Coordinator, NextLife, MAX_RESTARTS};
use super::supervisor::{wait, JobSupervisor, JobWatch, WatchJob};
use actix::Addr;
use nonce_core::job::{Outcome, OutcomeKind, Snapshot, Status};
use protocol::JobId;
use std::time::{Duration, Instant};

/// Why a followed job has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The registry is gone (the program is ending).
    #[error("job {0}: the coordinator stopped")]
    CoordinatorGone(JobId),
    /// Its actor died while the follower's `keep_following` said no more (the program is
    /// ending, and takes no death for the job's: a daemon's journal keeps it to resume).
    #[error("job {0}: no longer followed")]
    Abandoned(JobId),
}

/// What a follower is shown of a job as it runs.
#[derive(Debug, Clone, Copy)]
pub enum Update<'a> {
    /// Its progress, as published after an input that changed it.
    Status(&'a Status),
    /// What it handed out to keep (to journal: a restart resumes from it).
    Kept(&'a Snapshot),
}

/// How a followed job ended.
#[derive(Debug)]
pub struct Followed {
    /// Its outcome: the last life's, or [`given_up`]'s when the registry gave it up.
    pub outcome: Outcome,
    /// The actor of its last life (still there for its linger after an end: its counters
    /// can be asked for; gone when the job was given up).
    pub last_life: Addr<JobSupervisor>,
}

/// Waits for `job`, whose actor is `sup`, to end, in whichever life; `on_update` sees its
/// progress and what it hands out to keep as they are published. After a death, the next
/// life is looked for only while `keep_following` says so. A job given up (its actor kept
/// dying) ends failed with every golden nonce it had verified ([`given_up`]).
pub async fn follow(
    coordinator: &Addr<Coordinator>,
    job: JobId,
    mut sup: Addr<JobSupervisor>,
    mut on_update: impl FnMut(Update<'_>),
    keep_following: impl Fn() -> bool,
) -> Result<Followed, FollowError> {
    let since = Instant::now();
    let (mut last, mut last_kept) = (None, None);
    loop {
        if let Ok(JobWatch { mut kept, mut status }) = sup.send(WatchJob).await {
            let this = sup.clone();
            let ended = wait(&this);
            tokio::pin!(ended);
            loop {
                tokio::select! {
                    biased;
                    res = &mut ended => match res {
                        Ok(outcome) => return Ok(Followed { outcome, last_life: sup }),
                        Err(_) => break, // it died
                    },
                    Ok(()) = kept.changed() => {
                        let Some(snapshot) = kept.borrow_and_update().clone() else { continue };
                        on_update(Update::Kept(&snapshot));
                        last_kept = Some(snapshot);
                    }
                    Ok(()) = status.changed() => {
                        let now = status.borrow_and_update().clone();
                        on_update(Update::Status(&now));
                        last = Some(now);
                    }
                }
            }
        }
        if !keep_following() {
            return Err(FollowError::Abandoned(job));
        }
        match next_life(coordinator, job, &sup).await {
            NextLife::Started(next) => sup = next,
            NextLife::GivenUp => {
                let outcome = given_up(last.take(), last_kept.take(), since.elapsed());
                return Ok(Followed { outcome, last_life: sup });
            }
            NextLife::Unknown => return Err(FollowError::CoordinatorGone(job)),
        }
    }
}

/// The end of a job whose actor kept dying (see [`super::registry`]): failed, with what it
/// had verified by its last published state and its last kept snapshot, so every golden nonce
/// found before is still reported.
pub fn given_up(last: Option<Status>, kept: Option<Snapshot>, elapsed: Duration) -> Outcome {
    let last = last.unwrap_or_else(|| Status {
        total: 0,
        stats: Default::default(),
        lowest: None,
        finished: false,
        verification: Default::default(),
    });
    let why =
        format!("the job's actor died {} times (a bug: see the log); it was given up", MAX_RESTARTS + 1);
    let mut found: Vec<u64> = kept.map(|k| k.found).unwrap_or_default();
    found.extend(last.lowest);
    found.sort_unstable();
    found.dedup();
    Outcome {
        kind: OutcomeKind::Failed(why),
        nonce: found.first().copied(),
        found,
        best: None,
        stats: last.stats,
        elapsed,
        startups: vec![],
        unstarted: vec![],
        verification: last.verification,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{restartable, system, Crash, FindJob, StartJob};
    use actix::Actor;
    use protocol::NonceRange;

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
            let Followed { outcome, last_life } =
                follow(&coordinator, job, sup, |_| seen += 1, || true).await.expect("followed to its end");
            (outcome, last_life != first, seen)
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
            tokio::time::timeout(Duration::from_secs(10), follow(&coordinator, job, sup, |_| {}, || true))
                .await
                .expect("the follower is told within 10 s")
                .map(|f| f.outcome.kind)
        });
        let Ok(OutcomeKind::Failed(why)) = &followed else { panic!("{followed:?}") };
        assert!(why.contains("given up"), "{why}");
    }

    #[test]
    fn a_job_given_up_reports_every_golden_nonce_it_had_kept_not_only_the_lowest() {
        let last = Status {
            total: 1 << 32,
            stats: Default::default(),
            lowest: Some(7),
            finished: false,
            verification: Default::default(),
        };
        let kept = Snapshot { done: vec![], found: vec![7, 90, 4_000_000] };
        let o = given_up(Some(last), Some(kept), Duration::from_secs(3));
        assert!(matches!(o.kind, OutcomeKind::Failed(_)), "{:?}", o.kind);
        assert_eq!(o.found, vec![7, 90, 4_000_000]);
        assert_eq!(o.nonce, Some(7));
        // Nothing kept or published: nothing claimed.
        let o = given_up(None, None, Duration::ZERO);
        assert!(o.found.is_empty() && o.nonce.is_none());
    }
}
