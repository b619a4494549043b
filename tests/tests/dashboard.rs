//! The dashboard in a real browser: headless chromium (Debian's), driven by playwright-core
//! (npm), against a real `nonced` on loopback with `nonce-worker` processes. The page must
//! show the job, fill its map, show a SIGSTOPped worker stale and its range going to the
//! others, and end with the reference nonce. `scripts/test` installs both and sets
//! `NONCE_TEST_PLAYWRIGHT_DIR` and `NONCE_TEST_CHROMIUM`; without them this test fails.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The lowest nonce of `sup-a` at difficulty 27 (as in tests/tests/supervision.rs).
const REFERENCE: u64 = 213_623_294;
const ADMIN: &str = "dashboard-admin-token-0123456789abcdef0123456789abcdef012345";

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test, which installs chromium and playwright-core and sets it")
    })
}

fn post(port: u16, body: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_dashboard_shows_a_stall_a_reshard_and_the_answer_in_a_real_browser() {
    let playwright = need("NONCE_TEST_PLAYWRIGHT_DIR");
    let chromium = need("NONCE_TEST_CHROMIUM");
    assert!(
        PathBuf::from(&playwright).join("node_modules/playwright-core").exists(),
        "no playwright-core in {playwright}"
    );
    assert!(PathBuf::from(&chromium).exists(), "no chromium at {chromium}");

    let dir = std::env::temp_dir().join(format!("nonced-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let hash = {
        let out = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().expect("stdin").write_all(ADMIN.as_bytes())?;
                c.wait_with_output()
            })
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    };
    std::fs::write(
        dir.join("nonced.toml"),
        format!(
            "launcher = \"process\"\n[http]\nlisten = \"127.0.0.1:{port}\"\nplain = true\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{hash}\"\n"
        ),
    )
    .expect("config");
    let mut daemon = Command::new(bin("nonced"))
        .arg("--config")
        .arg(dir.join("nonced.toml"))
        .arg("--socket")
        .arg(dir.join("nonced.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        // The portable kernel keeps the search long enough to watch (~40 s here).
        .env("NONCE_KERNEL", "portable")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .env("NONCE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nonced starts");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(15), "nonced did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = post(
        port,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "search.start", "params": {
            "block": "sup-a", "difficulty": 27, "mode": "lowest", "workers": 3, "threads": 1,
            "heartbeat": "1s", "stall_timeout": "3s"}})
        .to_string(),
    );
    let job = started["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{started}")).to_string();
    let pids = worker_pids(daemon.id(), 3);
    assert_eq!(pids.len(), 3, "three worker processes");

    let screenshot = std::env::var("NONCE_DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("dashboard.png"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(["--url", &format!("http://127.0.0.1:{port}"), "--token", ADMIN, "--stop-pid", &pids[1]])
        .args(["--nonce", &REFERENCE.to_string(), "--screenshot"])
        .arg(&screenshot)
        .env("NONCE_PLAYWRIGHT_DIR", &playwright)
        .env("NONCE_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let _ = Command::new("kill").args(["-KILL", &pids[1]]).status();
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser did not see it all (above)");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    // The daemon agrees with what the page showed.
    let r = post(port, &json!({"jsonrpc": "2.0", "id": 2, "method": "search.wait", "params": {"job_id": job, "timeout_s": 30}}).to_string());
    assert_eq!(r["result"]["result"]["nonce"], json!(REFERENCE), "{r}");
    assert!(r["result"]["result"]["reshards"].as_u64().unwrap_or(0) >= 1, "{r}");
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
