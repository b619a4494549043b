//! Launches paced to the account's quotas. Fargate meters task launches and `RunTask` calls
//! with token buckets per account and Region (`nonce_core::launch_quota`); asking faster than
//! they refill only earns `ThrottlingException`s, and the coursework system's fleets took
//! longer to launch the larger they were for exactly that reason. So calls go out as fast as
//! the buckets allow and no faster, several at once (a call takes a few hundred ms), from one
//! gate that every job of the process shares; a throttle anyway (another program on the
//! account) empties our bucket and the call is sent again; "Capacity is unavailable" is tried
//! again with exponential backoff for a bounded time, after which those workers are given up
//! and the job goes on with the ones it has.

pub use crate::request::launch_gate::SharedGate;
pub use crate::request::RetryPolicy;
use aws_transport::ecs::RunOutcome;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a paced launch did, for the logs and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTally {
    /// RunTask calls sent.
    pub calls: usize,
    /// Workers started.
    pub started: usize,
    /// Calls throttled (and sent again).
    pub throttled: usize,
    /// Calls that failed in a way a retry may fix (and were retried).
    pub transient: usize,
    /// Calls refused for want of capacity (and retried after a backoff).
    pub no_capacity: usize,
    /// Workers given up after the retry bound.
    pub given_up: usize,
    /// Workers whose launch failed for good.
    pub failed: usize,
}

struct Pending<T> {
    item: T,
    first_try: Option<Instant>,
    tries: u32,
}

/// Launches every item through `run`, paced by `gate`, retried by `policy`. `sent` hears of
/// each call as it goes out (a start-up is timed from it); `done` gets each item's end, its
/// task's ARN or why it will not start. A failure retrying cannot fix (a bad task
/// definition, a denied call) ends the launch of the rest with the same reason; once
/// `stopped` says so, nothing more is sent, and the calls in flight are still seen to the
/// end (a task they start must still be stopped).
pub async fn launch_paced<T, Run, Fut>(
    items: Vec<T>,
    gate: &SharedGate,
    policy: &RetryPolicy,
    stopped: impl Fn() -> bool,
    run: Run,
    mut sent: impl FnMut(&T),
    mut done: impl FnMut(T, Result<String, String>),
) -> LaunchTally
where
    T: Send + 'static,
    Run: Fn(&T) -> Fut,
    Fut: Future<Output = RunOutcome> + Send + 'static,
{
    let mut tally = LaunchTally::default();
    let mut queue: VecDeque<Pending<T>> =
        items.into_iter().map(|item| Pending { item, first_try: None, tries: 0 }).collect();
    let mut later: Vec<(Instant, Pending<T>)> = Vec::new();
    // The calls run as tasks; their items stay here, so a call whose task panics is still
    // answered (as failed), and its worker does not wait in `queued` for ever.
    let mut flight: JoinSet<RunOutcome> = JoinSet::new();
    let mut flying: HashMap<tokio::task::Id, Pending<T>> = HashMap::new();
    let mut fatal: Option<String> = None;
    loop {
        let now = Instant::now();
        if stopped() || fatal.is_some() {
            let why = fatal.clone();
            for p in queue.drain(..).chain(later.drain(..).map(|(_, p)| p)) {
                if let Some(why) = &why {
                    tally.failed += 1;
                    done(p.item, Err(why.clone()));
                }
            }
        }
        // Retries that are due go first: they have waited longest.
        let (due, wait): (Vec<_>, Vec<_>) = later.drain(..).partition(|(at, _)| *at <= now);
        later = wait;
        for (_, p) in due.into_iter().rev() {
            queue.push_front(p);
        }
        if queue.is_empty() && later.is_empty() && flight.is_empty() {
            return tally;
        }
        let next_retry = later.iter().map(|(at, _)| *at).min();
        let may_send = !queue.is_empty() && flight.len() < policy.in_flight.max(1);
        tokio::select! {
            _ = gate.acquire(), if may_send => {
                let Some(mut p) = queue.pop_front() else { continue };
                p.tries += 1;
                p.first_try.get_or_insert(now);
                tally.calls += 1;
                sent(&p.item);
                let call = run(&p.item);
                let id = flight.spawn(call).id();
                flying.insert(id, p);
            }
            Some(joined) = flight.join_next_with_id(), if !flight.is_empty() => {
                let (p, outcome) = match joined {
                    Ok((id, outcome)) => (flying.remove(&id), outcome),
                    Err(e) => {
                        tally.failed += 1;
                        if let Some(p) = flying.remove(&e.id()) {
                            done(p.item, Err(format!("the launch call failed inside ({e})")));
                        }
                        continue;
                    }
                };
                let Some(p) = p else { continue };
                let waited = p.first_try.map_or(Duration::ZERO, |t| t.elapsed());
                match outcome {
                    RunOutcome::Started(arn) => {
                        tally.started += 1;
                        done(p.item, Ok(arn));
                    }
                    RunOutcome::Throttled(why) => {
                        tally.throttled += 1;
                        gate.throttled();
                        if waited >= policy.give_up_after {
                            tally.given_up += 1;
                            done(p.item, Err(format!("{why} (still throttled after {:.0} s)", waited.as_secs_f64())));
                        } else {
                            queue.push_front(p);
                        }
                    }
                    RunOutcome::Transient(why) => {
                        tally.transient += 1;
                        if waited >= policy.give_up_after {
                            tally.given_up += 1;
                            done(p.item, Err(format!("{why} (no answer for {:.0} s)", waited.as_secs_f64())));
                        } else {
                            later.push((Instant::now() + backoff(policy, p.tries), p));
                        }
                    }
                    RunOutcome::NoCapacity(why) => {
                        tally.no_capacity += 1;
                        let backoff = backoff(policy, p.tries);
                        if waited + backoff > policy.give_up_after {
                            tally.given_up += 1;
                            done(p.item, Err(format!("{why} (gave up after {} tries in {:.0} s)", p.tries, waited.as_secs_f64())));
                        } else {
                            later.push((Instant::now() + backoff, p));
                        }
                    }
                    RunOutcome::Failed(why) => {
                        tally.failed += 1;
                        fatal.get_or_insert_with(|| why.clone());
                        done(p.item, Err(why));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or(now)), if next_retry.is_some() => {}
            // `stopped` is looked at again within this.
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Exponential with full jitter over its upper half, so retries of a fleet spread out.
fn backoff(policy: &RetryPolicy, tries: u32) -> Duration {
    backoff_ceiling(policy, tries).mul_f64(0.5 + 0.5 * rand::random::<f64>())
}

/// The longest wait after the `tries`-th try: the first backoff doubled each try, capped.
fn backoff_ceiling(policy: &RetryPolicy, tries: u32) -> Duration {
    let exp = policy.first_backoff.saturating_mul(1u32 << tries.saturating_sub(1).min(20));
    exp.min(policy.max_backoff)
}

#[cfg(test)]
mod tests {
    //! The real scheduler against a simulated Fargate: a RunTask that enforces the documented
    //! buckets itself (throttling whatever exceeds them), throttles and refuses capacity at
    //! random besides, and takes a while to answer. Tokio's clock is paused, so minutes of
    //! simulated launch take milliseconds and the timings are exact.
    use super::*;
    use nonce_core::launch_quota::{LaunchGate, LaunchQuotas};
    use std::sync::{Arc, Mutex};

    /// Fargate's side of the account: its own buckets, and what it does to each call.
    struct Fargate {
        gate: LaunchGate,
        origin: Instant,
        calls: usize,
        throttled: usize,
        no_capacity: usize,
        /// Capacity refusals by worker: the backoffs each had to sit out.
        refused: std::collections::HashMap<usize, u32>,
        started: Vec<(usize, Duration)>,
        seed: u64,
    }

    impl Fargate {
        fn roll(&mut self) -> f64 {
            // xorshift: deterministic, so a failure can be replayed.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            (self.seed % 10_000) as f64 / 10_000.0
        }
    }

    async fn launch(
        n: usize,
        throttle_share: f64,
        no_capacity_share: f64,
        policy: RetryPolicy,
    ) -> (LaunchTally, Vec<Result<String, String>>, Arc<Mutex<Fargate>>, Duration) {
        let quotas = LaunchQuotas::default();
        let start = Instant::now();
        let fargate = Arc::new(Mutex::new(Fargate {
            gate: LaunchGate::new(quotas, Duration::ZERO),
            origin: start,
            calls: 0,
            throttled: 0,
            no_capacity: 0,
            refused: Default::default(),
            started: vec![],
            seed: 0x9e37_79b9_7f4a_7c15,
        }));
        let gate = SharedGate::new(quotas);
        let mut results: Vec<Option<Result<String, String>>> = vec![None; n];
        let f = Arc::clone(&fargate);
        let tally = launch_paced(
            (0..n).collect(),
            &gate,
            &policy,
            || false,
            move |&i: &usize| {
                let f = Arc::clone(&f);
                async move {
                    // The request reaches Fargate after 40 ms, the answer comes 60 ms later.
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    let outcome = {
                        let mut f = f.lock().expect("not poisoned");
                        f.calls += 1;
                        let now = f.origin.elapsed();
                        let over_quota = f.gate.try_launch(now).is_err();
                        if over_quota || f.roll() < throttle_share {
                            f.throttled += 1;
                            RunOutcome::Throttled("RunTask: ThrottlingException: Rate exceeded".into())
                        } else if f.roll() < no_capacity_share {
                            f.no_capacity += 1;
                            *f.refused.entry(i).or_default() += 1;
                            RunOutcome::NoCapacity("RunTask: Capacity is unavailable at this time".into())
                        } else {
                            f.started.push((i, now));
                            RunOutcome::Started(format!("arn:task/{i}"))
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    outcome
                }
            },
            |_| {},
            |i, r| results[i] = Some(r),
        )
        .await;
        let results = results.into_iter().map(|r| r.expect("every launch ends")).collect();
        (tally, results, fargate, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_workers_launch_in_the_time_the_quotas_allow_through_throttles_and_capacity_failures()
    {
        // 5% of calls throttled and 10% without capacity, beyond what the buckets throttle.
        let (tally, results, fargate, took) = launch(1000, 0.05, 0.10, RetryPolicy::default()).await;
        let f = fargate.lock().expect("not poisoned");
        assert!(results.iter().all(|r| r.is_ok()), "every worker started: {tally:?}");
        assert_eq!(f.started.len(), 1000);
        assert!(f.throttled > 0 && f.no_capacity > 0, "the faults happened: {tally:?}");
        // Nothing beyond the injected share was throttled by Fargate's own buckets: the
        // launcher kept to them (a throttled call still takes a token there, as on AWS).
        assert!(f.throttled <= f.calls / 10, "{} of {} calls throttled", f.throttled, f.calls);
        // The quotas allow 1,000 one-task calls in (1000 - 20) / 20 = 49 s; the failed calls
        // (about 16% of them) cost tokens too, so the ideal is calls' / 20 s after the burst.
        let ideal = (f.calls as f64 - 20.0) / 20.0;
        let took = took.as_secs_f64();
        eprintln!(
            "{tally:?}: {} calls, {} throttled, {} without capacity, took {took:.2} s (ideal {ideal:.2} s)",
            f.calls, f.throttled, f.no_capacity
        );
        assert!(took >= 49.0, "no faster than the quotas allow: {took:.1} s");
        // A worker refused k times waits out k backoffs (jittered, at most 1, 2, 4 ... s) and
        // k more calls (0.1 s each) before it starts: the slowest such chain may come last.
        let policy = RetryPolicy::default();
        let chain =
            |k: u32| -> f64 { (1..=k).map(|t| backoff_ceiling(&policy, t).as_secs_f64() + 0.1).sum() };
        let slowest = f.refused.values().map(|&k| chain(k)).fold(0.0, f64::max);
        eprintln!("slowest chain {slowest:.2} s, most refusals {:?}", f.refused.values().max());
        assert!(
            took <= ideal + slowest + 0.5,
            "no slower than they allow + the slowest worker's backoffs ({slowest:.1} s): {took:.1} s, ideal {ideal:.1} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_faults_a_launch_takes_exactly_the_ramp() {
        let (tally, results, fargate, took) = launch(1000, 0.0, 0.0, RetryPolicy::default()).await;
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!((tally.calls, tally.throttled), (1000, 0), "{tally:?}");
        let f = fargate.lock().expect("not poisoned");
        assert_eq!(f.throttled, 0);
        // The last call left at 49 s (+ 40 ms to arrive, 60 ms to answer).
        let last = f.started.iter().map(|s| s.1).max().expect("started").as_secs_f64();
        assert!((last - 49.04).abs() < 0.06, "{last}");
        assert!((took.as_secs_f64() - 49.1).abs() < 0.3, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_that_never_comes_back_is_given_up_after_the_bound() {
        let policy = RetryPolicy { give_up_after: Duration::from_secs(60), ..RetryPolicy::default() };
        let (tally, results, _, took) = launch(30, 0.0, 1.0, policy).await;
        assert!(
            results.iter().all(|r| r.as_ref().is_err_and(|e| e.contains("gave up after"))),
            "{results:?}"
        );
        assert_eq!(tally.given_up, 30);
        assert!(took.as_secs_f64() <= 61.0 && took.as_secs_f64() >= 30.0, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_retrying_cannot_fix_ends_the_rest_at_once() {
        let gate = SharedGate::new(LaunchQuotas::default());
        let mut ends = vec![];
        let tally = launch_paced(
            (0..100).collect::<Vec<usize>>(),
            &gate,
            &RetryPolicy { in_flight: 1, ..RetryPolicy::default() },
            || false,
            |_: &usize| async {
                RunOutcome::Failed("RunTask: ClientException: no such task definition".into())
            },
            |_| {},
            |i, r| ends.push((i, r)),
        )
        .await;
        assert_eq!(tally.calls, 1, "one call, not a hundred: {tally:?}");
        assert_eq!(ends.len(), 100);
        assert!(ends.iter().all(|(_, r)| r.as_ref().is_err_and(|e| e.contains("no such task definition"))));
    }

    /// A call whose task panics is answered as failed, like any other failure: before, its
    /// item went with the task, and its worker stayed `queued` for ever.
    #[tokio::test(start_paused = true)]
    async fn a_call_that_panics_is_answered() {
        let gate = SharedGate::new(LaunchQuotas::default());
        let policy = RetryPolicy::default();
        let mut results: Vec<Option<Result<String, String>>> = vec![None; 3];
        let tally = launch_paced(
            vec![0usize, 1, 2],
            &gate,
            &policy,
            || false,
            |&i| async move {
                assert_ne!(i, 1, "the call for worker 1 fails inside");
                RunOutcome::Started(format!("arn-{i}"))
            },
            |_| {},
            |i, r| results[i] = Some(r),
        )
        .await;
        assert_eq!(results[0], Some(Ok("arn-0".into())));
        assert_eq!(results[2], Some(Ok("arn-2".into())));
        assert!(matches!(&results[1], Some(Err(why)) if why.contains("failed inside")), "{:?}", results[1]);
        assert_eq!((tally.started, tally.failed), (2, 1));
    }
}
