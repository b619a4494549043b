//! Fargate's launch quotas: token buckets per account and Region, which decide how fast a fleet
//! can be started at all. The same figures pace the `ecs` launcher (it never asks for more than
//! the buckets hold) and shape the planner's ramp (the i-th worker of a fleet cannot start
//! before the buckets allow its launch).
//!
//! AWS documents two buckets that matter here (AWS Fargate throttling quotas, read
//! [`QUOTAS_AS_OF`]): **tasks launched**, a bucket of 100 refilled at 20 a second (on-demand
//! and Spot alike), and **`RunTask` calls**, 20 a second, burst and sustained; a call starts at
//! most 10 tasks. Each worker's task carries its own name and key in its override, so the
//! launcher makes one call per task and the call bucket binds first: 1,000 workers need
//! (1000 - 20) / 20 = 49 s just to be asked for. Accounts with raised quotas set their own
//! figures (`[ecs]` in the daemon's config).
//!
//! Pure arithmetic over a time the caller gives (a `Duration` since any origin): no clock.

use std::time::Duration;

/// When the quotas below were read from AWS's documentation.
pub const QUOTAS_AS_OF: &str = "2026-12-01";

/// One token bucket's quota: how many at once, and how many a second after that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens a full bucket holds (the burst).
    pub burst: f64,
    /// Tokens added a second (the sustained rate).
    pub per_second: f64,
}

impl Bucket {
    /// Seconds after a full bucket's start at which the `i`-th take (0-based, one token each)
    /// can happen.
    pub fn earliest(&self, i: usize) -> f64 {
        ((i as f64 + 1.0 - self.burst) / self.per_second).max(0.0)
    }

    /// `BURST:RATE` (`100:20`, `20:20/s`), as the config and the flags write a quota.
    pub fn parse(text: &str) -> Result<Bucket, QuotaError> {
        let bad = || QuotaError::Syntax(text.to_string());
        let (burst, rate) = text.trim().split_once(':').ok_or_else(bad)?;
        let rate = rate.trim().trim_end_matches("/s");
        let b = Bucket {
            burst: burst.trim().parse().map_err(|_| bad())?,
            per_second: rate.trim().parse().map_err(|_| bad())?,
        };
        b.check("the quota").map(|()| b)
    }

    fn check(&self, quota: &'static str) -> Result<(), QuotaError> {
        if !(self.burst.is_finite() && self.burst >= 1.0) {
            return Err(QuotaError::Burst { quota, burst: self.burst });
        }
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(QuotaError::Rate { quota, per_second: self.per_second });
        }
        Ok(())
    }
}

/// A quota no bucket can have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    /// Not `BURST:RATE`.
    #[error("{0:?}: expected BURST:RATE, e.g. 100:20 (a burst of 100, then 20 a second)")]
    Syntax(String),
    /// A burst below one token.
    #[error("{quota}: the burst must be at least 1, not {burst}")]
    Burst {
        /// Which quota.
        quota: &'static str,
        /// The figure given.
        burst: f64,
    },
    /// A rate that is not a positive number.
    #[error("{quota}: the rate must be a positive number a second, not {per_second}")]
    Rate {
        /// Which quota.
        quota: &'static str,
        /// The figure given.
        per_second: f64,
    },
}

/// The account's launch quotas, as the launcher and the planner see them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaunchQuotas {
    /// Fargate tasks launched.
    pub tasks: Bucket,
    /// `RunTask` calls (one task each, see the module docs).
    pub calls: Bucket,
}

impl Default for LaunchQuotas {
    /// Fargate's documented defaults.
    fn default() -> Self {
        LaunchQuotas {
            tasks: Bucket { burst: 100.0, per_second: 20.0 },
            calls: Bucket { burst: 20.0, per_second: 20.0 },
        }
    }
}

impl LaunchQuotas {
    /// Refuses figures no bucket can have (zero, negative, not a number).
    pub fn validate(&self) -> Result<(), QuotaError> {
        self.tasks.check("the task launch quota")?;
        self.calls.check("the RunTask quota")
    }

    /// Seconds after the start of a launch (buckets full) at which the `i`-th worker's
    /// one-task call can be sent: both buckets must hold a token.
    pub fn earliest(&self, i: usize) -> f64 {
        self.tasks.earliest(i).max(self.calls.earliest(i))
    }

    /// How many workers can be asked for within `seconds` of the start (buckets full).
    pub fn launched_within(&self, seconds: f64) -> usize {
        if seconds < 0.0 {
            return 0;
        }
        let within = |b: &Bucket| b.burst.floor() + (seconds * b.per_second).floor();
        within(&self.tasks).min(within(&self.calls)) as usize
    }

    /// "100 at once, then 20/s": for messages.
    pub fn describe(&self) -> String {
        let b = if self.calls.burst < self.tasks.burst { &self.calls } else { &self.tasks };
        let rate = self.tasks.per_second.min(self.calls.per_second);
        format!("{} at once, then {}/s", b.burst, rate)
    }
}

/// A live token bucket: tokens now, refilled with time.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    quota: Bucket,
    tokens: f64,
    at: Duration,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(quota: Bucket, now: Duration) -> Self {
        TokenBucket { quota, tokens: quota.burst, at: now }
    }

    fn refill(&mut self, now: Duration) {
        // A clock that went backwards adds nothing (and takes nothing away).
        let dt = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.quota.per_second).min(self.quota.burst);
        self.at = self.at.max(now);
    }

    /// How long until one token is there (zero: now).
    pub fn wait(&mut self, now: Duration) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.quota.per_second)
        }
    }

    /// Takes one token (the caller checked [`TokenBucket::wait`]; taking from an empty bucket
    /// goes into debt, which the refill pays back first).
    pub fn take(&mut self, now: Duration) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// The service said it is throttling: its bucket is emptier than ours (another program on
    /// the account, a second daemon), so ours starts again from nothing.
    pub fn drain(&mut self, now: Duration) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
    }

    /// Tokens held at `now`.
    pub fn tokens(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.tokens
    }
}

/// Both buckets of [`LaunchQuotas`], shared by every job an account's process launches for.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchGate {
    tasks: TokenBucket,
    calls: TokenBucket,
}

impl LaunchGate {
    /// Both buckets full at `now`.
    pub fn new(quotas: LaunchQuotas, now: Duration) -> Self {
        LaunchGate {
            tasks: TokenBucket::full(quotas.tasks, now),
            calls: TokenBucket::full(quotas.calls, now),
        }
    }

    /// Takes a token from each bucket for one one-task call, or says how long to wait first.
    pub fn try_launch(&mut self, now: Duration) -> Result<(), Duration> {
        let wait = self.tasks.wait(now).max(self.calls.wait(now));
        if wait > Duration::ZERO {
            return Err(wait);
        }
        self.tasks.take(now);
        self.calls.take(now);
        Ok(())
    }

    /// A call came back throttled: see [`TokenBucket::drain`].
    pub fn throttled(&mut self, now: Duration) {
        self.tasks.drain(now);
        self.calls.drain(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn the_documented_quotas_give_the_documented_ramp() {
        let q = LaunchQuotas::default();
        // The call bucket binds: 20 at once, then 20 a second.
        assert_eq!(q.earliest(0), 0.0);
        assert_eq!(q.earliest(19), 0.0);
        assert!((q.earliest(20) - 0.05).abs() < 1e-12);
        assert!((q.earliest(999) - 49.0).abs() < 1e-9, "{}", q.earliest(999));
        // 10,000 workers: (10000 - 20) / 20 = 499 s, over eight minutes.
        assert!((q.earliest(9_999) - 499.0).abs() < 1e-9);
        // With a raised call quota the task bucket binds: (1000 - 100) / 20 = 45 s.
        let raised = LaunchQuotas { calls: Bucket { burst: 100.0, per_second: 100.0 }, ..q };
        assert!((raised.earliest(999) - 45.0).abs() < 1e-9);
        assert_eq!(q.launched_within(0.0), 20);
        assert_eq!(q.launched_within(49.0), 1000);
        assert_eq!(raised.launched_within(45.0), 1000);
        assert_eq!(q.describe(), "20 at once, then 20/s");
    }

    #[test]
    fn a_bucket_paces_takes_to_its_rate_and_a_throttle_empties_it() {
        let mut g = LaunchGate::new(LaunchQuotas::default(), Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut sent = 0;
        // Take as fast as allowed for 10 simulated seconds.
        while now < s(10.0) {
            match g.try_launch(now) {
                Ok(()) => sent += 1,
                Err(wait) => now += wait,
            }
        }
        // 20 at once plus 20 a second for 10 s (the last one at exactly 10 s may or may not fit).
        assert!((219..=221).contains(&sent), "{sent}");
        g.throttled(now);
        assert!(g.try_launch(now).is_err(), "drained");
        assert!(g.try_launch(now + s(0.05)).is_ok(), "one token after 1/20 s");
    }

    #[test]
    fn quotas_parse_as_burst_and_rate() {
        assert_eq!(Bucket::parse("100:20"), Ok(Bucket { burst: 100.0, per_second: 20.0 }));
        assert_eq!(Bucket::parse(" 5 : 2.5/s "), Ok(Bucket { burst: 5.0, per_second: 2.5 }));
        for bad in ["", "100", "a:b", "0:20", "100:0", "100:-1", "inf:20"] {
            assert!(Bucket::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_quotas_are_refused() {
        let mut q = LaunchQuotas::default();
        assert!(q.validate().is_ok());
        q.tasks.per_second = 0.0;
        assert!(q.validate().expect_err("refused").to_string().contains("task launch quota"));
        q = LaunchQuotas::default();
        q.calls.burst = f64::NAN;
        assert!(q.validate().expect_err("refused").to_string().contains("RunTask"));
    }
}
