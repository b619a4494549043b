//! The other end of the daemon, for `noncectl`: over the Unix socket on the daemon's host
//! (`nonce_api::client::socket`), or over the network ([`remote`], WebSocket with a bearer
//! token) from anywhere. Both are a [`Daemon`]: the same methods, the same typed replies.

pub mod remote;

pub use nonce_api::client::socket::SocketClient;
pub use nonce_api::{CallError, Daemon};
pub use remote::Remote;

use nonce_api::{JobStatus, Method};
use serde_json::Value;
use std::path::PathBuf;

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Its Unix socket.
    Socket(PathBuf),
    /// Its network listener.
    Remote(Remote),
}

/// One connection to `nonced`, either way.
#[derive(Debug)]
pub enum DaemonClient {
    /// Over the socket.
    Socket(SocketClient),
    /// Over a WebSocket.
    Remote(remote::RemoteClient),
}

impl DaemonClient {
    /// Connects to `target`.
    pub async fn connect(target: &Target) -> Result<Self, CallError> {
        Ok(match target {
            Target::Socket(path) => DaemonClient::Socket(SocketClient::connect(path).await?),
            Target::Remote(r) => DaemonClient::Remote(r.connect().await?),
        })
    }
}

impl Daemon for DaemonClient {
    async fn call(&mut self, method: Method, params: Value) -> Result<Value, CallError> {
        match self {
            DaemonClient::Socket(c) => c.call(method, params).await,
            DaemonClient::Remote(c) => c.call(method, params).await,
        }
    }

    async fn next_update(&mut self, job_id: &str) -> Result<JobStatus, CallError> {
        match self {
            DaemonClient::Socket(c) => c.next_update(job_id).await,
            DaemonClient::Remote(c) => c.next_update(job_id).await,
        }
    }
}
