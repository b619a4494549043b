//! Work proven, not claimed: how many shares a job asks for, and the test that tells a worker
//! who skipped work (or a core that miscomputes) from an honest one by their count.
//!
//! A share is a nonce whose hash has at least `s` leading zero bits. SHA-256 gives no way to
//! find them but to hash every nonce, and each nonce is one with probability 2^-s, so an
//! honest worker that claims `N` nonces reports a Poisson number of shares with mean
//! `λ = N / 2^s`; one that searched only a fraction `ρ` of them reports about `ρλ`.
//!
//! **The test.** For each worker the job keeps `λ` (from the nonces credited to it) and `k`
//! (the verified shares among them) and computes the likelihood ratio of "searched only a
//! fraction ρ" against "searched everything": `L_ρ = ρ^k · e^{(1-ρ)λ}`, mixed over
//! ρ ∈ {0.5, 0.75, 0.9, 0.97, 0.99} with equal weights (so a big skip is caught fast and a
//! small one eventually). Under an honest worker the mixture is a
//! non-negative martingale with mean 1, so by Ville's inequality the chance that it *ever*
//! reaches `1/α` is at most `α`, however often it is looked at. The job uses
//! `α = false_alarm / max_launches`, so the chance that any honest worker of the job is ever
//! made suspect is at most `false_alarm` (default 1e-9). A worker whose mixture reaches the
//! bound is suspect; a share that does not verify, or lies outside the segment it came with,
//! is proof of a fault by itself.
//!
//! **How many shares.** [`share_bits_for`]: `s = floor(log2(rate · heartbeat / 8))`, about
//! eight shares per heartbeat per worker, clamped to 1..=32; [`share_bits_for_job`] lowers it
//! so each worker's part of a short job still holds at least 1,024 expected shares. Eight nonces of 8 bytes ride on
//! a heartbeat that is sent anyway, and at one heartbeat a second the coordinator verifies
//! eight double hashes per worker per second.

use std::time::Duration;

/// Shares a worker should report per heartbeat, on average.
pub const SHARES_PER_HEARTBEAT: f64 = 8.0;
/// Share bits when nothing better is known (a worker at ~2 M nonces/s, beating every 4 s).
pub const DEFAULT_SHARE_BITS: u32 = 20;
/// Per job: the chance that an honest worker is ever made suspect.
pub const DEFAULT_FALSE_ALARM: f64 = 1e-9;
/// Fraction of claimed work searched again by another worker.
pub const DEFAULT_SPOT_CHECK: f64 = 1.0 / 1024.0;
/// The same below the answer of a `lowest` job.
pub const DEFAULT_SPOT_CHECK_LOWEST: f64 = 1.0 / 256.0;

/// The alternatives the test mixes: fractions of the work a cheat might do.
const RHOS: [f64; 5] = [0.5, 0.75, 0.9, 0.97, 0.99];

/// Share bits for workers hashing `rate` nonces per second and beating every `heartbeat`.
pub fn share_bits_for(rate: f64, heartbeat: Duration) -> u32 {
    let per_beat = rate * heartbeat.as_secs_f64() / SHARES_PER_HEARTBEAT;
    if !per_beat.is_finite() || per_beat < 2.0 {
        return 1;
    }
    (per_beat.log2().floor() as u32).clamp(1, 32)
}

/// Expected shares per worker over a whole job, at the least: the evidence that catches a
/// worker skipping half of what it claims (about 150 are needed at a 1e-9 false-alarm rate).
pub const MIN_SHARES_PER_WORKER: f64 = 1024.0;

/// Share bits for a job: [`share_bits_for`] its workers' rate and heartbeat, but no more than
/// leaves each of `workers` at least [`MIN_SHARES_PER_WORKER`] shares over `range_len` nonces
/// (short jobs ask for more shares, so their answers have the evidence too).
pub fn share_bits_for_job(rate: f64, heartbeat: Duration, range_len: u128, workers: usize) -> u32 {
    let per_worker = range_len as f64 / workers.max(1) as f64 / MIN_SHARES_PER_WORKER;
    let cap = if per_worker >= 2.0 { per_worker.log2().floor() as u32 } else { 1 };
    share_bits_for(rate, heartbeat).min(cap).max(1)
}

/// The expected shares in `nonces` nonces at `bits` share bits.
pub fn expected_shares(nonces: u128, bits: u32) -> f64 {
    nonces as f64 / 2f64.powi(bits as i32)
}

/// The log of the mixture likelihood ratio for `k` shares where `lambda` were expected.
pub fn log_evidence(lambda: f64, k: u64) -> f64 {
    let k = k as f64;
    let terms: Vec<f64> =
        RHOS.iter().map(|&rho| (1.0 - rho) * lambda + k * rho.ln() - (RHOS.len() as f64).ln()).collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// The bound the log evidence must reach to make a worker suspect.
pub fn suspicion_bound(false_alarm: f64, max_workers: usize) -> f64 {
    let alpha = (false_alarm / max_workers.max(1) as f64).clamp(f64::MIN_POSITIVE, 1.0);
    -alpha.ln()
}

/// Whether `k` shares where `lambda` were expected is past `bound`.
pub fn is_short(lambda: f64, k: u64, bound: f64) -> bool {
    k as f64 <= lambda && log_evidence(lambda, k) >= bound
}

/// The most shares with which `lambda` expected would still be suspect (None: none would).
pub fn suspect_below(lambda: f64, bound: f64) -> Option<u64> {
    if !is_short(lambda, 0, bound) {
        return None;
    }
    // The evidence falls as k grows: binary search for the last k still past the bound.
    let (mut lo, mut hi) = (0u64, lambda.floor() as u64 + 1);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if is_short(lambda, mid, bound) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// The chance that a worker which searched only `1 - skipped` of work worth `lambda` shares
/// is caught by the time it has claimed all of it.
pub fn catch_probability(lambda: f64, skipped: f64, bound: f64) -> f64 {
    let Some(k_max) = suspect_below(lambda, bound) else { return 0.0 };
    poisson_cdf(k_max, lambda * (1.0 - skipped))
}

/// Means above this are not summed term by term: the sum would run to about the mean
/// (millions of terms, on every `search.status`), and the approximation below is within 1e-4.
const POISSON_SUM_MAX_MEAN: f64 = 5_000.0;

/// P(X <= k) for X ~ Poisson(mean): summed in log space for a mean up to
/// [`POISSON_SUM_MAX_MEAN`] (a few thousand terms at most, whatever `k`), else through the
/// chi-square identity P(X <= k) = P(chi2(2k + 2) > 2 mean) and Wilson-Hilferty's cube-root
/// normal approximation of it.
pub fn poisson_cdf(k: u64, mean: f64) -> f64 {
    if mean <= 0.0 || mean.is_nan() {
        return 1.0;
    }
    if mean > POISSON_SUM_MAX_MEAN {
        let nu = 2.0 * (k as f64 + 1.0);
        let v = 2.0 / (9.0 * nu);
        let z = ((2.0 * mean / nu).cbrt() - (1.0 - v)) / v.sqrt();
        return (0.5 * erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0);
    }
    let mut log_term = -mean; // ln P(X = 0)
    let mut total = log_term.exp();
    for i in 1..=k {
        log_term += mean.ln() - (i as f64).ln();
        total += log_term.exp();
        if log_term < -745.0 && (i as f64) > mean {
            break;
        }
    }
    total.min(1.0)
}

/// The complementary error function, to a relative error below 1.2e-7 (Chebyshev fit, as in
/// Numerical Recipes' `erfcc`): std has none.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact sum, whatever the mean (slow for large ones: tests only).
    fn summed(k: u64, mean: f64) -> f64 {
        let mut log_term = -mean;
        let mut total = log_term.exp();
        for i in 1..=k {
            log_term += mean.ln() - (i as f64).ln();
            total += log_term.exp();
        }
        total.min(1.0)
    }

    #[test]
    fn poisson_cdf_of_a_large_mean_is_the_sum_within_1e4_and_costs_no_more_than_a_small_one() {
        for mean in [5_001.0, 20_000.0, 250_000.0] {
            let sd = f64::sqrt(mean);
            for sds in [-4.0, -2.0, -1.0, 0.0, 1.0, 3.0] {
                let k = (mean + sds * sd).max(0.0) as u64;
                let (approx, exact) = (poisson_cdf(k, mean), summed(k, mean));
                assert!((approx - exact).abs() < 1e-4, "mean {mean}, k {k}: {approx} vs {exact}");
            }
        }
        // A job's worth of shares on 64-bit ranges: answered (the sum would take hours).
        assert!((poisson_cdf(1 << 40, (1u64 << 40) as f64) - 0.5).abs() < 1e-3);
        assert!(poisson_cdf(1 << 39, (1u64 << 40) as f64) < 1e-12);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7 && (erfc(1.0) - 0.157_299_207).abs() < 1e-7);
    }

    #[test]
    fn share_bits_give_about_eight_a_heartbeat() {
        // 120 M/s for 1 s: 15 M nonces a share is 2^23.8 -> 23 bits, ~14 shares a beat.
        assert_eq!(share_bits_for(120e6, Duration::from_secs(1)), 23);
        assert_eq!(share_bits_for(0.0, Duration::from_secs(1)), 1);
        assert_eq!(share_bits_for(f64::NAN, Duration::from_secs(1)), 1);
        assert_eq!(share_bits_for(1e30, Duration::from_secs(100)), 32);
        // 2^32 on 2 workers over aws (9 s): the rate says 26, the evidence asks for <= 21.
        assert_eq!(share_bits_for_job(120e6, Duration::from_secs(9), 1 << 32, 2), 21);
        assert_eq!(share_bits_for_job(120e6, Duration::from_secs(1), 1 << 40, 2), 23);
        assert_eq!(share_bits_for_job(120e6, Duration::from_secs(1), 100, 2), 1);
    }

    #[test]
    fn honest_counts_are_not_suspect_and_halves_are() {
        let bound = suspicion_bound(1e-9, 100);
        assert!((bound - (1e11f64).ln()).abs() < 1e-9);
        for lambda in [10.0, 100.0, 1000.0, 1e5] {
            // Even four standard deviations short is no proof.
            let k = (lambda - 4.0 * f64::sqrt(lambda)).max(0.0) as u64;
            assert!(!is_short(lambda, k, bound), "lambda {lambda}, k {k}");
        }
        assert!(!is_short(50.0, 25, bound), "too little evidence yet");
        assert!(is_short(400.0, 200, bound), "half of the work at 400 expected shares");
        assert!(!is_short(400.0, 500, bound), "more than expected is never short");
    }

    #[test]
    fn the_bound_holds_for_honest_workers_by_simulation() {
        // Honest workers at ~30 shares a step for 200 steps, 2000 of them, at a lax bound
        // (alpha = 1e-2): Ville says at most 1% ever cross it.
        let bound = suspicion_bound(1e-2, 1);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut crossed = 0;
        for _ in 0..2000 {
            let (mut lambda, mut k) = (0.0, 0u64);
            for _ in 0..200 {
                lambda += 30.0;
                // Poisson(30) by inversion.
                let (u, mut p, mut x) = (uniform(), (-30f64).exp(), 0u64);
                let mut cdf = p;
                while u > cdf {
                    x += 1;
                    p *= 30.0 / x as f64;
                    cdf += p;
                }
                k += x;
                if is_short(lambda, k, bound) {
                    crossed += 1;
                    break;
                }
            }
        }
        assert!(crossed <= 30, "{crossed} of 2000 honest workers crossed an alpha of 1%");
    }

    #[test]
    fn catch_probability_grows_with_evidence() {
        let bound = suspicion_bound(1e-9, 16);
        assert!(catch_probability(100.0, 0.5, bound) < 0.5);
        assert!(catch_probability(1000.0, 0.5, bound) > 1.0 - 1e-9);
        assert!(catch_probability(1e7, 0.01, bound) > 0.999);
        assert!(catch_probability(1e5, 0.1, bound) > 0.999);
        assert!((poisson_cdf(3, 2.0) - 0.857_123_460_498_547_6).abs() < 1e-12);
    }
}
