//! The worker side of nonce-cloud: the multi-threaded shard
//! [`search`] with its progress watermark, and the [`actor`] that runs assignments and
//! reports to the coordinator. The hashing itself is `nonce_kernel`'s.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actor;
pub mod alarm;
pub mod aws;
pub mod env_config;
pub mod search;
pub mod stdio;

pub use actor::{EventSink, ExitReason, Inbox, LocalStop, Sealer, Shutdown, WorkerActor, WorkerConfig};
pub use protocol::worker::Delivery;
pub use search::{SearchEvent, Segment, ShardSearch};
