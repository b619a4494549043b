//! The decision core of nonce-cloud: what the coordinator decides, with no I/O.
//!
//! Problems it solves, and where:
//! - **Splitting and tracking the nonce space** so that "every nonce below n is searched" and
//!   "no golden nonce exists here" are facts, not hopes: [`ledger::Ledger`].
//! - **Deciding what happens next** in a search (assign, steal, re-shard a stalled worker's
//!   range, accept a verified result, finish), from inputs and a time the caller gives:
//!   [`job::Job`], `handle(now, input) -> outputs`.
//! - **Trusting no worker**: every message's tag is checked against the worker's key, and
//!   claimed work is proven by shares and spot checks: [`proof`] (the statistics) and the
//!   job's `machine::proof` (what it does with them).
//! - **Planning a fleet** for a deadline and a confidence, over a finite space, at a price:
//!   [`planner`], with the prices behind the defaults in [`pricing`] and start-up latencies
//!   learned from real launches in [`startup`].
//!
//! Like quinn-proto beside quinn, this crate holds only the logic; the `coordinator` crate
//! moves messages and time around it. Its dependencies are `protocol` and pure libraries, so
//! the compiler keeps it free of actors, runtimes, sockets and clocks, and the deterministic
//! simulation (`tests/simulation.rs`) and the scale bench (`benches/scale.rs`) drive the very
//! code the daemon runs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod job;
pub mod launch_quota;
pub mod ledger;
pub mod planner;
pub mod pricing;
pub mod proof;
pub mod startup;
