//! `/metrics` and the EMF lines, checked with real parsers: Python's `prometheus_client` text
//! parser for the exposition and `jsonschema` with the EMF specification's schema for the log
//! lines (`scripts/test` installs both and sets `NONCE_TEST_PYTOOLS`; without it this fails).

mod common;
use common::http::{
    free_port, http_request as get, nonced_in, rpc_over_http, sha256_hex as sha, wait_for_listener,
};
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "metrics-admin-token-0123456789abcdef0123456789abcdef0123456789";
const USER: &str = "metrics-user-token-0123456789abcdef0123456789abcdef01234567890";

fn python() -> String {
    std::env::var("NONCE_TEST_PYTOOLS").unwrap_or_else(|_| {
        panic!("NONCE_TEST_PYTOOLS is not set: run scripts/test, which installs prometheus-client and jsonschema")
    })
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
    let port = free_port();
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
    let child = nonced_in(&dir)
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("nonced starts");
    wait_for_listener(port);
    Daemon { child, dir, port }
}

fn rpc(d: &Daemon, token: &str, method: &str, params: Value) -> Value {
    rpc_over_http(d.port, token, method, params)
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
