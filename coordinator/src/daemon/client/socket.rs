//! A JSON-RPC client over the daemon's Unix socket: what `noncectl` uses with `--socket`.

use super::CallError;
use crate::daemon::rpc::RpcError;
use serde_json::{json, Value};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// One connection to `nonced`.
#[derive(Debug)]
pub struct RpcClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl RpcClient {
    pub async fn connect(path: &Path) -> Result<Self, CallError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| CallError::Unreachable(format!("cannot connect to {}: {e}", path.display())))?;
        let (r, w) = stream.into_split();
        Ok(RpcClient { reader: BufReader::new(r), writer: w, next_id: 1 })
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut text = json!({ "jsonrpc": "2.0", "method": method, "params": params, "id": id }).to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await.map_err(|e| CallError::Unreachable(e.to_string()))?;
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).await.map_err(|e| CallError::Unreachable(e.to_string()))?;
        if n == 0 {
            return Err(CallError::Unreachable("the daemon closed the connection".into()));
        }
        let reply: Value = serde_json::from_str(&line)
            .map_err(|e| CallError::Unreachable(format!("unreadable reply ({e})")))?;
        if let Some(err) = reply.get("error") {
            return Err(CallError::Rpc(RpcError {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("error").to_string(),
                data: err.get("data").cloned(),
            }));
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }
}
