//! `WorkerTimings`: how often workers report, when a silent one is written off, and when a
//! worker with no coordinator gives up. Stated by the user (flags, config), read by the
//! launchers (the workers' environment) and the job (stall timeout, keep-alives).

use std::time::Duration;

/// The liveness timings of a job and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTimings {
    /// How often workers report.
    pub heartbeat: Duration,
    /// A worker silent this long loses its shards.
    pub stall_timeout: Duration,
    /// A worker that hears nothing from the coordinator this long stops itself.
    pub orphan_timeout: Duration,
}

impl Default for WorkerTimings {
    /// In-process workers: reports are free, so stalls are noticed in seconds.
    fn default() -> Self {
        WorkerTimings {
            heartbeat: Duration::from_millis(250),
            stall_timeout: Duration::from_secs(3),
            orphan_timeout: Duration::from_secs(10),
        }
    }
}

impl WorkerTimings {
    /// Over SQS every message is a request, so the timings are chosen against the price list
    /// (`nonce_core::pricing`): messaging may cost at most 1% of the worker's own Fargate
    /// time, about 20.6 SQS requests per worker-minute for the default task (1 vCPU, 2 GB).
    ///
    /// - heartbeat 9 s: 6.7 sends a minute by the worker, and about as many receives by the
    ///   coordinator (plus ~1 delete, batched); progress is at most 9 s old;
    /// - the worker's 20 s inbox long poll (a `Stop` reaches it at once): 3 receives a minute,
    ///   0.8 more woken by keep-alives;
    /// - keep-alive every 75 s (a quarter of the 300 s orphan timeout): one SNS publish for
    ///   the whole fleet;
    /// - stall timeout 21 s (two heartbeats lost and a margin): with the supervisor's tick at
    ///   half a heartbeat, a hung worker loses its range at most ~26 s after its last word.
    ///
    /// About 18-19 requests per worker-minute in all (0.9% of the worker's cost); measured by
    /// `noncectl experiment sqs-cost`. Dead processes and stopped tasks are noticed by the
    /// launcher at once, whatever these say.
    pub fn aws() -> Self {
        WorkerTimings {
            heartbeat: Duration::from_secs(9),
            stall_timeout: Duration::from_secs(21),
            orphan_timeout: Duration::from_secs(300),
        }
    }

    /// The coordinator's keep-alive interval: four chances before a worker gives up.
    pub fn keepalive(&self) -> Duration {
        self.orphan_timeout / 4
    }
}
