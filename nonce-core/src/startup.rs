//! Start-up latency the planner plans with: learned from the workers a launcher really started.
//!
//! A worker's start-up is the time from the launch request to its first `Hello` (the `Job`
//! measures it and reports it in [`crate::job::Outcome::startups`]). Fargate's start-up varies
//! (30-60 s in public measurements), so a constant either wastes the deadline or breaks the
//! promise; the planner takes a high percentile ([`PERCENTILE`]) of the most recent
//! [`HISTORY_LEN`] samples of the launcher, and the documented default
//! ([`crate::planner::default_startup`]) before any sample exists.
//!
//! Pure data and arithmetic: where the history is kept (a cache file, the daemon's state
//! directory) is the caller's business.

use crate::planner::default_startup;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Samples kept per launcher (the most recent ones).
pub const HISTORY_LEN: usize = 200;
/// The percentile of the history the planner uses, in percent.
pub const PERCENTILE: u8 = 95;

/// The most recent start-up samples of one launcher, in seconds, oldest first. Bounded, so a
/// long-lived daemon follows a launcher that got slower (or faster) instead of averaging it away.
///
/// A launch still waiting for its `Hello` when its job ended is kept too, as a *censored*
/// sample ("longer than this"): dropping those would keep only the workers fast enough to start
/// before the job ended and bias every percentile low, exactly on the slow tail the planner must
/// cover. Percentiles are read from the Kaplan-Meier estimate, which is the plain nearest-rank
/// percentile when nothing is censored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupHistory {
    samples: VecDeque<f64>,
    /// Same length as `samples` (absent in files without censored samples): whether each one
    /// is a lower bound rather than a measured start-up.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    censored: VecDeque<bool>,
}

impl StartupHistory {
    /// Adds one sample, dropping the oldest beyond [`HISTORY_LEN`]. Non-finite or negative
    /// values (a corrupt file, a clock that went backwards) are ignored.
    pub fn record(&mut self, seconds: f64) {
        self.push(seconds, false);
    }

    /// Adds a launch that had waited `seconds` without starting when its job ended.
    pub fn record_censored(&mut self, seconds: f64) {
        self.push(seconds, true);
    }

    fn push(&mut self, seconds: f64, censored: bool) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        self.align();
        self.samples.push_back(seconds);
        self.censored.push_back(censored);
        while self.samples.len() > HISTORY_LEN {
            self.samples.pop_front();
            self.censored.pop_front();
        }
    }

    /// Makes `censored` as long as `samples` (a file may omit it: nothing censored).
    fn align(&mut self) {
        self.censored.resize(self.samples.len(), false);
    }

    /// Measured (not censored) samples.
    pub fn measured(&self) -> usize {
        self.samples.len() - self.censored.iter().filter(|&&c| c).count()
    }

    /// Samples kept, censored ones included.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `pct` percentile (1..=100): the smallest start-up t with an estimated share of at
    /// least `pct`% of start-ups at or below t (Kaplan-Meier over the censored samples; with
    /// none censored, the nearest-rank percentile, so with fewer than 20 samples p95 is the
    /// largest one, which errs on the side of keeping the promise). When so much of the tail is
    /// censored that the estimate never reaches `pct`%, the largest sample of either kind (all
    /// that is known is that the percentile lies beyond it). `None` when empty.
    pub fn percentile(&self, pct: u8) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let censored = self.censored.iter().copied().chain(std::iter::repeat(false));
        let mut v: Vec<(f64, bool)> = self.samples.iter().copied().zip(censored).collect();
        // At equal times, measured start-ups come first: a launch censored at t was still at
        // risk at t.
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want = f64::from(pct.clamp(1, 100)) / 100.0;
        let mut at_risk = v.len() as f64;
        let mut surviving = 1.0;
        for &(t, censored) in &v {
            if !censored {
                surviving *= 1.0 - 1.0 / at_risk;
                if 1.0 - surviving >= want - 1e-9 {
                    return Some(t);
                }
            }
            at_risk -= 1.0;
        }
        v.last().map(|s| s.0)
    }

    /// Drops samples that cannot be start-ups (after deserializing a file written by hand) and
    /// trims to [`HISTORY_LEN`].
    fn sanitize(&mut self) {
        self.align();
        let kept: Vec<(f64, bool)> = self
            .samples
            .iter()
            .copied()
            .zip(self.censored.iter().copied())
            .filter(|(s, _)| s.is_finite() && *s >= 0.0)
            .collect();
        let skip = kept.len().saturating_sub(HISTORY_LEN);
        self.samples = kept.iter().skip(skip).map(|k| k.0).collect();
        self.censored = kept.iter().skip(skip).map(|k| k.1).collect();
    }
}

/// The start-up histories of every launcher, by launcher name (`threads`, `process`, `ecs`):
/// what the daemon keeps in its state directory and the CLI in its cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupBook {
    /// Each launcher's history.
    #[serde(default)]
    pub launchers: BTreeMap<String, StartupHistory>,
}

impl StartupBook {
    /// Records one job's start-ups under `launcher`: those of its workers that said Hello, and
    /// the waits of launches that had not when it ended (censored; see [`StartupHistory`]).
    pub fn record(&mut self, launcher: &str, startups: &[Duration], unstarted: &[Duration]) {
        if startups.is_empty() && unstarted.is_empty() {
            return;
        }
        let h = self.launchers.entry(launcher.to_string()).or_default();
        for s in startups {
            h.record(s.as_secs_f64());
        }
        for s in unstarted {
            h.record_censored(s.as_secs_f64());
        }
    }

    /// `launcher`'s history, if it has one.
    pub fn history(&self, launcher: &str) -> Option<&StartupHistory> {
        self.launchers.get(launcher)
    }

    /// The start-up to plan with for `launcher`: [`PERCENTILE`] of its history, or the default
    /// when it has none. `None` for an unknown launcher with no history.
    pub fn estimate(&self, launcher: &str) -> Option<StartupEstimate> {
        match self.history(launcher).and_then(|h| Some((h.percentile(PERCENTILE)?, h.len()))) {
            Some((seconds, samples)) => Some(StartupEstimate {
                seconds,
                source: StartupSource::Measured { percentile: PERCENTILE, samples },
            }),
            None => default_startup(launcher)
                .map(|seconds| StartupEstimate { seconds, source: StartupSource::Default }),
        }
    }

    /// The book with impossible samples dropped and every history bounded.
    pub fn sanitized(mut self) -> Self {
        for h in self.launchers.values_mut() {
            h.sanitize();
        }
        self.launchers.retain(|_, h| !h.is_empty());
        self
    }
}

/// Where a start-up figure came from, so `estimate --json` and `search.start` can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupSource {
    /// The `pN` of the launcher's last `samples` measured start-ups.
    Measured {
        /// Which percentile.
        percentile: u8,
        /// Of how many samples.
        samples: usize,
    },
    /// [`crate::planner::default_startup`]: no history yet.
    Default,
    /// Given by the user (`--startup`).
    Given,
}

impl StartupSource {
    /// `measured`, `default` or `given`.
    pub fn name(self) -> &'static str {
        match self {
            StartupSource::Measured { .. } => "measured",
            StartupSource::Default => "default",
            StartupSource::Given => "given",
        }
    }

    /// "measured p95 of 12 samples", "default", "given".
    pub fn describe(self) -> String {
        match self {
            StartupSource::Measured { percentile, samples } => {
                format!("measured p{percentile} of {samples} samples")
            }
            other => other.name().to_string(),
        }
    }
}

/// A start-up latency, seconds, with its provenance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartupEstimate {
    /// Seconds from launch request to the first Hello.
    pub seconds: f64,
    /// Where the figure came from.
    pub source: StartupSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(samples: &[f64]) -> StartupHistory {
        let mut h = StartupHistory::default();
        for &s in samples {
            h.record(s);
        }
        h
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let h = history(&(1..=100).map(f64::from).rev().collect::<Vec<_>>());
        assert_eq!(h.percentile(95), Some(95.0));
        assert_eq!(h.percentile(50), Some(50.0));
        assert_eq!(h.percentile(100), Some(100.0));
        assert_eq!(h.percentile(1), Some(1.0));
        // Few samples: p95 is the largest.
        assert_eq!(history(&[3.0, 9.0, 1.0]).percentile(95), Some(9.0));
        // 40 samples: rank ceil(0.95 x 40) = 38.
        let h = history(&(1..=40).map(f64::from).collect::<Vec<_>>());
        assert_eq!(h.percentile(95), Some(38.0));
        assert_eq!(StartupHistory::default().percentile(95), None);
    }

    #[test]
    fn censored_launches_count_as_longer_than_their_wait() {
        // 10 measured start-ups 1..=10 s, and 10 launches still waiting at 10 s when their jobs
        // ended. Dropping those would give p95 = 10 s; they say half the launches take > 10 s.
        let mut h = history(&(1..=10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(h.percentile(95), Some(10.0));
        for _ in 0..10 {
            h.record_censored(10.0);
        }
        assert_eq!(h.measured(), 10);
        // F(10) = 0.5 only: p50 is 10 s, p95 unknown beyond 10 s, so the largest sample.
        assert_eq!(h.percentile(50), Some(10.0));
        assert_eq!(h.percentile(40), Some(8.0));
        // One slow start measured later lifts the estimate to it.
        h.record(30.0);
        assert_eq!(h.percentile(95), Some(30.0));
        // Censored early (a job that ended fast) says nothing about later start-ups: Kaplan-Meier
        // takes them out of the risk set, the percentiles of the measured ones stay.
        let mut h = history(&(1..=20).map(f64::from).collect::<Vec<_>>());
        let before = h.percentile(95);
        for _ in 0..20 {
            h.record_censored(0.5);
        }
        assert_eq!(h.percentile(95), before);
    }

    #[test]
    fn history_keeps_the_most_recent_samples_only() {
        let mut h = StartupHistory::default();
        // An old slow era, then HISTORY_LEN fast samples: the slow ones are forgotten.
        for _ in 0..50 {
            h.record(60.0);
        }
        for _ in 0..HISTORY_LEN {
            h.record(1.0);
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.percentile(100), Some(1.0));
        h.record(f64::NAN);
        h.record(-1.0);
        assert_eq!(h.len(), HISTORY_LEN);
    }

    #[test]
    fn gpu_workers_have_their_own_history_and_default() {
        let mut book = StartupBook::default();
        let key = crate::planner::GPU_STARTUP_KEY;
        assert_eq!(book.estimate(key).map(|e| e.seconds), Some(crate::pricing::GPU_WORKER.startup_s));
        book.record(key, &[Duration::from_secs(300)], &[]);
        // Fargate's plans do not inherit an EC2 instance's minutes.
        assert_eq!(
            book.estimate("ecs"),
            Some(StartupEstimate { seconds: 45.0, source: StartupSource::Default })
        );
        assert_eq!(book.estimate(key).map(|e| e.seconds), Some(300.0));
    }

    #[test]
    fn estimate_is_the_default_until_history_exists() {
        let mut book = StartupBook::default();
        let e = book.estimate("ecs").expect("ecs has a default");
        assert_eq!(e, StartupEstimate { seconds: 45.0, source: StartupSource::Default });
        assert!(book.estimate("nonsense").is_none());
        let samples: Vec<Duration> = (30..=59).map(Duration::from_secs).collect();
        book.record("ecs", &samples, &[]);
        let e = book.estimate("ecs").expect("measured");
        // 30 samples 30..=59: rank ceil(0.95 x 30) = 29, the 29th smallest is 58.
        assert_eq!(e.seconds, 58.0);
        assert_eq!(e.source, StartupSource::Measured { percentile: 95, samples: 30 });
        assert_eq!(e.source.describe(), "measured p95 of 30 samples");
        // Other launchers keep their defaults.
        assert_eq!(book.estimate("threads").map(|e| e.source), Some(StartupSource::Default));
    }

    #[test]
    fn a_book_survives_serde_and_drops_garbage() {
        let mut book = StartupBook::default();
        book.record(
            "process",
            &[Duration::from_millis(20), Duration::from_millis(30)],
            &[Duration::from_millis(5)],
        );
        let text = serde_json::to_string(&book).expect("serializes");
        let back: StartupBook = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, book);
        let hand: StartupBook =
            serde_json::from_str(r#"{"launchers":{"ecs":{"samples":[-3.0, 40.0]},"x":{"samples":[]}}}"#)
                .expect("parses");
        let clean = hand.sanitized();
        assert_eq!(clean.history("ecs").map(StartupHistory::len), Some(1));
        assert!(clean.history("x").is_none());
    }
}
