//! [`Daemon`] over the daemon's Unix socket: one JSON-RPC text a line each way.
//!
//! Cancel-safe, so a caller may drop a call in a `select!` (Ctrl-C during `search.wait`) and
//! go on: the daemon answers a connection's calls one after another, so a call given up on
//! before its reply came (or while its request was half written) leaves its connection
//! behind, and the next call opens a new one rather than wait behind an abandoned hour-long
//! `search.wait`. A reply must carry its call's id (or `null`, for a request the daemon
//! could not read); anything else means the two sides disagree, and the connection is closed.

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
    /// A call was sent and its reply not read: the call was given up on.
    awaiting: bool,
}

impl Connection {
    async fn open(path: &Path) -> Result<Connection, CallError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| CallError::Unreachable(format!("cannot connect to {}: {e}", path.display())))?;
        let (r, w) = stream.into_split();
        Ok(Connection { reader: BufReader::new(r), writer: w, partial: Vec::new(), awaiting: false })
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
            Some(c) if !c.awaiting => c,
            _ => Connection::open(&self.path).await?,
        };
        conn.writer.write_all(text.as_bytes()).await.map_err(|e| CallError::Unreachable(e.to_string()))?;
        let conn = self.conn.insert(conn);
        conn.awaiting = true;
        let answer = Self::reply(conn, id).await;
        if let Err(CallError::Unreachable(_)) = answer {
            self.conn = None;
        }
        answer
    }

    /// The reply to call `id`, the next line on `conn`; `conn` is free for the next call only
    /// if the reply named its call.
    async fn reply(conn: &mut Connection, id: u64) -> Result<Value, CallError> {
        let line = conn.line().await?;
        let reply: Value = serde_json::from_slice(&line)
            .map_err(|e| CallError::Unreachable(format!("unreadable reply ({e})")))?;
        let ours = match reply.get("id") {
            Some(Value::Number(n)) if n.as_u64() == Some(id) || n.as_f64() == Some(id as f64) => {
                conn.awaiting = false;
                true
            }
            // The daemon could not read the request, so it could not name it: an error is
            // ours, and the connection is not used again (the daemon may be closing it).
            Some(Value::Null) => reply.get("error").is_some(),
            _ => false,
        };
        if !ours {
            return Err(CallError::Unreachable(format!(
                "a reply to another call (id {}) where call {id}'s was due",
                reply.get("id").map(Value::to_string).unwrap_or_else(|| "missing".into())
            )));
        }
        if let Some(err) = reply.get("error") {
            let e: RpcError = serde_json::from_value(err.clone())
                .map_err(|e| CallError::Unreachable(format!("unreadable error reply ({e})")))?;
            return Err(CallError::Rpc(e));
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
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
