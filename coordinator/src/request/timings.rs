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
    /// Over SQS every message is a request. A worker always has a 20 s long poll open on its
    /// inbox (so a `Stop` reaches it at once): at least 3 receives a minute. A keep-alive
    /// every 75 s (a quarter of the orphan timeout) adds about 0.2, a heartbeat every 2
    /// minutes 0.5: about 3.7 requests per worker-minute. Dead processes and stopped tasks
    /// are noticed by the launcher at once; only a hung worker waits for the stall timeout.
    pub fn aws() -> Self {
        WorkerTimings {
            heartbeat: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(360),
            orphan_timeout: Duration::from_secs(300),
        }
    }

    /// The coordinator's keep-alive interval: four chances before a worker gives up.
    pub fn keepalive(&self) -> Duration {
        self.orphan_timeout / 4
    }
}
