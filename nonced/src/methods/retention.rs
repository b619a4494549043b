//! Retention: the daemon remembers its running jobs and the newest `keep_finished` finished
//! ones. Older ones are forgotten, in memory and in the journal (a `Forget` record that
//! compaction then drops), so a daemon that has run jobs for a year needs no more memory,
//! and no longer a restart, than one that has run a thousand. What a forgotten job spent
//! still counts against its owner's day, and the metrics' totals still count it.

use super::{unix_now, DaemonMethods};
use crate::journal::{DayUsage, Record};
use crate::metrics::Reading;
use protocol::JobId;
use std::collections::VecDeque;

/// What forgotten jobs leave behind, and which kept job is forgotten next.
#[derive(Debug, Default)]
pub(super) struct Forgotten {
    /// Finished jobs still kept, the oldest finish first.
    pub order: VecDeque<JobId>,
    /// vCPU-seconds by owner and UTC day.
    pub usage: DayUsage,
    /// Their share of the metrics' sums (whose counters must never go down).
    pub totals: Reading,
}

impl DaemonMethods {
    /// `job` has finished (or was restored finished): it joins the kept ones, and the oldest
    /// beyond `keep_finished` are forgotten.
    pub(super) fn keep_finished(&self, job: JobId) {
        let keep = self.config().keep_finished;
        let now = unix_now();
        // Under the same locks as the removal, so a quota check or a scrape never sees a job
        // gone from the table while its spend and counters are not yet among the forgotten.
        let forget: Vec<(JobId, Record)> = {
            let mut f = self.forgotten();
            f.order.push_back(job);
            let mut jobs = self.jobs();
            let mut out = Vec::new();
            while f.order.len() > keep {
                let Some(old) = f.order.pop_front() else { break };
                let Some(e) = jobs.remove(&old) else { continue };
                let day = e.finished_at.unwrap_or(now) / 86_400;
                let vcpu_seconds = e.vcpu_seconds_on(day, now);
                *f.usage.entry((e.owner.clone(), day)).or_default() += vcpu_seconds;
                if let Some(result) = &e.result {
                    f.totals.add_finished(result);
                }
                out.push((old, Record::Forget { job: old.to_string(), owner: e.owner, day, vcpu_seconds }));
            }
            out
        };
        for (id, record) in forget {
            self.timelines().forget(id);
            // Not waited for; should it fail (logged), the job stays in the journal and the
            // next start forgets it again.
            self.journal.submit(record);
        }
    }

    /// vCPU-seconds `owner`'s forgotten jobs spent on UTC day `day`.
    pub(super) fn forgotten_usage(&self, owner: &str, day: u64) -> f64 {
        self.forgotten().usage.get(&(Some(owner.to_string()), day)).copied().unwrap_or(0.0)
    }

    /// The forgotten jobs' share of the metrics.
    pub(super) fn forgotten_totals(&self) -> Reading {
        self.forgotten().totals.clone()
    }
}
