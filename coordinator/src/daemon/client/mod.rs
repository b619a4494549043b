//! The other end of the daemon, for `noncectl`: over the Unix socket ([`socket`]) on the
//! daemon's host, or over the network ([`remote`], WebSocket with a bearer token) from
//! anywhere. Both answer the same methods with the same results.

pub mod remote;
pub mod socket;

pub use remote::Remote;
pub use socket::RpcClient;

use super::rpc::RpcError;
use serde_json::Value;
use std::path::PathBuf;

/// Why a call failed: the connection, or an error reply.
#[derive(Debug)]
pub enum CallError {
    Io(String),
    Rpc(RpcError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "daemon connection: {e}"),
            CallError::Rpc(e) => write!(f, "daemon: {e}"),
        }
    }
}

/// Where the daemon is.
#[derive(Debug, Clone)]
pub enum Target {
    Socket(PathBuf),
    Remote(Remote),
}

/// One connection to `nonced`, either way.
#[derive(Debug)]
pub enum DaemonClient {
    Socket(RpcClient),
    Remote(remote::RemoteClient),
}

impl DaemonClient {
    pub async fn connect(target: &Target) -> Result<Self, CallError> {
        Ok(match target {
            Target::Socket(path) => DaemonClient::Socket(RpcClient::connect(path).await?),
            Target::Remote(r) => DaemonClient::Remote(r.connect().await?),
        })
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, CallError> {
        match self {
            DaemonClient::Socket(c) => c.call(method, params).await,
            DaemonClient::Remote(c) => c.call(method, params).await,
        }
    }
}
