//! The daemon's method table as a jsonrpsee module: the same [`Methods`] the Unix socket
//! serves, called with the caller the gate authenticated, plus `search.subscribe`, which
//! streams a job's progress over a WebSocket until it ends (so remote clients need not poll).

use crate::methods::Bound;
use crate::rpc::RpcError;
use crate::users::Caller;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Extensions, RpcModule};
use nonce_api::{JobRef, JobStatus, Method};
use serde_json::{json, Value};
use std::sync::Arc;

/// How long each `search.wait` inside a subscription waits: the notification period.
const NOTIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The method table every network connection shares.
#[derive(Clone)]
pub struct Table(pub Arc<Bound>);

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Table")
    }
}

fn to_error(e: RpcError) -> ErrorObjectOwned {
    let code = i32::try_from(e.code).unwrap_or(crate::rpc::INTERNAL_ERROR as i32);
    ErrorObjectOwned::owned(code, e.message, e.data)
}

const STALE_SESSION: &str =
    "the daemon's users were reloaded since this connection authenticated: connect again";

/// The caller the gate put on the request, if the users were not reloaded since it was
/// authenticated (see `users::Session`); none means a bug, and nothing is allowed.
fn caller_of(ext: &Extensions) -> Result<Caller, ErrorObjectOwned> {
    if ext.get::<crate::users::Session>().is_none_or(|s| !s.current()) {
        return Err(ErrorObjectOwned::owned(crate::rpc::FORBIDDEN as i32, STALE_SESSION, None::<()>));
    }
    ext.get::<Caller>().cloned().ok_or_else(|| ErrorObjectOwned::owned(-32603, "no caller", None::<()>))
}

fn params_value(p: &jsonrpsee::types::Params<'_>) -> Result<Value, ErrorObjectOwned> {
    match p.as_str() {
        None => Ok(Value::Null),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| to_error(RpcError::invalid_params(e.to_string())))
        }
    }
}

/// Builds the module: one entry per method of the table, and the subscription.
pub fn module(table: Table) -> Result<RpcModule<Table>, String> {
    let mut m = RpcModule::new(table);
    for method in Method::ALL {
        let name = method.name();
        m.register_async_method(name, move |params, table, ext| async move {
            let caller = caller_of(&ext)?;
            let p = params_value(&params)?;
            table.0.call_method(&caller, method, p).await.map_err(to_error)
        })
        .map_err(|e| format!("cannot register {name}: {e}"))?;
    }
    m.register_subscription(
        "search.subscribe",
        "search.progress",
        "search.unsubscribe",
        |params, pending, table, ext| async move {
            let caller = match caller_of(&ext) {
                Ok(c) => c,
                Err(e) => {
                    pending.reject(e).await;
                    return;
                }
            };
            let job_id = match params_value(&params)
                .and_then(|v| crate::rpc::params::<JobRef>(v).map(|r| r.job_id).map_err(to_error))
            {
                Ok(j) => j,
                Err(e) => {
                    pending.reject(e).await;
                    return;
                }
            };
            // The same visibility as every other method: another user's job is "not found".
            if let Err(e) = table.0.follow(&caller, &job_id, std::time::Duration::ZERO).await {
                pending.reject(to_error(e)).await;
                return;
            }
            let Ok(sink) = pending.accept().await else { return };
            loop {
                // A SIGHUP that revoked the token (or demoted its user) ends the stream too.
                if caller_of(&ext).is_err() {
                    let e = RpcError::new(crate::rpc::FORBIDDEN, STALE_SESSION);
                    if let Ok(raw) = serde_json::value::to_raw_value(&json!({ "finished": true, "error": e }))
                    {
                        let _ = sink.send(raw).await;
                    }
                    return;
                }
                let (value, last) = match table.0.follow(&caller, &job_id, NOTIFY_EVERY).await {
                    Ok(st) => {
                        let last = matches!(st, JobStatus::Finished(_));
                        (serde_json::to_value(&st).unwrap_or(Value::Null), last)
                    }
                    Err(e) => (json!({ "finished": true, "error": e }), true),
                };
                let Ok(raw) = serde_json::value::to_raw_value(&value) else { return };
                if sink.send(raw).await.is_err() || last {
                    return;
                }
            }
        },
    )
    .map_err(|e| format!("cannot register search.subscribe: {e}"))?;
    Ok(m)
}
