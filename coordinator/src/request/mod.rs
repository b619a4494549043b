//! The contract between users and the runtime: a search as a user states it
//! ([`SearchRequest`], from `noncectl` flags or a JSON-RPC `search.start`), validated into a
//! [`JobSpec`] the actors run, and the result as users read it ([`SearchReport`], the
//! `--json` object and the RPC result). The CLI and the daemon share it, so both accept and
//! print the same things.
//!
//! Also here, because every entry point reads them the same way: input parsing and
//! [`UsageError`] ([`parse`]), the liveness [`WorkerTimings`], and the measured hash rate the
//! planner uses ([`calibration`]), and the start-up histories it learns ([`startup`]).

pub mod calibration;
pub mod launch_gate;
pub mod parse;
pub mod report;
pub mod search;
pub mod spec;
pub mod startup;
pub mod timings;

pub use parse::{parse_duration, parse_duration_flag, parse_duration_flag_or_zero, UsageError};
pub use report::SearchReport;
pub use search::{Knowledge, SearchRequest, DEFAULT_AWS_PREFIX, DEFAULT_ECS_CONTAINER, MAX_LOCAL_WORKERS};
pub use spec::{
    cpus, AwsSettings, CapacityKind, JobSpec, LaunchDelay, LaunchPacing, LauncherKind, RetryPolicy,
    TransportKind,
};
pub use timings::WorkerTimings;
