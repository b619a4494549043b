//! JSON-RPC 2.0 framing and dispatch, per the specification: parse errors, invalid
//! requests, notifications (no reply), batches (an array of replies, none if all were
//! notifications, an error for an empty array). Transport-free: one text in, one text out.
//!
//! Why not jsonrpsee's `RpcModule`: its `raw_json_request` takes a single request and turns
//! malformed text into a Rust error rather than a `-32700` reply, so batches, notifications
//! and the spec's error replies would still be ours to write, over a server-sized dependency
//! tree. The whole protocol is this file.

use super::users::Caller;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;

/// The error codes are the API's (`nonce_api::codes`): one list for the daemon and its clients.
pub use nonce_api::codes::{
    FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, JOB_NOT_FOUND, METHOD_NOT_FOUND, PARSE_ERROR,
    QUOTA_EXCEEDED, UNAVAILABLE,
};

/// Calls in one batch, on every listener (the Unix socket here, the network one through
/// jsonrpsee's batch limit): a longer batch is refused whole rather than run, so one line
/// cannot queue an unbounded amount of work.
pub const MAX_BATCH: u32 = 32;

/// The error object is the API's: the daemon sends what its clients read.
pub use nonce_api::RpcError;

/// The methods behind the protocol.
pub trait Methods: Send + Sync {
    /// Calls `method` with `params` (an array, an object, or `Null` when absent).
    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        method: &'a str,
        params: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>>;
}

fn reply(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "result": r, "id": id }),
        Err(e) => json!({ "jsonrpc": "2.0", "error": e, "id": id }),
    }
}

/// Handles one JSON text from `caller`; returns the reply text, or `None` when nothing must
/// be sent. A batch of more than [`MAX_BATCH`] calls gets one error and none of them runs.
pub async fn handle_text(methods: &dyn Methods, caller: &Caller, text: &str) -> Option<String> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            return Some(reply(Value::Null, Err(RpcError::new(PARSE_ERROR, "Parse error"))).to_string())
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => {
            Some(reply(Value::Null, Err(RpcError::new(INVALID_REQUEST, "Invalid Request"))).to_string())
        }
        Value::Array(items) if items.len() > MAX_BATCH as usize => {
            Some(reply(Value::Null, Err(batch_too_large(items.len()))).to_string())
        }
        Value::Array(items) => {
            let mut replies = Vec::new();
            for item in items {
                if let Some(r) = handle_one(methods, caller, item).await {
                    replies.push(r);
                }
            }
            (!replies.is_empty()).then(|| Value::Array(replies).to_string())
        }
        other => handle_one(methods, caller, other).await.map(|r| r.to_string()),
    }
}

/// The reply to a batch of `n` calls, more than [`MAX_BATCH`].
fn batch_too_large(n: usize) -> RpcError {
    let reason = format!("a batch of {n} calls, over the limit of {MAX_BATCH}");
    RpcError::new(INVALID_REQUEST, format!("Invalid Request: a batch holds at most {MAX_BATCH} calls"))
        .with_data(json!({ "reason": reason, "max_batch": MAX_BATCH }))
}

async fn handle_one(methods: &dyn Methods, caller: &Caller, request: Value) -> Option<Value> {
    let Value::Object(obj) = request else {
        return Some(reply(Value::Null, Err(RpcError::new(INVALID_REQUEST, "Invalid Request"))));
    };
    let id = obj.get("id").cloned();
    let id_ok = matches!(id, None | Some(Value::Null | Value::String(_) | Value::Number(_)));
    let reply_id = if id_ok { id.clone().unwrap_or(Value::Null) } else { Value::Null };
    let (method, params) = match validate(&obj) {
        Some(mp) if id_ok => mp,
        _ => return Some(reply(reply_id, Err(RpcError::new(INVALID_REQUEST, "Invalid Request")))),
    };
    let result = methods.call(caller, method, params).await;
    // A notification (no "id" member) gets no reply, whatever happened.
    id.map(|id| reply(id, result))
}

fn validate(obj: &Map<String, Value>) -> Option<(&str, Value)> {
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return None;
    }
    let method = obj.get("method")?.as_str()?;
    let params = match obj.get("params") {
        None => Value::Null,
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => return None,
    };
    Some((method, params))
}

/// Named parameters as a typed struct; positional ones are taken as `[object]`.
pub fn params<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    let p = match params {
        Value::Null => Value::Object(Map::new()),
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        Value::Array(a) if a.is_empty() => Value::Object(Map::new()),
        other => other,
    };
    serde_json::from_value(p).map_err(|e| RpcError::invalid_params(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Methods for Echo {
        fn call<'a>(
            &'a self,
            _: &'a Caller,
            method: &'a str,
            params: Value,
        ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
            Box::pin(async move {
                match method {
                    "echo" => Ok(params),
                    "fail" => Err(RpcError::invalid_params("no")),
                    _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
                }
            })
        }
    }

    fn run(text: &str) -> Option<Value> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(handle_text(&Echo, &Caller::daemon(), text))
            .map(|t| serde_json::from_str(&t).expect("reply is JSON"))
    }

    fn code(v: &Value) -> i64 {
        v["error"]["code"].as_i64().expect("an error")
    }

    #[test]
    fn the_specification_examples() {
        let r = run(r#"{"jsonrpc":"2.0","method":"echo","params":[42],"id":1}"#).expect("reply");
        assert_eq!(r, json!({"jsonrpc":"2.0","result":[42],"id":1}));
        assert_eq!(run(r#"{"jsonrpc":"2.0","method":"echo","params":[1]}"#), None, "notification");
        let r = run(r#"{"jsonrpc":"2.0","method":"foobar","id":"1"}"#).expect("reply");
        assert_eq!((code(&r), &r["id"]), (METHOD_NOT_FOUND, &json!("1")));
        let r = run(r#"{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]"#).expect("reply");
        assert_eq!((code(&r), &r["id"]), (PARSE_ERROR, &Value::Null));
        let r = run(r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#).expect("reply");
        assert_eq!(code(&r), INVALID_REQUEST);
        let r = run("[]").expect("reply");
        assert_eq!(code(&r), INVALID_REQUEST);
        let r = run("[1]").expect("reply");
        assert_eq!(r.as_array().map(Vec::len), Some(1));
        assert_eq!(code(&r[0]), INVALID_REQUEST);
        let r = run("[1,2,3]").expect("reply");
        assert_eq!(r.as_array().map(Vec::len), Some(3));
        let r = run(
            r#"[{"jsonrpc":"2.0","method":"echo","params":[1],"id":"1"},{"jsonrpc":"2.0","method":"echo","params":[7]},
                {"foo":"boo"},{"jsonrpc":"2.0","method":"foo.get","params":{"name":"x"},"id":"5"}]"#,
        )
        .expect("reply");
        let codes: Vec<Option<i64>> =
            r.as_array().expect("batch").iter().map(|x| x["error"]["code"].as_i64()).collect();
        assert_eq!(codes, vec![None, Some(INVALID_REQUEST), Some(METHOD_NOT_FOUND)]);
        assert_eq!(run(r#"[{"jsonrpc":"2.0","method":"echo"},{"jsonrpc":"2.0","method":"x"}]"#), None);
    }

    #[test]
    fn wrong_types_are_invalid() {
        for bad in [
            r#"{"jsonrpc":"1.0","method":"echo","id":1}"#,
            r#"{"method":"echo","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"echo","params":3,"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"echo","id":{"a":1}}"#,
            r#""just a string""#,
        ] {
            assert_eq!(code(&run(bad).expect("reply")), INVALID_REQUEST, "{bad}");
        }
        assert_eq!(code(&run(r#"{"jsonrpc":"2.0","method":"fail","id":1}"#).expect("reply")), INVALID_PARAMS);
    }
}
