//! The planner: how many workers make "a golden nonce within T, with probability P" true.
//!
//! The coursework report's model (section 6.5): each nonce is golden with probability
//! p = 2^-D, so k >= ln(1-P) / ln(1-p) tries succeed with probability P, and
//! workers = ceil(k / (rate x (T - startup))). Extended here with what broke it in practice:
//! - the rate is *measured* (bench or calibration), per worker, not guessed;
//! - the launcher's start-up latency comes off the deadline;
//! - the space is finite: N nonces hold a golden one only with probability 1 - (1-p)^N, so
//!   some promises cannot be kept at any fleet size; the planner says so and gives the best
//!   probability reachable;
//! - capacity: on this machine workers beyond the CPU count add no speed; in AWS the vCPU quota
//!   bounds the fleet;
//! - cost, at Fargate's per-second vCPU and memory prices.
//!
//! - the ramp: a fleet launched through Fargate's quotas starts over time (100-task and
//!   20-call token buckets, [`crate::launch_quota`]), so worker i hashes for
//!   T - startup - ramp(i), not T - startup; the plan sums those, and says when the quotas
//!   start too few workers in time to keep the promise;
//! - Fargate Spot: cheaper, and interrupted now and then ([`SpotTerms`]).
//!
//! Pure arithmetic: no I/O, testable against hand-computed numbers.

use crate::launch_quota::LaunchQuotas;

/// Fargate (Linux/x86, us-east-1) on-demand price, USD per vCPU-hour.
pub const FARGATE_VCPU_HOUR: f64 = 0.040_48;
/// Fargate (Linux/x86, us-east-1) on-demand price, USD per GB-hour of memory.
pub const FARGATE_GB_HOUR: f64 = 0.004_445;

/// Everything the planner needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// Leading zero bits a golden hash needs.
    pub difficulty: u32,
    /// Wall-clock time the user allows, seconds.
    pub max_time: f64,
    /// Probability the user wants of finding a golden nonce in that time.
    pub confidence: f64,
    /// Nonces per second of one worker.
    pub rate: f64,
    /// Seconds from launch until a worker hashes.
    pub startup: f64,
    /// Nonces in the range searched.
    pub space: f64,
    /// Most workers that add speed (CPUs here, the vCPU quota in AWS).
    pub capacity: usize,
    /// vCPUs of one worker task.
    pub worker_vcpus: f64,
    /// Memory of one worker task, GB.
    pub worker_memory_gb: f64,
    /// On-demand price, USD per vCPU-hour.
    pub vcpu_hour: f64,
    /// On-demand price, USD per GB-hour.
    pub gb_hour: f64,
    /// The account's launch quotas when workers are launched through them (Fargate): the
    /// i-th worker starts no sooner than they allow ([`LaunchQuotas::earliest`]). `None`:
    /// every worker is asked for at once (threads, processes).
    pub ramp: Option<LaunchQuotas>,
    /// The share of the fleet on Fargate Spot, with its terms; `None`: all on-demand.
    pub spot: Option<SpotTerms>,
}

/// What Fargate Spot changes in a plan: its price, and the work its interruptions take away.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotTerms {
    /// Workers on Spot, 0 to 1 (`mixed` runs half).
    pub share: f64,
    /// Spot's price, USD per vCPU-hour.
    pub vcpu_hour: f64,
    /// Spot's price, USD per GB-hour.
    pub gb_hour: f64,
    /// Interruptions per task-hour the plan allows for (see [`crate::pricing`]).
    pub interruptions_per_hour: f64,
}

impl SpotTerms {
    /// Expected seconds a worker planned to hash `h` seconds really hashes, when a share of
    /// the fleet may be interrupted at rate λ: E[min(T, h)] = (1 - e^(-λh)) / λ on Spot. (An
    /// interrupted worker's range is re-sharded, and the job launches a replacement; the plan
    /// counts neither, so it errs on the safe side.)
    fn effective(&self, h: f64) -> f64 {
        let lambda = self.interruptions_per_hour / 3600.0;
        let on_spot = if lambda > 0.0 { -(-lambda * h).exp_m1() / lambda } else { h };
        (1.0 - self.share) * h + self.share * on_spot
    }
}

/// The plan, or why no plan keeps the promise (with the best that can be done).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Nonces to try for the confidence asked (the report's k).
    pub k: f64,
    /// Workers to launch.
    pub workers: usize,
    /// Expected seconds until a golden nonce is found (or the space is exhausted).
    pub expected_seconds: f64,
    /// Probability of success within `max_time` with `workers`.
    pub probability: f64,
    /// USD if every worker runs to the deadline (the most the job can cost).
    pub cost: f64,
    /// USD for the expected run time.
    pub cost_expected: f64,
    /// Probability of a golden nonce existing in the range at all.
    pub space_probability: f64,
    /// Seconds from the start of the launch until the last worker's launch can be sent
    /// (0 when all are asked for at once): the launch quotas' ramp.
    pub launch_ramp_s: f64,
    /// Why the promise cannot be kept, if it cannot.
    pub impossible: Option<String>,
}

/// ln(1 - 2^-d), exact even where 2^-d is far below f64's epsilon.
fn ln_miss(d: u32) -> f64 {
    (-(2f64.powi(-(d as i32)))).ln_1p()
}

/// Tries needed to succeed with probability `p` at difficulty `d`.
pub fn tries(d: u32, p: f64) -> f64 {
    if d == 0 {
        return 1.0;
    }
    ((1.0 - p).ln() / ln_miss(d)).ceil().max(1.0)
}

/// Probability that `n` tries at difficulty `d` include a golden nonce.
pub fn success(d: u32, n: f64) -> f64 {
    if d == 0 {
        return if n >= 1.0 { 1.0 } else { 0.0 };
    }
    -(n * ln_miss(d)).exp_m1()
}

/// Expected tries until success, capped by a space of `space` nonces: E[min(G, N)].
pub fn expected_tries(d: u32, space: f64) -> f64 {
    if d == 0 {
        return 1.0;
    }
    let p = 2f64.powi(-(d as i32));
    success(d, space) / p
}

/// The fewest workers that keep the promise (`confidence` within `max_time`), with what they
/// are expected to take and cost; or, when none do, the best there is and why not.
pub fn plan(i: &PlanInput) -> Plan {
    let k = tries(i.difficulty, i.confidence);
    let space_probability = success(i.difficulty, i.space);
    let hashing = i.max_time - i.startup;
    let ramp = |w: usize| i.ramp.map_or(0.0, |q| q.earliest(w));
    let effective = |h: f64| i.spot.map_or(h, |s| s.effective(h));
    // USD a second for one worker, on-demand and Spot in their shares.
    let per_second = {
        let od = i.worker_vcpus * i.vcpu_hour + i.worker_memory_gb * i.gb_hour;
        let spot = i
            .spot
            .map_or((0.0, od), |s| (s.share, i.worker_vcpus * s.vcpu_hour + i.worker_memory_gb * s.gb_hour));
        ((1.0 - spot.0) * od + spot.0 * spot.1) / 3600.0
    };
    // Worker-seconds of hashing `workers` have done by `t` seconds after the launch began,
    // each from its own start. Only workers the ramp has started by then count, so a long
    // fleet costs what it launches, not what it asks for.
    let secs_by = |workers: usize, t: f64| -> f64 {
        let w = workers.min(i.capacity).max(1);
        let h = (t - i.startup).max(0.0);
        match i.ramp {
            None => w as f64 * effective(h),
            Some(q) => {
                (0..w.min(q.launched_within(h) + 1)).map(|n| effective((h - q.earliest(n)).max(0.0))).sum()
            }
        }
    };
    let searched_by = |workers: usize, t: f64| (secs_by(workers, t) * i.rate).min(i.space);
    let cost_of = |workers: usize, t: f64| -> f64 {
        let started = i.ramp.map_or(workers, |q| workers.min(q.launched_within(t) + 1));
        (0..started).map(|n| (t - ramp(n)).max(0.0)).sum::<f64>() * per_second
    };
    // The fewest workers whose work by the deadline reaches `target` nonces, or where that
    // stops: at the capacity, or at the first worker the ramp starts too late to hash.
    let fewest = |target: f64| -> (usize, Short) {
        let need = target / i.rate;
        let cap = i.capacity.max(1);
        let Some(q) = i.ramp else {
            let n = (need / effective(hashing)).ceil().max(1.0);
            return if n > cap as f64 { (cap, Short::Capacity) } else { (n as usize, Short::Reached) };
        };
        let (mut n, mut secs) = (0usize, 0.0f64);
        while secs < need {
            if n >= cap {
                return (n, Short::Capacity);
            }
            let h = effective((hashing - q.earliest(n)).max(0.0));
            if h <= 0.0 {
                return (n.max(1), Short::Ramp);
            }
            secs += h;
            n += 1;
        }
        (n.max(1), Short::Reached)
    };
    let mut impossible = None;
    let workers = if hashing <= 0.0 {
        impossible = Some(format!(
            "the start-up latency ({:.1} s) leaves no time within {:.1} s",
            i.startup, i.max_time
        ));
        1
    } else if i.confidence > space_probability {
        impossible = Some(format!(
            "a golden nonce of difficulty {} exists in {} nonces only with probability {:.4}: {:.4} cannot be promised",
            i.difficulty, i.space, space_probability, i.confidence
        ));
        fewest(i.space).0
    } else {
        match fewest(k) {
            (n, Short::Reached) => n,
            (n, short) => {
                let best = success(i.difficulty, searched_by(n, i.max_time));
                impossible = Some(match short {
                    Short::Capacity => format!(
                        "{} workers are needed but only {} add speed here; the best reachable is {best:.4}",
                        (k / (i.rate * effective(hashing))).ceil(),
                        i.capacity
                    ),
                    _ => format!(
                        "the launch quotas ({}) start only {n} workers in time to hash before {:.1} s; the best reachable is {best:.4}",
                        i.ramp.unwrap_or_default().describe(),
                        i.max_time
                    ),
                });
                n
            }
        }
    };
    let workers = workers.min(i.capacity.max(1));
    let probability = success(i.difficulty, searched_by(workers, i.max_time));
    // When the expected number of tries is done (or the space, whichever comes first).
    let goal = expected_tries(i.difficulty, i.space).min(i.space);
    let expected_seconds = {
        let (mut lo, mut hi) =
            (i.startup, i.startup + ramp(workers - 1) + goal / (i.rate * workers as f64) * 4.0 + 1.0);
        while searched_by(workers, hi) < goal && hi < 1e15 {
            hi *= 2.0;
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if searched_by(workers, mid) >= goal {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    };
    Plan {
        k,
        workers,
        expected_seconds,
        probability,
        cost: cost_of(workers, i.max_time),
        cost_expected: cost_of(workers, expected_seconds.min(i.max_time)),
        space_probability,
        launch_ramp_s: ramp(workers - 1),
        impossible,
    }
}

/// Why [`plan`]'s search for a fleet stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Short {
    Reached,
    Capacity,
    Ramp,
}

/// The cheapest of `options` (the same request under different capacity providers) that keeps
/// the promise, with its index; the first option's plan when none does.
pub fn cheapest(options: &[PlanInput]) -> Option<(usize, Plan)> {
    let plans: Vec<Plan> = options.iter().map(plan).collect();
    let best = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| p.impossible.is_none())
        .min_by(|a, b| a.1.cost.total_cmp(&b.1.cost))
        .map(|(n, _)| n)
        .unwrap_or(0);
    plans.into_iter().nth(best).map(|p| (best, p))
}

/// The start-up history of GPU workers on ECS (EC2 instances), kept apart from Fargate's.
pub const GPU_STARTUP_KEY: &str = "ecs-gpu";

/// Typical seconds from launch until a worker hashes, by launcher (and [`GPU_STARTUP_KEY`]).
pub fn default_startup(launcher: &str) -> Option<f64> {
    match launcher {
        // Measured here: Start to first Hello is 0.05-0.2 ms in-process; a process also pays
        // for exec and its runtime (a few ms).
        "threads" => Some(0.002),
        "process" => Some(0.02),
        // Fargate: provisioning plus an image pull of a small static image (the coursework
        // system measured tens of seconds with a large one).
        "ecs" => Some(45.0),
        GPU_STARTUP_KEY => Some(crate::pricing::GPU_WORKER.startup_s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(d: u32, t: f64, p: f64, rate: f64, startup: f64) -> PlanInput {
        PlanInput {
            difficulty: d,
            max_time: t,
            confidence: p,
            rate,
            startup,
            space: 2f64.powi(32),
            capacity: 1000,
            worker_vcpus: 1.0,
            worker_memory_gb: 2.0,
            vcpu_hour: FARGATE_VCPU_HOUR,
            gb_hour: FARGATE_GB_HOUR,
            ramp: None,
            spot: None,
        }
    }

    #[test]
    fn k_matches_hand_computed_values() {
        // Python: math.ceil(math.log(1-p) / math.log1p(-2**-d))
        assert_eq!(tries(20, 0.9), 2_414_435.0);
        assert_eq!(tries(24, 0.99), 77_261_933.0);
        assert_eq!(tries(32, 0.5), 2_977_044_472.0);
        assert_eq!(tries(1, 0.5), 1.0);
    }

    #[test]
    fn workers_follow_the_report_formula() {
        // k(24, 0.99) / (1e6 x (60 - 5)) = 1.4047..., so 2 workers.
        let p = plan(&input(24, 60.0, 0.99, 1e6, 5.0));
        assert_eq!(p.workers, 2);
        assert!(p.impossible.is_none());
        assert!(p.probability >= 0.99);
        // One worker would not do.
        assert!(success(24, 1e6 * 55.0) < 0.99);
        // Cost: 2 workers x 60 s x (1 vCPU x 0.04048 + 2 GB x 0.004445) per hour.
        assert!((p.cost - 2.0 * 60.0 / 3600.0 * (0.04048 + 2.0 * 0.004445)).abs() < 1e-12);
    }

    #[test]
    fn a_finite_space_refuses_what_it_cannot_hold() {
        let p = plan(&input(32, 3600.0, 0.9, 1e7, 1.0));
        assert!((p.space_probability - 0.632_120_558_871_384_5).abs() < 1e-9);
        assert!(p.impossible.as_deref().is_some_and(|w| w.contains("0.6321")));
        assert!(p.probability <= p.space_probability + 1e-12);
        // D=33 over 2^32: about 0.3935 at most.
        assert!((success(33, 2f64.powi(32)) - 0.393_469_340_305_018_9).abs() < 1e-9);
    }

    #[test]
    fn capacity_and_startup_are_respected() {
        let mut i = input(30, 10.0, 0.9, 1e6, 1.0);
        i.capacity = 2;
        let p = plan(&i);
        assert_eq!(p.workers, 2);
        assert!(p.impossible.as_deref().is_some_and(|w| w.contains("best reachable")));
        let p = plan(&input(10, 5.0, 0.9, 1e6, 6.0));
        assert!(p.impossible.as_deref().is_some_and(|w| w.contains("start-up")));
    }

    #[test]
    fn a_large_fleet_plans_the_launch_ramp() {
        // Fargate's quotas: worker n's call goes out at max(0, (n + 1 - 20) / 20) s.
        let mut i = input(40, 200.0, 0.9, 3e7, 45.0);
        i.space = 2f64.powi(64);
        i.capacity = 100_000;
        let flat = plan(&i);
        i.ramp = Some(LaunchQuotas::default());
        let ramped = plan(&i);
        assert!(flat.impossible.is_none() && ramped.impossible.is_none(), "{ramped:?}");
        // Without the ramp every worker hashes 155 s; with it the late ones hash less, so more
        // are needed, and the plan names when the last one's call goes out.
        assert!(ramped.workers > flat.workers, "{} vs {}", ramped.workers, flat.workers);
        assert_eq!(ramped.launch_ramp_s, ((ramped.workers as f64 - 20.0) / 20.0).max(0.0));
        assert_eq!(flat.launch_ramp_s, 0.0);
        // The promise holds by the hand sum: each worker hashes 155 - ramp(n) seconds.
        let secs: f64 = (0..ramped.workers).map(|n| 155.0 - ((n as f64 + 1.0 - 20.0) / 20.0).max(0.0)).sum();
        let p = success(40, secs * 3e7);
        assert!(p >= 0.9 && (p - ramped.probability).abs() < 1e-9, "{p} vs {}", ramped.probability);
        // One worker fewer would not do.
        let fewer: f64 = secs - (155.0 - ramped.launch_ramp_s);
        assert!(success(40, fewer * 3e7) < 0.9);
        // Cost counts each worker from its own launch.
        let per_s = (0.04048 + 2.0 * 0.004445) / 3600.0;
        let cost: f64 =
            (0..ramped.workers).map(|n| 200.0 - ((n as f64 - 19.0) / 20.0).max(0.0)).sum::<f64>() * per_s;
        assert!((ramped.cost - cost).abs() < 1e-9, "{} vs {cost}", ramped.cost);
    }

    #[test]
    fn the_ramp_refuses_what_the_quotas_cannot_start_in_time() {
        // 15 s of hashing after a 45 s start-up: only 20 + 15 x 20 = 320 calls can go out in
        // time, and only those before 15 s hash at all.
        let mut i = input(40, 60.0, 0.9, 3e7, 45.0);
        i.space = 2f64.powi(64);
        i.capacity = 100_000;
        assert!(plan(&i).impossible.is_none(), "flat, it fits: {:?}", plan(&i));
        i.ramp = Some(LaunchQuotas::default());
        let p = plan(&i);
        let why = p.impossible.as_deref().unwrap_or_default();
        assert!(why.contains("launch quotas (20 at once, then 20/s) start only"), "{why}");
        assert!(p.workers <= 320 && p.probability < 0.9, "{p:?}");
    }

    #[test]
    fn spot_is_cheaper_and_plans_for_its_interruptions() {
        let mut i = input(36, 3600.0, 0.9, 3e7, 45.0);
        i.space = 2f64.powi(64);
        let od = plan(&i);
        i.spot = Some(SpotTerms {
            share: 1.0,
            vcpu_hour: 0.02024,
            gb_hour: 0.0022225,
            interruptions_per_hour: 0.05,
        });
        let spot = plan(&i);
        assert!(spot.impossible.is_none());
        // An hour's hashing at 5% interruptions an hour: E[min(T, h)] = (1 - e^-0.0494) / λ.
        let h: f64 = 3600.0 - 45.0;
        let lambda = 0.05 / 3600.0;
        let eff = -(-lambda * h).exp_m1() / lambda;
        assert!(eff < h && eff > 0.97 * h);
        assert_eq!(spot.workers, (tries(36, 0.9) / (3e7 * eff)).ceil() as usize);
        assert!(spot.workers >= od.workers && spot.cost < od.cost * 0.55, "{spot:?} vs {od:?}");
        // The cheapest that keeps the promise: Spot.
        let mut on_demand = i.clone();
        on_demand.spot = None;
        let (n, chosen) = cheapest(&[on_demand, i.clone()]).expect("two options");
        assert_eq!((n, chosen.workers), (1, spot.workers));
        // Unless Spot cannot keep it (the capacity is too small for its extra workers).
        let mut tight = i.clone();
        tight.capacity = od.workers;
        let mut od_tight = tight.clone();
        od_tight.spot = None;
        if plan(&tight).impossible.is_some() {
            assert_eq!(cheapest(&[od_tight, tight]).map(|c| c.0), Some(0));
        }
    }

    #[test]
    fn expected_time_is_the_geometric_mean_capped_by_the_space() {
        assert!((expected_tries(20, 1e18) - 2f64.powi(20)).abs() < 1e-3);
        assert!(expected_tries(40, 1000.0) <= 1000.0);
    }
}
