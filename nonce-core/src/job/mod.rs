//! `Job`: one search as a state machine. Every decision the coordinator makes about a search
//! (assign, steal, re-shard a stalled worker's range, accept a verified result, finish) is
//! made here, from inputs and a time given by the caller, so it can be tested and simulated
//! exhaustively. The actors around it only move messages and time.
//!
//! - [`config`]: what is fixed when the job starts;
//! - [`events`]: the inputs it takes and the outputs it asks for;
//! - [`outcome`]: the counters, views and end it reports;
//! - [`snapshot`]: what survives a coordinator restart;
//! - [`machine`]: the state machine itself.

pub mod config;
pub mod events;
pub mod machine;
pub mod outcome;
pub mod snapshot;

pub use config::{InboxRule, JobConfig};
pub use events::{Input, Output};
pub use machine::Job;
pub use outcome::{
    MapSpan, MapState, Outcome, OutcomeKind, SpaceMap, Stats, Status, Suspect, Verification, WorkerHealth,
    WorkerInfo, MAX_FOUND,
};
pub use snapshot::Snapshot;
