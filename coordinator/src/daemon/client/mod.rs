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

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No daemon could be reached, or the connection broke (socket missing, refused, closed,
    /// unreadable reply).
    #[error("daemon connection: {0}")]
    Unreachable(String),
    /// The daemon would not let us in (a refused token, too many failed attempts).
    #[error("{message}")]
    Refused {
        /// The HTTP status it answered (401, 429).
        status: u16,
        /// In the user's words.
        message: String,
    },
    /// An error reply.
    #[error("daemon: {0}")]
    Rpc(RpcError),
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

    /// A call whose reply is one of the API's types (`nonce_api`).
    pub async fn call_typed<T: serde::de::DeserializeOwned>(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let v = self.call(method, params).await?;
        serde_json::from_value(v)
            .map_err(|e| CallError::Unreachable(format!("{method}: a reply this client cannot read ({e})")))
    }
}
