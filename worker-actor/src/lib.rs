//! The worker side of nonce-cloud: the hashing [`kernel`], the multi-threaded shard
//! [`search`] with its progress watermark, and the [`actor`] that runs assignments and
//! reports to the coordinator.

pub mod actor;
pub mod alarm;
pub mod aws;
pub mod bench;
pub mod env_config;
pub mod kernel;
pub mod search;
pub mod stdio;

pub use actor::{EventSink, ExitReason, Inbox, LocalStop, Sealer, Shutdown, WorkerActor, WorkerConfig};
pub use kernel::{Backend, Kernel};
pub use protocol::worker::Delivery;
pub use search::{SearchEvent, Segment, ShardSearch};
