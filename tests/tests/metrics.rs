//! `/metrics` and the EMF lines, checked with real parsers: Python's `prometheus_client` text
//! parser for the exposition and `jsonschema` with the EMF specification's schema for the log
//! lines (`scripts/test` installs both and sets `NONCE_TEST_PYTOOLS`; without it this fails).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "metrics-admin-token-0123456789abcdef0123456789abcdef0123456789";
const USER: &str = "metrics-user-token-0123456789abcdef0123456789abcdef01234567890";

fn python() -> String {
    std::env::var("NONCE_TEST_PYTOOLS").unwrap_or_else(|_| {
        panic!("NONCE_TEST_PYTOOLS is not set: run scripts/test, which installs prometheus-client and jsonschema")
    })
}

fn sha(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

fn get(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
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
        body = out;
    }
    (status, body)
}

struct Daemon {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(name: &str, extra: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("nonced-metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    std::fs::write(
        dir.join("nonced.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\nplain = true\n{extra}\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\n\
             [[users]]\nname = \"ann\"\nrole = \"user\"\ntoken_sha256 = \"{}\"\n",
            sha(ADMIN),
            sha(USER)
        ),
    )
    .expect("config");
    let child = Command::new(bin("nonced"))
        .arg("--config")
        .arg(dir.join("nonced.toml"))
        .arg("--socket")
        .arg(dir.join("nonced.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("NONCE_LOG", "warn")
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("nonced starts");
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(15), "nonced did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon { child, dir, port }
}

fn rpc(d: &Daemon, token: &str, method: &str, params: Value) -> Value {
    let (status, body) = get(
        d.port,
        "POST",
        "/rpc",
        Some(token),
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn check(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/check_metrics.py");
    let out = Command::new(python()).arg(script).args(args).output().expect("python runs");
    assert!(out.status.success(), "the parser refused it: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

#[test]
fn metrics_parse_with_prometheus_client_and_agree_with_the_job() {
    let d = start("scrape", "");
    let c = golden()["lowest"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "coursework-be32-bottom")
        .cloned()
        .expect("case");
    let range = format!("{}..{}", s(&c["range"][0]), s(&c["range"][1]));
    let started = rpc(
        &d,
        USER,
        "search.start",
        json!({"block_hex": c["block_hex"], "encoding": c["encoding"],
        "difficulty": c["difficulty"], "mode": "lowest", "range": range}),
    );
    let job = s(&started["result"]["job_id"]).to_string();
    let done = rpc(&d, USER, "search.wait", json!({"job_id": job, "timeout_s": 60}));
    let result = &done["result"]["result"];
    assert_eq!(result["nonce"].to_string(), s(&c["lowest"]));
    let refused = rpc(&d, USER, "daemon.info", json!({}));
    assert_eq!(refused["error"]["code"], json!(-32003));

    // Admins only: no token 401, a user 403.
    assert_eq!(get(d.port, "GET", "/metrics", None, "").0, 401);
    assert_eq!(get(d.port, "GET", "/metrics", Some(USER), "").0, 403);
    let (status, text) = get(d.port, "GET", "/metrics", Some(ADMIN), "");
    assert_eq!(status, 200);
    let file = d.dir.join("metrics.txt");
    std::fs::write(&file, &text).expect("write");
    let m = check(&["exposition", file.to_str().expect("utf-8")]);
    let v = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no sample {k} in\n{text}"));
    assert_eq!(v(r#"nonce_jobs{state="found"}"#), 1.0);
    assert_eq!(v(r#"nonce_jobs{state="running"}"#), 0.0);
    assert_eq!(v("nonce_nonces_searched_total"), result["searched"].as_f64().expect("searched"));
    assert_eq!(v(r#"nonce_rpc_requests_total{method="search.start"}"#), 1.0);
    assert_eq!(v(r#"nonce_rpc_requests_total{method="search.wait"}"#), 1.0);
    assert_eq!(v(r#"nonce_rpc_errors_total{code="-32003",method="daemon.info"}"#), 1.0);
    assert!(v("nonce_journal_write_seconds_count") >= 2.0, "the start and the finish were journaled");
    assert_eq!(m["#type nonce_journal_write_seconds"], json!("histogram"));
    assert_eq!(m["#type nonce_stalls"], json!("counter"));
    assert_eq!(v("nonce_stalls_total"), result["stalls"].as_f64().expect("stalls"));
    // No unbounded labels: nothing carries a nonce or a token.
    assert!(!text.contains(s(&c["lowest"])) && !text.contains(ADMIN) && !text.contains(USER));
}

#[test]
fn metrics_public_needs_no_token_and_emf_lines_validate_against_the_schema() {
    let d = start("emf", "metrics_public = true\n\n[metrics]\nemf = true\nemf_every_s = 1");
    assert_eq!(get(d.port, "GET", "/metrics", None, "").0, 200, "metrics_public");
    let started = rpc(
        &d,
        ADMIN,
        "search.start",
        json!({"block": "emf", "difficulty": 60, "max_time": "3s", "workers": 2}),
    );
    let job = s(&started["result"]["job_id"]).to_string();
    let done = rpc(&d, ADMIN, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    assert_eq!(done["result"]["result"]["outcome"], json!("timed_out"));
    std::thread::sleep(Duration::from_millis(2500));
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/emf.schema.json");
    let summary =
        check(&["emf", schema.to_str().expect("utf-8"), d.dir.join("stdout.log").to_str().expect("utf-8")]);
    assert!(summary["documents"].as_u64().expect("count") >= 3, "{summary}");
    // The lines add up: what they report searched is what the job searched.
    let lines = std::fs::read_to_string(d.dir.join("stdout.log")).expect("stdout");
    let searched: f64 = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .filter_map(|v| v["NoncesSearched"].as_f64())
        .sum();
    let total = done["result"]["result"]["searched"].as_f64().expect("searched");
    assert!((searched - total).abs() < 1.0, "EMF lines sum to {searched}, the job searched {total}");
}
