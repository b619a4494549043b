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
    let (stream, _) = listener.accept().await.expect("a client");
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let req: Value = serde_json::from_str(&line).expect("JSON");
        tokio::time::sleep(delay).await;
        let reply =
            json!({ "jsonrpc": "2.0", "result": { "method": req["method"] }, "id": req["id"] }).to_string();
        let (a, b) = reply.split_at(reply.len() / 2);
        w.write_all(a.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.write_all(b.as_bytes()).await.expect("write");
        w.write_all(b"\n").await.expect("write");
    }
}

#[tokio::test]
async fn a_dropped_call_does_not_answer_the_next_one() {
    let dir = std::env::temp_dir().join(format!("nonce-api-socket-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("d.sock");
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
