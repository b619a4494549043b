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
//! Pure arithmetic: no I/O, testable against hand-computed numbers.

/// Fargate (Linux/x86, us-east-1) prices, USD per hour.
pub const FARGATE_VCPU_HOUR: f64 = 0.040_48;
pub const FARGATE_GB_HOUR: f64 = 0.004_445;

/// Everything the planner needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
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
    pub worker_vcpus: f64,
    pub worker_memory_gb: f64,
    pub vcpu_hour: f64,
    pub gb_hour: f64,
}

/// The plan, or why no plan keeps the promise (with the best that can be done).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Nonces to try for the confidence asked (the report's k).
    pub k: f64,
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

pub fn plan(i: &PlanInput) -> Plan {
    let k = tries(i.difficulty, i.confidence);
    let space_probability = success(i.difficulty, i.space);
    let hashing = i.max_time - i.startup;
    let cost_of = |workers: usize, seconds: f64| {
        workers as f64 * seconds / 3600.0 * (i.worker_vcpus * i.vcpu_hour + i.worker_memory_gb * i.gb_hour)
    };
    let outcome = |workers: usize| {
        let w = workers.min(i.capacity).max(1) as f64;
        let searched = (w * i.rate * hashing.max(0.0)).min(i.space);
        let probability = success(i.difficulty, searched);
        let expected = i.startup + expected_tries(i.difficulty, i.space) / (w * i.rate);
        (probability, expected)
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
        ((i.space / (i.rate * hashing)).ceil() as usize).clamp(1, i.capacity.max(1))
    } else {
        let needed = (k / (i.rate * hashing)).ceil().max(1.0);
        if needed > i.capacity as f64 {
            let (best, _) = outcome(i.capacity);
            impossible = Some(format!(
                "{needed} workers are needed but only {} add speed here; the best reachable is {best:.4}",
                i.capacity
            ));
            i.capacity.max(1)
        } else {
            needed as usize
        }
    };
    let (probability, expected_seconds) = outcome(workers);
    Plan {
        k,
        workers,
        expected_seconds,
        probability,
        cost: cost_of(workers, i.max_time),
        cost_expected: cost_of(workers, expected_seconds.min(i.max_time)),
        space_probability,
        impossible,
    }
}

/// Typical seconds from launch until a worker hashes, by launcher.
pub fn default_startup(launcher: &str) -> Option<f64> {
    match launcher {
        // Measured here: Start to first Hello is 0.05-0.2 ms in-process; a process also pays
        // for exec and its runtime (a few ms).
        "threads" => Some(0.002),
        "process" => Some(0.02),
        // Fargate: provisioning plus an image pull of a small static image (the coursework
        // system measured tens of seconds with a large one).
        "ecs" => Some(45.0),
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
    fn expected_time_is_the_geometric_mean_capped_by_the_space() {
        assert!((expected_tries(20, 1e18) - 2f64.powi(20)).abs() < 1e-3);
        assert!(expected_tries(40, 1000.0) <= 1000.0);
    }
}
