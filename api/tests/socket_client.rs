//! The socket client against a real Unix socket whose server answers late: a call given up on
//! (its future dropped, as Ctrl-C in `select!` does) must not leave its reply to be read as the
//! next call's, and a reply must be matched to its call by id.

use nonce_api::client::socket::SocketClient;
use nonce_api::{CallError, Daemon, Method};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// A server that answers each request with `{"method": <its method>}` after `delay`, its
/// reply split in two writes to test reading a line in parts.
async fn serve(listener: UnixListener, delay: Duration) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let req: Value = serde_json::from_str(&line).expect("JSON");
                tokio::time::sleep(delay).await;
                let reply =
                    json!({ "jsonrpc": "2.0", "result": { "method": req["method"] }, "id": req["id"] })
                        .to_string();
                let (a, b) = reply.split_at(reply.len() / 2);
                let _ = w.write_all(a.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = w.write_all(b.as_bytes()).await;
                if w.write_all(b"\n").await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A fresh directory named for `name`, with the path of a socket in it.
fn socket_in(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("nonce-api-socket-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("d.sock");
    (dir, path)
}

#[tokio::test]
async fn a_dropped_call_does_not_answer_the_next_one() {
    let (dir, path) = socket_in("late");
    let listener = UnixListener::bind(&path).expect("bind");
    tokio::spawn(serve(listener, Duration::from_millis(200)));
    let mut client = SocketClient::connect(&path).await.expect("connects");
    // Given up on before its reply comes (and again mid-line, after the first half).
    for wait in [50, 210] {
        let dropped =
            tokio::time::timeout(Duration::from_millis(wait), client.call(Method::SearchWait, json!({})));
        assert!(dropped.await.is_err(), "the server answers after 200 ms");
    }
    let v = client.call(Method::SearchList, json!({})).await.expect("its own reply");
    assert_eq!(v, json!({ "method": "search.list" }));
    let v = client.call(Method::DaemonInfo, json!({})).await.expect("its own reply");
    assert_eq!(v, json!({ "method": "daemon.info" }));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_daemon_is_unreachable() {
    let path = std::env::temp_dir().join(format!("nonce-api-none-{}.sock", std::process::id()));
    match SocketClient::connect(&path).await {
        Err(CallError::Unreachable(why)) => assert!(why.contains("cannot connect"), "{why}"),
        other => panic!("connected to nothing: {other:?}"),
    }
}

/// Like `nonced`: a task per connection, its calls answered one after another.
/// `search.wait` answers after 5 s; `daemon.info` gets an error without an id (as a request
/// the daemon cannot read does); `search.status` gets a reply naming another call.
async fn serve_like_nonced(listener: UnixListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let req: Value = serde_json::from_str(&line).expect("JSON");
                let reply = match req["method"].as_str() {
                    Some("search.wait") => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        json!({ "jsonrpc": "2.0", "result": "waited", "id": req["id"] })
                    }
                    Some("daemon.info") => json!({ "jsonrpc": "2.0", "id": null,
                        "error": { "code": -32600, "message": "Invalid Request" } }),
                    Some("search.status") => json!({ "jsonrpc": "2.0", "result": "other", "id": 999_999 }),
                    _ => json!({ "jsonrpc": "2.0", "result": req["method"], "id": req["id"] }),
                };
                if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(2), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 2 s"))
}

#[tokio::test]
async fn a_call_after_a_dropped_wait_does_not_wait_behind_it() {
    let (dir, path) = socket_in("wait");
    tokio::spawn(serve_like_nonced(UnixListener::bind(&path).expect("bind")));
    let mut client = SocketClient::connect(&path).await.expect("connects");
    let dropped = tokio::time::timeout(Duration::from_millis(50), client.call(Method::SearchWait, json!({})));
    assert!(dropped.await.is_err(), "the wait takes 5 s");
    let v = within("the call after", client.call(Method::SearchList, json!({}))).await.expect("answered");
    assert_eq!(v, json!("search.list"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_error_without_an_id_answers_the_call_and_a_stranger_id_is_an_error() {
    let (dir, path) = socket_in("ids");
    tokio::spawn(serve_like_nonced(UnixListener::bind(&path).expect("bind")));
    let mut client = SocketClient::connect(&path).await.expect("connects");
    match within("an id-less error", client.call(Method::DaemonInfo, json!({}))).await {
        Err(CallError::Rpc(e)) => assert_eq!(e.code, -32600, "{e:?}"),
        other => panic!("the id-less error is this call's answer: {other:?}"),
    }
    match within("a stranger's reply", client.call(Method::SearchStatus, json!({}))).await {
        Err(CallError::Unreachable(why)) => assert!(why.contains("another call"), "{why}"),
        other => panic!("a reply to another call was taken: {other:?}"),
    }
    let v = within("a call on a new connection", client.call(Method::SearchList, json!({}))).await;
    assert_eq!(v.expect("answered"), json!("search.list"));
    let _ = std::fs::remove_dir_all(&dir);
}
