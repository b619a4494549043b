//! The method table: JSON-RPC method names to the daemon's methods, with their typed
//! params (unknown fields refused). Every listener serves this one table.

use super::views::reply;
use super::DaemonMethods;
use crate::actors::CancelJob;
use crate::daemon::rpc::{params, Methods, RpcError, FORBIDDEN, METHOD_NOT_FOUND};
use crate::daemon::users::Caller;
use crate::request::SearchRequest;
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobParam {
    job_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParam {
    job_id: String,
    #[serde(default)]
    timeout_s: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WorkersParam {
    #[serde(default)]
    job_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Every method name [`Bound`] answers: the network listener registers exactly these.
pub const METHOD_NAMES: &[&str] = &[
    "search.start",
    "search.status",
    "search.wait",
    "search.cancel",
    "search.list",
    "search.map",
    "workers.list",
    "daemon.info",
];

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
            let result = self.call_internal(caller, method, p).await;
            // Unknown names are one label: a client cannot grow the metrics without bound.
            let label = if METHOD_NAMES.contains(&method) { method } else { "other" };
            self.methods.metrics().rpc(label, result.as_ref().err().map(|e| e.code));
            result
        })
    }

    fn call_internal<'a>(
        &'a self,
        caller: &'a Caller,
        method: &'a str,
        p: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
        let m = &self.methods;
        Box::pin(async move {
            match method {
                "search.start" => m.start(caller, params::<SearchRequest>(p)?).await,
                "search.status" => {
                    reply(&m.status(m.parse_job(caller, &params::<JobParam>(p)?.job_id)?).await?)
                }
                "search.map" => m.space(m.parse_job(caller, &params::<JobParam>(p)?.job_id)?).await,
                "search.wait" => {
                    let w: WaitParam = params(p)?;
                    let timeout = w.timeout_s.unwrap_or(30.0);
                    if !(timeout.is_finite() && (0.0..=3600.0).contains(&timeout)) {
                        return Err(RpcError::invalid_params("timeout_s must be between 0 and 3600"));
                    }
                    reply(&m.wait(m.parse_job(caller, &w.job_id)?, Duration::from_secs_f64(timeout)).await?)
                }
                "search.cancel" => {
                    let job = m.parse_job(caller, &params::<JobParam>(p)?.job_id)?;
                    // A job that has ended is not cancelled again: say how it ended instead.
                    let ended = m.outcome_of(job);
                    if ended.is_none() {
                        if let Ok(sup) = m.supervisor(job).await {
                            sup.do_send(CancelJob);
                        }
                    }
                    reply(&nonce_api::Cancelling {
                        job_id: job.to_string(),
                        cancelling: ended.is_none(),
                        outcome: ended,
                    })
                }
                "search.list" => {
                    params::<NoParams>(p)?;
                    reply(&m.list(caller).await?)
                }
                "workers.list" => {
                    let w: WorkersParam = params(p)?;
                    let only = w.job_id.as_deref().map(|j| m.parse_job(caller, j)).transpose()?;
                    reply(&m.workers(caller, only).await?)
                }
                "daemon.info" => {
                    params::<NoParams>(p)?;
                    if !caller.is_admin() {
                        return Err(RpcError::new(FORBIDDEN, "daemon.info needs the admin role")
                            .with_data(json!({ "user": caller.name })));
                    }
                    reply(&m.info(&self.socket))
                }
                other => {
                    Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")
                        .with_data(json!({ "method": other })))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    /// The network listener registers exactly `METHOD_NAMES`: a method dispatched here but
    /// missing there would answer "Method not found" over HTTP only.
    #[test]
    fn method_names_list_every_dispatched_method() {
        let source = include_str!("table.rs");
        let body = &source[source.find("match method {").expect("the dispatch")..];
        let body = &body[..body.find("other =>").expect("the fallback arm")];
        let mut dispatched: Vec<&str> = body
            .lines()
            .filter_map(|l| {
                l.trim().strip_prefix('"').and_then(|r| r.split_once("\" =>")).map(|(name, _)| name)
            })
            .collect();
        dispatched.sort_unstable();
        let mut named = super::METHOD_NAMES.to_vec();
        named.sort_unstable();
        assert_eq!(dispatched, named);
    }
}
