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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupHistory {
    samples: VecDeque<f64>,
}

impl StartupHistory {
    /// Adds one sample, dropping the oldest beyond [`HISTORY_LEN`]. Non-finite or negative
    /// values (a corrupt file, a clock that went backwards) are ignored.
    pub fn record(&mut self, seconds: f64) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        self.samples.push_back(seconds);
        while self.samples.len() > HISTORY_LEN {
            self.samples.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The nearest-rank `pct` percentile (1..=100): the smallest sample with at least `pct`% of
    /// the samples at or below it. With fewer than 20 samples p95 is the largest one, which errs
    /// on the side of keeping the promise. `None` when empty.
    pub fn percentile(&self, pct: u8) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let pct = usize::from(pct.clamp(1, 100));
        let rank = (pct * v.len()).div_ceil(100).clamp(1, v.len());
        Some(v[rank - 1])
    }

    /// Drops samples that cannot be start-ups (after deserializing a file written by hand) and
    /// trims to [`HISTORY_LEN`].
    fn sanitize(&mut self) {
        self.samples.retain(|s| s.is_finite() && *s >= 0.0);
        while self.samples.len() > HISTORY_LEN {
            self.samples.pop_front();
        }
    }
}

/// The start-up histories of every launcher, by launcher name (`threads`, `process`, `ecs`):
/// what the daemon keeps in its state directory and the CLI in its cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupBook {
    #[serde(default)]
    pub launchers: BTreeMap<String, StartupHistory>,
}

impl StartupBook {
    /// Records the start-ups of one job's workers under `launcher`.
    pub fn record(&mut self, launcher: &str, startups: &[Duration]) {
        if startups.is_empty() {
            return;
        }
        let h = self.launchers.entry(launcher.to_string()).or_default();
        for s in startups {
            h.record(s.as_secs_f64());
        }
    }

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
    Measured { percentile: u8, samples: usize },
    /// [`crate::planner::default_startup`]: no history yet.
    Default,
    /// Given by the user (`--startup`).
    Given,
}

impl StartupSource {
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
    pub seconds: f64,
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
    fn estimate_is_the_default_until_history_exists() {
        let mut book = StartupBook::default();
        let e = book.estimate("ecs").expect("ecs has a default");
        assert_eq!(e, StartupEstimate { seconds: 45.0, source: StartupSource::Default });
        assert!(book.estimate("nonsense").is_none());
        let samples: Vec<Duration> = (30..=59).map(Duration::from_secs).collect();
        book.record("ecs", &samples);
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
        book.record("process", &[Duration::from_millis(20), Duration::from_millis(30)]);
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
