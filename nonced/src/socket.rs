//! The control socket: a Unix listener, one task per connection, one JSON text per line.

use super::connections::Connections;
use super::rpc::{handle_text, Methods, INVALID_REQUEST, UNAVAILABLE};
use super::users::LiveUsers;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Longest request line accepted; a longer one gets an error and the connection is closed.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a reply may take to be taken in by its client: a local client that stops
/// reading (a reply bigger than the socket's buffer) would otherwise hold its connection, and
/// one of the [`MAX_CONNECTIONS`], forever.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections one local user (uid) may hold at once: one user's tool gone wrong (or one
/// user's ill will) cannot take more than half the slots of [`MAX_CONNECTIONS`] from the
/// others. Half, not fewer: a client's closed connection holds its slot until the daemon
/// reads the close, so fifty clients of one user making quick calls in turn held over 64 at
/// moments (64 refused some of them in `fifty_concurrent_clients_are_served`).
pub const MAX_CONNECTIONS_PER_USER: usize = MAX_CONNECTIONS / 2;

/// Once a request's first byte has come, the rest of its line must come within this: a
/// client that sends half a request and stops does not hold its connection forever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The connections each uid holds; a [`UidSlot`] is one of them.
#[derive(Debug, Default)]
struct PerUser(std::sync::Mutex<std::collections::HashMap<u32, usize>>);

/// One connection of a uid, given back when dropped.
struct UidSlot(Arc<PerUser>, u32);

impl PerUser {
    fn take(self: &Arc<Self>, uid: u32) -> Option<UidSlot> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(uid).or_default();
        if *n >= MAX_CONNECTIONS_PER_USER {
            return None;
        }
        *n += 1;
        Some(UidSlot(Arc::clone(self), uid))
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut held = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// Binds `path` with mode 0600 (0660 and group `group` when given), never world-accessible
/// even for an instant: the socket is made in a private directory beside `path`, its mode set
/// there, then renamed into place. A stale socket (nobody answering) is replaced; a live one
/// means another daemon runs, and is an error.
pub async fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!("another daemon is serving {}", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let private = dir.join(format!(".nonced-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private).map_err(|e| format!("cannot create {}: {e}", private.display()))?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    let tmp: PathBuf = private.join("sock");
    let result = (|| {
        let listener = UnixListener::bind(&tmp).map_err(|e| format!("cannot bind {}: {e}", tmp.display()))?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
        if let Some(g) = group {
            let gid = group_id(g)?;
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(|e| format!("cannot give the socket to {g}: {e}"))?;
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot move the socket to {}: {e}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Looks a group up in /etc/group (no libc call needed).
fn group_id(name: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string("/etc/group").map_err(|e| format!("cannot read /etc/group: {e}"))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(n, _)| *n == name)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| format!("no group named {name:?}"))
}

/// How long a call in flight at shutdown may take to finish before it is answered "shutting
/// down": a `search.start` or `search.status` takes milliseconds; a `search.wait` may wait an
/// hour and must not hold the daemon up.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Accepts connections until `shutdown` says stop (or the listener fails), then waits for
/// every connection to finish (mini-redis's listener/handler/shutdown split): a call in flight
/// gets its answer (or, after [`SHUTDOWN_GRACE`], an error saying the daemon is stopping),
/// never a connection cut mid-reply. Each connection acts as the user its peer's uid maps to
/// (the kernel's SO_PEERCRED: nothing the client says).
pub async fn serve(
    listener: UnixListener,
    methods: Arc<dyn Methods>,
    users: Arc<LiveUsers>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_user = Arc::new(PerUser::default());
    let mut open = Connections::default();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.ok(),
            _ = shutdown.wait_for(|&stop| stop) => None,
        };
        let Some(permit) = permit else { break };
        let accepted = tokio::select! {
            a = listener.accept() => Some((permit, a)),
            _ = shutdown.wait_for(|&stop| stop) => None,
        };
        let Some((permit, accepted)) = accepted else { break };
        match accepted {
            Ok((stream, _)) => {
                let methods = Arc::clone(&methods);
                let (caller, uid) = match stream.peer_cred() {
                    Ok(cred) => (users.by_uid(cred.uid()), cred.uid()),
                    Err(e) => {
                        tracing::warn!(error = %e, "no peer credentials: connection refused");
                        continue;
                    }
                };
                let Some(slot) = per_user.take(uid) else {
                    tracing::warn!(uid, "a user's connection over the limit: refused");
                    open.spawn(refuse(stream));
                    continue;
                };
                let stop = shutdown.clone();
                // Every event of this connection names its caller (as it was when it came).
                let span = tracing::info_span!("connection", listener = "socket", user = %caller.name);
                let users = Arc::clone(&users);
                open.spawn(
                    async move {
                        connection(stream, methods, (users, uid), stop).await;
                        drop((permit, slot));
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    // A call in flight has SHUTDOWN_GRACE to finish, then its "shutting down" answer a
    // second to be written; a connection still open after that is not reading: it is cut.
    let cut = open.close(SHUTDOWN_GRACE + std::time::Duration::from_secs(1)).await;
    if cut > 0 {
        tracing::warn!(connections = cut, "socket connections not reading their replies: closed");
    }
}

/// Writes `bytes` unless the client takes longer than [`WRITE_TIMEOUT`]; false: give up on
/// the connection.
async fn write(w: &mut tokio::net::unix::OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(tokio::time::timeout(WRITE_TIMEOUT, w.write_all(bytes)).await, Ok(Ok(())))
}

/// Tells a connection over its user's limit why it is closed, and closes it.
async fn refuse(stream: UnixStream) {
    let (_, mut w) = stream.into_split();
    let err = json!({"jsonrpc": "2.0", "id": null,
        "error": {"code": UNAVAILABLE, "message": "too many connections",
                  "data": {"reason": format!("this user holds {MAX_CONNECTIONS_PER_USER} connections already")}}});
    write(&mut w, format!("{err}\n").as_bytes()).await;
}

async fn connection(
    stream: UnixStream,
    methods: Arc<dyn Methods>,
    (users, uid): (Arc<LiveUsers>, u32),
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Between requests a connection may idle as long as it likes (a tool holding it
        // open); once a request has begun, it must be whole within REQUEST_TIMEOUT.
        tokio::select! {
            begun = reader.fill_buf() => if begun.is_err() {
                return;
            },
            // Between requests: nothing is lost by closing now.
            _ = shutdown.wait_for(|&stop| stop) => return,
        };
        let mut limited = (&mut reader).take(MAX_REQUEST_BYTES as u64 + 1);
        let n = tokio::select! {
            n = tokio::time::timeout(REQUEST_TIMEOUT, limited.read_until(b'\n', &mut line)) => match n {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!("a request not finished within {REQUEST_TIMEOUT:?}: connection closed");
                    return;
                }
            },
            _ = shutdown.wait_for(|&stop| stop) => return,
        };
        if n == 0 {
            return; // the client hung up
        }
        if line.len() > MAX_REQUEST_BYTES {
            let err = json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": INVALID_REQUEST, "message": "Invalid Request",
                          "data": {"reason": format!("request exceeds {MAX_REQUEST_BYTES} bytes")}}});
            write(&mut w, format!("{err}\n").as_bytes()).await;
            return; // cannot find the next request's start reliably: close
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        // Who the uid is, asked at each request: after a SIGHUP that demoted or removed a
        // user, an open connection acts as what the new users say.
        let caller = users.by_uid(uid);
        let call = handle_text(methods.as_ref(), &caller, text.trim());
        tokio::pin!(call);
        let stopping = async {
            let _ = shutdown.wait_for(|&stop| stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let reply = tokio::select! {
            reply = &mut call => reply,
            _ = stopping => {
                // The call outlived the grace: answer it (its id is in the text), then close.
                let id = serde_json::from_str::<serde_json::Value>(text.trim())
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .unwrap_or(serde_json::Value::Null);
                let err = json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": UNAVAILABLE, "message": "the daemon is shutting down"}});
                write(&mut w, format!("{err}\n").as_bytes()).await;
                return;
            }
        };
        if let Some(mut reply) = reply {
            reply.push('\n');
            if !write(&mut w, reply.as_bytes()).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rpc::{RpcError, MAX_BATCH};
    use super::super::users::{Caller, Users};
    use super::*;
    use serde_json::Value;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LIMIT: usize = MAX_BATCH as usize;

    /// Echoes its params and counts the calls it ran.
    #[derive(Default)]
    struct Counting(AtomicUsize);
    impl Methods for Counting {
        fn call<'a>(
            &'a self,
            _: &'a Caller,
            _: &'a str,
            params: Value,
        ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(params) })
        }
    }

    /// Sends one batch of `n` calls on `stream`; returns the reply.
    async fn batch(stream: &mut BufReader<UnixStream>, n: usize) -> Value {
        let calls: Vec<Value> =
            (0..n).map(|i| json!({"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i})).collect();
        stream.get_mut().write_all(format!("{}\n", Value::Array(calls)).as_bytes()).await.expect("send");
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("reply");
        serde_json::from_str(&line).expect("the reply is JSON")
    }

    /// A daemon socket named for `name` served with `methods`: its directory, its path, the
    /// sender that stops it, and the serving task.
    async fn serving(
        name: &str,
        methods: Arc<dyn Methods>,
    ) -> (PathBuf, PathBuf, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("nonced-socket-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nonced.sock");
        let listener = bind(&path, None).await.expect("binds");
        let users = Arc::new(LiveUsers::new(Users::new(&[], super::super::users::own_uid()).expect("users")));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, methods, users, stopped));
        (dir, path, stop, task)
    }

    #[tokio::test]
    async fn a_batch_over_the_network_listeners_limit_is_refused_whole() {
        let methods = Arc::new(Counting::default());
        let (dir, path, _stop, serving) = serving("batch", Arc::clone(&methods) as Arc<dyn Methods>).await;
        let mut stream = BufReader::new(UnixStream::connect(&path).await.expect("connects"));

        let reply = batch(&mut stream, LIMIT).await;
        assert_eq!(reply.as_array().map(Vec::len), Some(LIMIT), "a batch at the limit is answered");
        assert_eq!(methods.0.load(Ordering::SeqCst), LIMIT);

        for n in [LIMIT + 1, 1000] {
            let reply = batch(&mut stream, n).await;
            assert_eq!(reply["error"]["code"], json!(INVALID_REQUEST), "{n} calls: {reply}");
            assert_eq!(reply["id"], Value::Null);
            let message = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(&LIMIT.to_string()), "the message says the limit: {message}");
            assert_eq!(methods.0.load(Ordering::SeqCst), LIMIT, "none of the {n} calls ran");
        }
        serving.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Sleeps as many milliseconds as its params say, then answers them.
    struct Slow;
    impl Methods for Slow {
        fn call<'a>(
            &'a self,
            _: &'a Caller,
            _: &'a str,
            params: Value,
        ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
            Box::pin(async move {
                let ms = params[0].as_u64().unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(params)
            })
        }
    }

    async fn send(stream: &mut BufReader<UnixStream>, id: u64, ms: u64) {
        let call = json!({"jsonrpc": "2.0", "method": "sleep", "params": [ms], "id": id});
        stream.get_mut().write_all(format!("{call}\n").as_bytes()).await.expect("send");
    }

    async fn reply(stream: &mut BufReader<UnixStream>) -> Value {
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("reply");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Shutdown waits for the calls in flight: a short one is answered, one that would outlive
    /// the grace is told the daemon is stopping, and only then does `serve` return.
    #[tokio::test]
    async fn shutdown_answers_the_calls_in_flight_then_returns() {
        let (dir, path, stop, serving) = serving("shutdown", Arc::new(Slow)).await;
        let mut short = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        let mut long = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        let mut idle = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        send(&mut short, 1, 300).await;
        send(&mut long, 2, 3_600_000).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let t = std::time::Instant::now();
        stop.send(true).expect("serving");

        let r = reply(&mut short).await;
        assert_eq!((r["id"].clone(), r["result"].clone()), (json!(1), json!([300])), "answered: {r}");
        let r = reply(&mut long).await;
        assert_eq!(r["id"], json!(2), "{r}");
        assert_eq!(r["error"]["code"], json!(UNAVAILABLE), "told, not cut: {r}");
        let waited = t.elapsed();
        assert!(waited >= SHUTDOWN_GRACE && waited < SHUTDOWN_GRACE * 3, "{waited:?}");
        let mut rest = String::new();
        assert_eq!(idle.read_line(&mut rest).await.expect("eof"), 0, "an idle connection is closed");
        tokio::time::timeout(std::time::Duration::from_secs(2), serving)
            .await
            .expect("serve returns once its connections ended")
            .expect("no panic");
        assert!(UnixStream::connect(&path).await.is_err(), "no new connections");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A client that sends a call and never reads its (large) reply cannot hold the daemon's
    /// exit: the write is cut once the grace is over.
    #[tokio::test]
    async fn a_client_that_never_reads_its_reply_does_not_hold_shutdown() {
        let (dir, path, stop, serving) = serving("stuck", Arc::new(Counting::default())).await;
        let mut stuck = UnixStream::connect(&path).await.expect("connects");
        // Its echo is far more than a socket buffer holds.
        let big = "x".repeat(MAX_REQUEST_BYTES - 100);
        let call = json!({"jsonrpc": "2.0", "method": "echo", "params": [big], "id": 1});
        stuck.write_all(format!("{call}\n").as_bytes()).await.expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stop.send(true).expect("serving");
        tokio::time::timeout(SHUTDOWN_GRACE * 3, serving)
            .await
            .expect("serve returns although a client never read its reply")
            .expect("no panic");
        drop(stuck);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn one_user_cannot_hold_every_connection_nor_one_with_half_a_request() {
        let methods = Arc::new(Counting::default());
        let (dir, path, _stop, _serving) =
            serving("per-user", Arc::clone(&methods) as Arc<dyn Methods>).await;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS_PER_USER {
            let mut s = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
            // Each one answered, so each holds a slot (not only queued for accept).
            assert!(batch(&mut s, 1).await.is_array());
            held.push(s);
        }
        // Half a request on the last: it holds its slot for now.
        held.last_mut().expect("one").get_mut().write_all(b"{\"jsonrpc\": ").await.expect("send");
        let mut over = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        let mut line = String::new();
        let refused =
            tokio::time::timeout(std::time::Duration::from_secs(5), over.read_line(&mut line)).await;
        assert!(refused.is_ok(), "the connection over the limit is answered at once");
        assert!(line.contains("too many connections"), "{line}");
        // One given back: a new connection is served.
        held.remove(0);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut next = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        assert!(batch(&mut next, 1).await.is_array(), "a slot given back is used again");
        // The half request is cut after REQUEST_TIMEOUT (paused time would stop the daemon's
        // own clock too: waited for really, a little over the limit).
        let half = held.last_mut().expect("one");
        let mut rest = String::new();
        let cut = tokio::time::timeout(
            REQUEST_TIMEOUT + std::time::Duration::from_secs(5),
            half.read_line(&mut rest),
        )
        .await;
        assert!(matches!(cut, Ok(Ok(0))), "half a request closes its connection: {cut:?} {rest:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Answers the caller's role.
    struct Whoami;
    impl Methods for Whoami {
        fn call<'a>(
            &'a self,
            caller: &'a Caller,
            _: &'a str,
            _: Value,
        ) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>> {
            Box::pin(async move { Ok(json!(format!("{}:{:?}", caller.name, caller.role))) })
        }
    }

    async fn ask(s: &mut BufReader<UnixStream>) -> Value {
        s.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"who\",\"id\":1}\n").await.expect("send");
        let mut line = String::new();
        s.read_line(&mut line).await.expect("reply");
        serde_json::from_str::<Value>(&line).expect("JSON")["result"].clone()
    }

    #[tokio::test]
    async fn an_open_connection_acts_as_what_the_users_say_now() {
        use super::super::users::{Role, UserEntry};
        let me = super::super::users::own_uid();
        let alice =
            |role| UserEntry { name: "alice".into(), role, token_sha256: None, uid: Some(me), quotas: None };
        let dir = std::env::temp_dir().join(format!("nonced-socket-whoami-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nonced.sock");
        let listener = bind(&path, None).await.expect("binds");
        let users = Arc::new(LiveUsers::new(Users::new(&[alice(Role::Admin)], me).expect("users")));
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let _serving = tokio::spawn(serve(listener, Arc::new(Whoami), Arc::clone(&users), stopped));
        let mut stream = BufReader::new(UnixStream::connect(&path).await.expect("connects"));
        assert_eq!(ask(&mut stream).await, json!("alice:Admin"));
        // A SIGHUP's reload demotes alice: the same connection's next call is a user's.
        users.replace(Users::new(&[alice(Role::User)], me).expect("users"));
        assert_eq!(ask(&mut stream).await, json!("alice:User"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
