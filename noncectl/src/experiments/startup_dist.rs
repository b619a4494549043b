//! Start-up distributions for `experiment planner --startup-dist`: Fargate's start-up varies
//! (30-60 s in public measurements), and the planner's promise must hold when it does. The
//! experiment draws each worker's start-up from one of these, scaled down for a local run, and
//! the `threads` launcher really waits that long before starting the worker.

use coordinator::request::parse_duration;
use rand::Rng;

/// A distribution of worker start-ups, in seconds (before scaling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartupDist {
    /// Every worker takes the same time.
    Fixed(f64),
    /// ln(start-up) is normal around ln(median) with standard deviation `sigma`.
    LogNormal { median: f64, sigma: f64 },
}

/// The spread when none is given: with a 40 s median, 90% of start-ups fall in 27-60 s, like
/// Fargate's published 30-60 s.
pub const DEFAULT_SIGMA: f64 = 0.25;

impl StartupDist {
    /// `lognormal:MEDIAN[:SIGMA]` or `fixed:DURATION`, e.g. `lognormal:40s`, `lognormal:40s:0.4`.
    pub fn parse(text: &str) -> Result<StartupDist, String> {
        let bad = || format!("--startup-dist {text:?}: expected lognormal:MEDIAN[:SIGMA] or fixed:DURATION");
        let mut parts = text.split(':');
        let kind = parts.next().unwrap_or_default();
        let secs = |p: Option<&str>| -> Result<f64, String> {
            let d = parse_duration(p.ok_or_else(bad)?).map_err(|e| format!("--startup-dist: {}", e.0))?;
            Ok(d.as_secs_f64())
        };
        let dist = match kind {
            "fixed" => StartupDist::Fixed(secs(parts.next())?),
            "lognormal" => {
                let median = secs(parts.next())?;
                let sigma = match parts.next() {
                    Some(s) => s.parse::<f64>().map_err(|_| bad())?,
                    None => DEFAULT_SIGMA,
                };
                if !(sigma.is_finite() && (0.0..=3.0).contains(&sigma)) || median <= 0.0 {
                    return Err(format!("--startup-dist {text:?}: the median must be > 0 and sigma 0..=3"));
                }
                StartupDist::LogNormal { median, sigma }
            }
            _ => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(dist)
    }

    /// One worker's start-up, seconds.
    pub fn draw(&self, rng: &mut impl Rng) -> f64 {
        match *self {
            StartupDist::Fixed(s) => s,
            StartupDist::LogNormal { median, sigma } => {
                // Box-Muller: a standard normal from two uniforms.
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                median * (sigma * z).exp()
            }
        }
    }

    /// The 99th percentile, seconds: how much of a deadline the experiment leaves for start-up
    /// when it draws deadlines that the fleet can meet.
    pub fn p99(&self) -> f64 {
        match *self {
            StartupDist::Fixed(s) => s,
            StartupDist::LogNormal { median, sigma } => median * (2.326_347_874 * sigma).exp(),
        }
    }

    pub fn median(&self) -> f64 {
        match *self {
            StartupDist::Fixed(s) => s,
            StartupDist::LogNormal { median, .. } => median,
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            StartupDist::Fixed(s) => format!("fixed {s} s"),
            StartupDist::LogNormal { median, sigma } => {
                format!("log-normal, median {median} s, sigma {sigma}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            StartupDist::parse("lognormal:40s"),
            Ok(StartupDist::LogNormal { median: 40.0, sigma: DEFAULT_SIGMA })
        );
        assert_eq!(
            StartupDist::parse("lognormal:1m:0.5"),
            Ok(StartupDist::LogNormal { median: 60.0, sigma: 0.5 })
        );
        assert_eq!(StartupDist::parse("fixed:45s"), Ok(StartupDist::Fixed(45.0)));
        for bad in [
            "",
            "lognormal",
            "lognormal:soon",
            "lognormal:40s:-1",
            "lognormal:40s:x",
            "gamma:4s",
            "fixed:1s:2",
        ] {
            assert!(StartupDist::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lognormal_draws_have_the_median_and_spread_asked() {
        let d = StartupDist::LogNormal { median: 40.0, sigma: 0.25 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut v: Vec<f64> = (0..20_000).map(|_| d.draw(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[(p * v.len() as f64) as usize];
        assert!((q(0.5) - 40.0).abs() < 0.5, "median {}", q(0.5));
        // 5% and 95%: 40 x e^(-/+1.645 x 0.25) = 26.5 and 60.3.
        assert!((q(0.05) - 26.5).abs() < 0.8, "p5 {}", q(0.05));
        assert!((q(0.95) - 60.3).abs() < 1.2, "p95 {}", q(0.95));
        assert!((q(0.99) - d.p99()).abs() < 2.5, "p99 {} vs {}", q(0.99), d.p99());
    }
}
