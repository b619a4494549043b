//! The coordinator of nonce-cloud.
//!
//! Problems it solves, and where:
//! - **Splitting and tracking the nonce space** so that "every nonce below n is searched" and
//!   "no golden nonce exists here" are facts, not hopes: [`ledger::Ledger`].
//! - **Deciding what happens next** (assign, steal, re-shard a stalled worker's range, accept
//!   a verified result, finish) without I/O or clocks, so it can be simulated: [`job::Job`].
//! - **Moving messages and time** around those decisions: thin actix actors
//!   ([`supervisor::JobSupervisor`], [`registry::Coordinator`]) over a [`transport`] and a
//!   [`launcher`].
//! - **Users**: the `noncectl` CLI ([`cli`]) and the `nonced` daemon.

pub mod aws;
pub mod calibration;
pub mod cli;
pub mod daemon;
pub mod ecs_launcher;
pub mod experiment;
pub mod job;
pub mod launcher;
pub mod ledger;
pub mod logging;
pub mod planner;
pub mod plot;
pub mod process;
pub mod registry;
pub mod request;
pub mod spec;
pub mod supervisor;
pub mod transport;
