//! The `aws` transport: how a coordinator and its workers talk across machines.
//!
//! Problems it solves, and how:
//! - **Fan-in without a server.** Workers send their events to one standard SQS queue; the
//!   coordinator long-polls it ([`EventRouter`]) and routes each event to its job by id.
//!   Events of jobs it does not run (the coursework system's "ghost" messages from earlier
//!   jobs) are deleted and counted, never acted on, so no purge is needed between jobs.
//! - **Poison messages.** A body that does not decode is moved to the dead-letter queue,
//!   counted and logged; the redrive policy catches anything that keeps failing anyway.
//! - **Broadcasts.** `Stop` and keep-alives go to one SNS topic; every worker's inbox queue
//!   is subscribed with raw delivery and a filter policy on the job, so a worker hears its
//!   own job's broadcasts and the `all` ones, and nothing else.
//! - **Direct commands.** Each worker creates its own inbox queue ([`WorkerLink`]) and
//!   deletes it (and its subscription) on the way out; the coordinator [`sweep`]s the
//!   inboxes of workers that died without doing so.
//! - **Cost.** Long polls of 20 s, batched sends and deletes, and inboxes that need no
//!   deletes: [`ApiCalls`] counts every request by operation so the rate per worker-minute is known.
//! - **Fargate fleets.** [`ecs`] runs, watches and stops tasks in batches of ten, with
//!   exponential backoff and jitter when throttled.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clients;
pub mod command_sender;
pub mod ecs;
pub mod error;
pub mod event_router;
pub mod fabric;
pub mod names;
pub mod sweep;
pub mod worker_link;

pub use clients::{ApiCalls, AwsClients, CALL_LOG_VAR};
pub use command_sender::CommandSender;
pub use error::AwsError;
pub use event_router::{pollers_for, EventRouter, RouterStats};
pub use fabric::Fabric;
pub use names::ResourceNames;
pub use worker_link::{EventSender, WorkerLink};

/// The SNS message attribute that names the job a broadcast is for (`all` for every job).
pub const JOB_ATTRIBUTE: &str = "job";
