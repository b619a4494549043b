//! [`Daemon`] over the daemon's Unix socket: one JSON-RPC text a line each way.
//!
//! Cancel-safe, so a caller may drop a call in a `select!` (Ctrl-C during `search.wait`) and
//! go on with the same connection: a reply is matched to its call by id and the replies of
//! abandoned calls are skipped; a partly read line is kept for the next read; a call dropped
//! while its request was half written closes the connection, and the next call opens a new one.

use super::{CallError, Daemon};
use crate::rpc::{Method, RpcError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// The longest reply line read (a `search.list` of thousands of jobs is a few MiB).
const MAX_REPLY: usize = 64 << 20;

/// One connection to `nonced` over its socket.
#[derive(Debug)]
pub struct SocketClient {
    path: PathBuf,
    conn: Option<Connection>,
    next_id: u64,
}

#[derive(Debug)]
struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The bytes of a reply line read so far.
    partial: Vec<u8>,
}

impl Connection {
    async fn open(path: &Path) -> Result<Connection, CallError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| CallError::Unreachable(format!("cannot connect to {}: {e}", path.display())))?;
        let (r, w) = stream.into_split();
        Ok(Connection { reader: BufReader::new(r), writer: w, partial: Vec::new() })
    }

    /// The next whole line.
    async fn line(&mut self) -> Result<Vec<u8>, CallError> {
        loop {
            let n = (&mut self.reader)
                .take((MAX_REPLY + 1 - self.partial.len()) as u64)
                .read_until(b'\n', &mut self.partial)
                .await
                .map_err(|e| CallError::Unreachable(e.to_string()))?;
            if self.partial.ends_with(b"\n") {
                return Ok(std::mem::take(&mut self.partial));
            }
            if self.partial.len() > MAX_REPLY {
                return Err(CallError::Unreachable(format!("a reply longer than {MAX_REPLY} bytes")));
            }
            if n == 0 {
                return Err(CallError::Unreachable("the daemon closed the connection".into()));
            }
        }
    }
}

impl SocketClient {
    /// Connects to the daemon at `path`.
    pub async fn connect(path: &Path) -> Result<Self, CallError> {
        let conn = Connection::open(path).await?;
        Ok(SocketClient { path: path.to_path_buf(), conn: Some(conn), next_id: 1 })
    }

    async fn exchange(&mut self, method: Method, params: Value) -> Result<Value, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut text =
            json!({ "jsonrpc": "2.0", "method": method.name(), "params": params, "id": id }).to_string();
        text.push('\n');
        // Out of `self` while it is written: dropped half-written, it is not used again.
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => Connection::open(&self.path).await?,
        };
        conn.writer.write_all(text.as_bytes()).await.map_err(|e| CallError::Unreachable(e.to_string()))?;
        let conn = self.conn.insert(conn);
        loop {
            let line = match conn.line().await {
                Ok(l) => l,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            };
            let reply: Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => {
                    self.conn = None;
                    return Err(CallError::Unreachable(format!("unreadable reply ({e})")));
                }
            };
            // The reply to a call given up on (its future dropped): not ours.
            if reply.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(err) = reply.get("error") {
                let e: RpcError = serde_json::from_value(err.clone())
                    .map_err(|e| CallError::Unreachable(format!("unreadable error reply ({e})")))?;
                return Err(CallError::Rpc(e));
            }
            return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
        }
    }
}

impl Daemon for SocketClient {
    fn call(
        &mut self,
        method: Method,
        params: Value,
    ) -> impl std::future::Future<Output = Result<Value, CallError>> + Send {
        self.exchange(method, params)
    }
}
