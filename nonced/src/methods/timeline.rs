//! What happened to a job over time, for the dashboard: progress and rate each second, and the
//! supervision events (a stall, a re-shard, a steal, a launch of a replacement, ghost and
//! rejected messages) when they were seen. Sampled by the job's watcher from the job's
//! counters, so it costs the job nothing; bounded, so a week-long job cannot grow it.

use nonce_core::job::Stats;
use protocol::JobId;
use std::collections::{BTreeMap, VecDeque};

/// Finished jobs whose timelines are kept (the newest): a daemon that has run a hundred
/// thousand jobs keeps a hundred charts, not a hundred thousand.
pub const KEEP_FINISHED: usize = 100;

/// The timelines of every running job and of the last [`KEEP_FINISHED`] finished ones.
#[derive(Debug, Default)]
pub struct Timelines {
    by_job: BTreeMap<JobId, Timeline>,
    finished: VecDeque<JobId>,
}

impl Timelines {
    pub fn entry(&mut self, job: JobId) -> &mut Timeline {
        self.by_job.entry(job).or_default()
    }

    pub fn get(&self, job: &JobId) -> Option<&Timeline> {
        self.by_job.get(job)
    }

    /// `job` has ended: its timeline is kept until [`KEEP_FINISHED`] newer jobs have ended.
    pub fn finished(&mut self, job: JobId) {
        self.finished.push_back(job);
        while self.finished.len() > KEEP_FINISHED {
            if let Some(old) = self.finished.pop_front() {
                self.by_job.remove(&old);
            }
        }
    }

    /// `job` is forgotten altogether.
    pub fn forget(&mut self, job: JobId) {
        self.by_job.remove(&job);
        self.finished.retain(|&j| j != job);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_job.len()
    }
}

/// Samples kept: ten minutes at one a second (older ones are thinned, not lost: every other
/// one is dropped when full, so the chart always spans the whole job).
const MAX_SAMPLES: usize = 600;
/// Events kept (the newest).
const MAX_EVENTS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    t: f64,
    searched: u128,
    rate: f64,
    workers: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Event {
    t: f64,
    kind: &'static str,
    count: u64,
}

/// One job's history.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    samples: VecDeque<Sample>,
    events: VecDeque<Event>,
    last: Option<Stats>,
}

impl Timeline {
    /// Records the job's counters at `t` seconds since it started.
    pub fn record(&mut self, t: f64, stats: &Stats) {
        if self.samples.len() == MAX_SAMPLES {
            let kept: VecDeque<Sample> = self.samples.iter().step_by(2).copied().collect();
            self.samples = kept;
        }
        self.samples.push_back(Sample {
            t,
            searched: stats.searched,
            rate: stats.rate,
            workers: stats.workers_live,
        });
        if let Some(last) = &self.last {
            let launched = stats.launched.saturating_sub(last.launched) as u64;
            for (kind, now, before) in [
                ("stall", stats.stalls, last.stalls),
                ("reshard", stats.reshards, last.reshards),
                ("interruption", stats.interruptions, last.interruptions),
                ("steal", stats.steals, last.steals),
                ("launch", launched, 0),
                ("ghost", stats.ghosts, last.ghosts),
                ("rejected", stats.rejected, last.rejected),
            ] {
                if now > before {
                    if self.events.len() == MAX_EVENTS {
                        self.events.pop_front();
                    }
                    self.events.push_back(Event { t, kind, count: now - before });
                }
            }
        }
        self.last = Some(stats.clone());
    }

    /// As the API's type (`search.map`'s `timeline`).
    pub fn view(&self) -> nonce_api::Timeline {
        let tenth = |t: f64| (t * 10.0).round() / 10.0;
        nonce_api::Timeline {
            samples: self
                .samples
                .iter()
                .map(|s| nonce_api::TimelineSample {
                    t: tenth(s.t),
                    searched: s.searched as f64,
                    rate: s.rate.round(),
                    workers: s.workers,
                })
                .collect(),
            events: self
                .events
                .iter()
                .map(|e| nonce_api::TimelineEvent { t: tenth(e.t), kind: e.kind.to_string(), count: e.count })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_finished_jobs_keep_their_timelines() {
        let mut all = Timelines::default();
        let running = JobId(u64::MAX);
        all.entry(running).record(0.0, &Stats::default());
        for k in 0..1000 {
            all.entry(JobId(k)).record(0.0, &Stats::default());
            all.finished(JobId(k));
        }
        assert_eq!(all.len(), KEEP_FINISHED + 1, "the running job's and the newest finished ones'");
        assert!(all.get(&running).is_some());
        assert!(all.get(&JobId(999)).is_some() && all.get(&JobId(0)).is_none());
    }

    #[test]
    fn counters_that_grow_become_events_and_samples_stay_bounded() {
        let mut t = Timeline::default();
        let mut s = Stats { launched: 3, ..Stats::default() };
        t.record(0.0, &s);
        s.stalls = 1;
        s.reshards = 2;
        t.record(1.0, &s);
        s.launched = 4;
        t.record(2.0, &s);
        let v = t.view();
        let kinds: Vec<(&str, u64)> = v.events.iter().map(|e| (e.kind.as_str(), e.count)).collect();
        assert_eq!(kinds, vec![("stall", 1), ("reshard", 2), ("launch", 1)]);
        for i in 0..2000 {
            t.record(3.0 + i as f64, &s);
        }
        let samples = t.view().samples;
        assert!(samples.len() <= MAX_SAMPLES, "{}", samples.len());
        assert_eq!(samples[0].t, 0.0, "the chart still starts at the start");
    }
}
