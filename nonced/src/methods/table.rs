//! The method table: JSON-RPC method names to the daemon's methods, with their typed
//! params (unknown fields refused). Every listener serves this one table.

use super::views::reply;
use super::DaemonMethods;
use crate::rpc::{params, Methods, RpcError, FORBIDDEN, METHOD_NOT_FOUND};
use crate::users::Caller;
use coordinator::actors::CancelById;
use coordinator::request::SearchRequest;
use nonce_api::{JobRef, JobStatus, Method, NoParams, WaitParams, WorkersParams};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The methods bound to a socket path (for `daemon.info`).
#[derive(Debug, Clone)]
pub struct Bound {
    pub methods: Arc<DaemonMethods>,
    pub socket: String,
}

impl Methods for Bound {
    /// A caller's request: counted in the metrics (by method, and by error code if it fails).
    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        method: &'a str,
        p: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
        Box::pin(async move {
            let Some(known) = Method::parse(method) else {
                // Unknown names are one label: a client cannot grow the metrics without bound.
                self.methods.metrics().rpc("other", Some(METHOD_NOT_FOUND));
                return Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")
                    .with_data(json!({ "method": method })));
            };
            self.call_method(caller, known, p).await
        })
    }
}

impl Bound {
    /// A known method's call, counted in the metrics (the network listener, which registers
    /// each method by name, calls this directly).
    pub async fn call_method(&self, caller: &Caller, method: Method, p: Value) -> Result<Value, RpcError> {
        let result = self.dispatch(caller, method, p).await;
        self.methods.metrics().rpc(method.name(), result.as_ref().err().map(|e| e.code));
        result
    }

    /// A job's state at its end or after `timeout`, for a subscription the daemon feeds on
    /// the caller's behalf (not a request: not counted in the metrics).
    pub async fn follow(
        &self,
        caller: &Caller,
        job_id: &str,
        timeout: Duration,
    ) -> Result<JobStatus, RpcError> {
        let m = &self.methods;
        m.wait(m.parse_job(caller, job_id)?, timeout).await
    }

    /// One method, its params typed (unknown fields refused). The `match` is exhaustive: a
    /// method of the API cannot be left unserved.
    async fn dispatch(&self, caller: &Caller, method: Method, p: Value) -> Result<Value, RpcError> {
        let m = &self.methods;
        match method {
            Method::SearchStart => reply(&m.start(caller, params::<SearchRequest>(p)?).await?),
            Method::SearchStatus => {
                reply(&m.status(m.parse_job(caller, &params::<JobRef>(p)?.job_id)?).await?)
            }
            Method::SearchMap => reply(&m.space(m.parse_job(caller, &params::<JobRef>(p)?.job_id)?).await?),
            Method::SearchWait => {
                let w: WaitParams = params(p)?;
                let timeout = w.timeout_s.unwrap_or(30.0);
                if !(timeout.is_finite() && (0.0..=3600.0).contains(&timeout)) {
                    return Err(RpcError::invalid_params("timeout_s must be between 0 and 3600"));
                }
                reply(&m.wait(m.parse_job(caller, &w.job_id)?, Duration::from_secs_f64(timeout)).await?)
            }
            Method::SearchCancel => {
                let job = m.parse_job(caller, &params::<JobRef>(p)?.job_id)?;
                // A job that has ended is not cancelled again: say how it ended instead.
                let ended = m.outcome_of(job);
                if ended.is_none() {
                    // Through the registry: a job whose actor is dying is cancelled in its
                    // next life.
                    let _ = m.coordinator.send(CancelById(job)).await;
                }
                reply(&nonce_api::Cancelling {
                    job_id: job.to_string(),
                    cancelling: ended.is_none(),
                    outcome: ended,
                })
            }
            Method::SearchList => {
                params::<NoParams>(p)?;
                reply(&m.list(caller).await?)
            }
            Method::WorkersList => {
                let w: WorkersParams = params(p)?;
                let only = w.job_id.as_deref().map(|j| m.parse_job(caller, j)).transpose()?;
                reply(&m.workers(caller, only).await?)
            }
            Method::DaemonInfo => {
                params::<NoParams>(p)?;
                if !caller.is_admin() {
                    return Err(RpcError::new(FORBIDDEN, "daemon.info needs the admin role")
                        .with_data(json!({ "user": caller.name })));
                }
                reply(&m.info(&self.socket))
            }
        }
    }
}
