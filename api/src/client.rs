//! The client side of the contract: one trait, [`Daemon`], for every way of reaching `nonced`
//! (the Unix socket here, [`socket`]; the network in `noncectl`), with each method's typed
//! call on top of one `call`. A program written against the trait runs over either.

#[cfg(feature = "socket")]
pub mod socket;

use crate::rpc::{JobRef, Method, NoParams, RpcError, WaitParams, WorkersParams};
use crate::{Cancelling, DaemonInfo, JobStatus, JobSummary, Started, WorkerView};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No daemon could be reached, or the connection broke (socket missing, refused, closed,
    /// unreadable reply).
    Unreachable(String),
    /// The daemon would not let us in (a refused token, too many failed attempts).
    Refused {
        /// The HTTP status it answered (401, 429).
        status: u16,
        /// In the user's words.
        message: String,
    },
    /// An error reply.
    Rpc(RpcError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "daemon connection: {why}"),
            CallError::Refused { message, .. } => f.write_str(message),
            CallError::Rpc(e) => write!(f, "daemon: {e}"),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

/// Params as the JSON a call sends (our own types: serializing them cannot fail).
fn params<P: Serialize>(p: &P) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// A connection to `nonced`. Implementors give [`Daemon::call`]; every method's typed call
/// comes with it.
pub trait Daemon: Send {
    /// One call: `params` as JSON, the reply's `result` as JSON.
    fn call(
        &mut self,
        method: Method,
        params: Value,
    ) -> impl Future<Output = Result<Value, CallError>> + Send;

    /// The next state of running job `job_id`, soon (a quarter second) or when it ends. Over
    /// the socket a short `search.wait`; a connection that can be pushed to overrides it.
    fn next_update(&mut self, job_id: &str) -> impl Future<Output = Result<JobStatus, CallError>> + Send {
        self.wait(job_id, 0.25)
    }

    /// A call whose reply is one of the API's types.
    fn call_typed<R: DeserializeOwned>(
        &mut self,
        method: Method,
        params: Value,
    ) -> impl Future<Output = Result<R, CallError>> + Send {
        async move {
            let v = self.call(method, params).await?;
            serde_json::from_value(v).map_err(|e| {
                CallError::Unreachable(format!("{method}: a reply this client cannot read ({e})"))
            })
        }
    }

    /// `search.start`: `request` is the search as `noncectl search`'s flags say it.
    fn start<R: Serialize>(
        &mut self,
        request: &R,
    ) -> impl Future<Output = Result<Started, CallError>> + Send {
        let p = params(request);
        self.call_typed(Method::SearchStart, p)
    }

    /// `search.status`.
    fn status(&mut self, job_id: &str) -> impl Future<Output = Result<JobStatus, CallError>> + Send {
        let p = params(&JobRef { job_id: job_id.to_string() });
        self.call_typed(Method::SearchStatus, p)
    }

    /// `search.wait`, up to `timeout_s` seconds.
    fn wait(
        &mut self,
        job_id: &str,
        timeout_s: f64,
    ) -> impl Future<Output = Result<JobStatus, CallError>> + Send {
        let p = params(&WaitParams { job_id: job_id.to_string(), timeout_s: Some(timeout_s) });
        self.call_typed(Method::SearchWait, p)
    }

    /// `search.cancel`.
    fn cancel(&mut self, job_id: &str) -> impl Future<Output = Result<Cancelling, CallError>> + Send {
        let p = params(&JobRef { job_id: job_id.to_string() });
        self.call_typed(Method::SearchCancel, p)
    }

    /// `search.list`.
    fn list(&mut self) -> impl Future<Output = Result<Vec<JobSummary>, CallError>> + Send {
        self.call_typed(Method::SearchList, params(&NoParams {}))
    }

    /// `workers.list`, of one job or of all the caller may see.
    fn workers(
        &mut self,
        job_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<WorkerView>, CallError>> + Send {
        let p = params(&WorkersParams { job_id: job_id.map(str::to_string) });
        self.call_typed(Method::WorkersList, p)
    }

    /// `daemon.info` (admins).
    fn info(&mut self) -> impl Future<Output = Result<DaemonInfo, CallError>> + Send {
        self.call_typed(Method::DaemonInfo, params(&NoParams {}))
    }
}
