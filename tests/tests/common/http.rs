//! Talking to `nonced`'s network listener the plainest way: one HTTP/1.1 request on a fresh
//! TCP connection, no client library between the test and the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `nonced` with its config, socket and state in `dir` (`nonced.toml`, `nonced.sock`,
/// `state/`): how the listener tests start it.
pub fn nonced_in(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(super::bin("nonced"));
    cmd.arg("--config")
        .arg(dir.join("nonced.toml"))
        .arg("--socket")
        .arg(dir.join("nonced.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("NONCE_LOG", "warn");
    cmd
}

/// Waits (15 s at most) until something listens on `port`.
pub fn wait_for_listener(port: u16) {
    let t = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(15), "nonced did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The hex SHA-256 of `text`, computed by coreutils' `sha256sum` (not our code): what a
/// `[[users]]` table's `token_sha256` holds.
pub fn sha256_hex(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// One request, `Connection: close`: (status, body), the body de-chunked.
pub fn http_request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(port, method, path, token, &[], body);
    (status, body)
}

/// One request with `headers` added: (status, the response's head, body de-chunked).
pub fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) =
        text.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or_default();
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, head, body);
    }
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    (status, head, out)
}

/// A JSON-RPC call over `POST /rpc` with `token`; the reply as JSON (HTTP 200 asserted).
pub fn rpc_over_http(port: u16, token: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let (status, text) = http_request(port, "POST", "/rpc", Some(token), &body);
    assert_eq!(status, 200, "{method}: HTTP {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {text}"))
}
