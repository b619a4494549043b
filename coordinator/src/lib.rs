//! The coordinator runtime of nonce-cloud: what both programs (`noncectl`, its own crate, and
//! `nonced`, its own crate) run a search with.
//!
//! The decisions (the range ledger, the job state machine, the planner) live in the
//! `nonce_core` crate, which cannot do I/O. This crate moves messages and time around them.
//! Its modules form layers; each may use only the layers below it (`tests/layering.rs`
//! checks this, so there are no import cycles):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | actors | [`actors`] | the actix shells: the job registry and one `JobSupervisor` per job |
//! | seams | [`launcher`] above [`transport`] | how workers start (`threads`, `process`, `ecs`) and how commands reach them (`memory`, `pipe`, `aws`) |
//! | contract | [`request`] | a search as users state it, validated into a `JobSpec`, and its report; input parsing |
//! | process | [`logging`], [`output`] | what both programs share: logs, and stdout that may be a closed pipe |
//!
//! Problems it solves, and where:
//! - **Supervision apart from work**: workers hash; the `JobSupervisor` only relays, and
//!   liveness comes from recorded progress (heartbeats with watermarks), not health checks.
//! - **Many ways to run one search**: a transport and a launcher are chosen independently
//!   per job, each behind one trait ([`transport::Transport`], [`launcher::Launcher`]).
//! - **Users**: the same request and report whether `noncectl` runs the coordinator
//!   in-process or talks to `nonced`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actors;
pub mod launcher;
pub mod logging;
pub mod output;
pub mod request;
pub mod transport;
