//! Transports carry commands from the coordinator to workers; events flow back as
//! [`WorkerEvent`] messages to the job's supervisor, whichever transport brought them.
//!
//! One trait, [`Transport`], is the seam: [`memory`] (actor messages, the embedded default),
//! [`pipe`] (the stdin of `nonce-worker` processes) and [`aws`] (SQS inboxes and the SNS
//! control topic). A new transport implements it, and `actors::registry` wires it to a job.

pub mod aws;
pub mod memory;
pub mod pipe;
pub mod seal;

use actix::prelude::*;
use protocol::{SealedCommand, SealedEvent, SignedBroadcast};

pub use memory::{MemoryNetwork, MemorySink};
pub use pipe::PipeNetwork;

/// An event from a worker, delivered to a `JobSupervisor` still sealed: the job checks it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkerEvent(pub SealedEvent);

/// One job's use of a transport, for `search.status` and the result: events routed to the
/// job, and what the process saw while the job ran (ghosts, undecodable bodies, the
/// coordinator's SQS requests), which jobs running at the same time share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Events routed to the job.
    pub events: u64,
    /// Messages the job dropped because their tag did not verify (see `nonce_core`'s stats).
    pub forged: u64,
    /// Messages of jobs this process does not run, dropped.
    pub ghosts: u64,
    /// Bodies that did not decode (dead-lettered).
    pub undecodable: u64,
    /// The coordinator's SQS requests.
    pub sqs_requests: u64,
}

impl TransportCounters {
    /// As the API's counts of one job (a daemon's `transport`, an embedded run's
    /// `transport.job`).
    pub fn counts(&self) -> nonce_api::TransportCounts {
        nonce_api::TransportCounts {
            events: self.events,
            forged: Some(self.forged),
            ghosts: self.ghosts,
            undecodable: self.undecodable,
            sqs_requests: Some(self.sqs_requests),
            ..nonce_api::TransportCounts::default()
        }
    }
}

/// Coordinator -> workers, sealed by the supervisor ([`seal::Seal`]).
pub trait Transport: Send + 'static {
    /// Sends to one worker's inbox.
    fn send(&self, inbox: &str, command: SealedCommand);
    /// Sends to every worker (the control topic).
    fn broadcast(&self, broadcast: SignedBroadcast);
    /// The job has ended: what its workers send from now on is not for anyone.
    fn finished(&self) {}
    /// The job's counters, for transports that count (`aws`).
    fn counters(&self) -> Option<TransportCounters> {
        None
    }
}
