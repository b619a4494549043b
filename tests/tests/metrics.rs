//! `/metrics` and the EMF lines, checked with real parsers: Python's `prometheus_client`
//! OpenMetrics parser (and its classic text parser) for the exposition and `jsonschema` with the EMF specification's schema for the log
//! lines (`scripts/test` installs both and sets `NONCE_TEST_PYTOOLS`; without it this fails).

mod common;
use common::emulator::Emulator;
use common::http::{
    free_port, http_exchange, http_request as get, nonced_in, rpc_over_http, sha256_hex as sha,
    wait_for_listener,
};
use common::*;
use protocol::{codec, Event, EventBody, JobId, Message, WorkerId};
use serde_json::{json, Value};
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
    start_with(name, "", extra, &[])
}

/// A daemon whose config has `top` before its tables and `extra` after `[http]`'s keys.
fn start_with(name: &str, top: &str, extra: &str, env: &[(String, String)]) -> Daemon {
    let dir = std::env::temp_dir().join(format!("nonced-metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    std::fs::write(
        dir.join("nonced.toml"),
        format!(
            "{top}[http]\nlisten = \"127.0.0.1:{port}\"\nplain = true\n{extra}\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\n\
             [[users]]\nname = \"ann\"\nrole = \"user\"\ntoken_sha256 = \"{}\"\n",
            sha(ADMIN),
            sha(USER)
        ),
    )
    .expect("config");
    let child = nonced_in(&dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
    let c = golden_case("lowest", "coursework-be32-bottom");
    let range = range_arg(&c);
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
    let (m, text) = scrape(&d);
    let v = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no sample {k} in\n{text}"));
    assert_eq!(v(r#"nonce_jobs{state="found"}"#), 1.0);
    assert_eq!(v(r#"nonce_jobs{state="running"}"#), 0.0);
    assert_eq!(v("nonce_nonces_searched_total"), result["searched"].as_f64().expect("searched"));
    assert_eq!(v(r#"nonce_rpc_requests_total{method="search.start"}"#), 1.0);
    assert_eq!(v(r#"nonce_rpc_requests_total{method="search.wait"}"#), 1.0);
    assert_eq!(v(r#"nonce_rpc_errors_total{code="-32003",method="daemon.info"}"#), 1.0);
    assert!(v("nonce_journal_write_seconds_count") >= 2.0, "the start and the finish were journaled");
    assert_eq!(m["#type nonce_journal_write_seconds"], json!("histogram"));
    assert_eq!(m["#unit nonce_journal_write_seconds"], json!("seconds"));
    // Counters are typed as counters, their `_total` samples inside their families.
    for (sample, family) in [
        ("nonce_stalls_total", "nonce_stalls"),
        ("nonce_nonces_searched_total", "nonce_nonces_searched"),
        (r#"nonce_rpc_requests_total{method="search.start"}"#, "nonce_rpc_requests"),
    ] {
        assert_eq!(m[format!("#family {sample}")], json!(family), "{sample}");
        assert_eq!(m[format!("#type {family}")], json!("counter"), "{family}");
    }
    assert_eq!(m["#type nonce_jobs"], json!("gauge"));
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

/// Scrapes `/metrics` as the admin, as Prometheus does (OpenMetrics first), and parses it;
/// scrapes it again in the classic text format, which `promtool check metrics` must pass
/// without a single problem.
fn scrape(d: &Daemon) -> (Value, String) {
    let accept = ("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
    let (status, head, text) = http_exchange(d.port, "GET", "/metrics", Some(ADMIN), &[accept], "");
    assert_eq!(status, 200, "{text}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    let file = d.dir.join("metrics.txt");
    std::fs::write(&file, &text).expect("write");
    let classic = ("Accept", "text/plain;version=0.0.4");
    let (status, head, plain) = http_exchange(d.port, "GET", "/metrics", Some(ADMIN), &[classic], "");
    assert_eq!(status, 200, "{plain}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    promtool_check(&plain);
    (check(&["exposition", file.to_str().expect("utf-8")]), text)
}

/// `promtool check metrics` (Debian's prometheus package) on `text`: no problem at all.
fn promtool_check(text: &str) {
    let promtool = std::env::var("NONCE_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool} is needed (Debian's prometheus package): {e}"));
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

/// The value of one sample in a parsed scrape (integers and floats alike).
fn num(m: &Value, key: impl AsRef<str>) -> f64 {
    let key = key.as_ref();
    m[key].as_f64().unwrap_or_else(|| panic!("no sample {key}"))
}

/// The samples of `family` (keys with their labels) in a parsed scrape.
fn samples<'a>(m: &'a Value, family: &str) -> Vec<(&'a str, f64)> {
    let obj = m.as_object().expect("a summary object");
    obj.iter()
        .filter(|(k, v)| k.starts_with("#family ") && v.as_str() == Some(family))
        .map(|(k, _)| {
            let key = &k["#family ".len()..];
            (key, obj[key].as_f64().expect("a number"))
        })
        .collect()
}

#[test]
fn running_jobs_and_their_workers_have_series_only_while_they_run() {
    let d = start("running", "");
    let started = rpc(
        &d,
        ADMIN,
        "search.start",
        json!({"block": "metrics while running", "difficulty": 60, "max_time": "60s", "workers": 2, "threads": 1}),
    );
    let job = s(&started["result"]["job_id"]).to_string();

    // While it runs: the job and each of its two workers have a hash rate once they report one.
    let t = Instant::now();
    let (m, text) = loop {
        let (m, text) = scrape(&d);
        let rates = samples(&m, "nonce_worker_hash_rate");
        if rates.len() == 2 && rates.iter().all(|(_, r)| *r > 0.0) {
            break (m, text);
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no rate from two workers within 30 s:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(num(&m, r#"nonce_jobs{state="running"}"#), 1.0, "{text}");
    assert!(num(&m, format!(r#"nonce_job_hash_rate{{job_id="{job}"}}"#)) > 0.0, "{text}");
    for (key, _) in samples(&m, "nonce_worker_hash_rate") {
        assert!(key.contains(&format!(r#"job_id="{job}""#)) && key.contains("worker_id=\""), "{key}");
    }
    // No label a scraper owns: it would rename ours to exported_job.
    assert!(!text.contains("{job=") && !text.contains(",job=") && !text.contains("instance="), "{text}");
    // Both counted by health (live, unless a starved machine let one fall silent a moment).
    let by_health: f64 = samples(&m, "nonce_workers").iter().map(|(_, n)| n).sum();
    assert_eq!(by_health, 2.0, "{text}");
    assert!(m[r#"nonce_workers{health="live"}"#].as_f64().expect("live") >= 1.0, "{text}");
    assert_eq!(m["#type nonce_job_hash_rate"], json!("gauge"));
    assert_eq!(m["#type nonce_worker_hash_rate"], json!("gauge"));
    let searched_while_running = num(&m, "nonce_nonces_searched_total");

    // Cancelled: its series go, the jobs gauge moves it to its outcome, the workers are counted
    // no more, and the nonces it searched stay in the counter.
    let cancelled = rpc(&d, ADMIN, "search.cancel", json!({"job_id": job}));
    assert_eq!(cancelled["result"]["cancelling"], json!(true), "{cancelled}");
    let done = rpc(&d, ADMIN, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    let result = &done["result"]["result"];
    assert_eq!(result["outcome"], json!("cancelled"), "{done}");
    let (m, text) = scrape(&d);
    assert!(samples(&m, "nonce_job_hash_rate").is_empty(), "a finished job keeps a rate series:\n{text}");
    assert!(samples(&m, "nonce_worker_hash_rate").is_empty(), "its workers keep rate series:\n{text}");
    assert!(!text.contains(&job), "the finished job's id is still a label:\n{text}");
    assert_eq!(num(&m, r#"nonce_jobs{state="running"}"#), 0.0);
    assert_eq!(num(&m, r#"nonce_jobs{state="cancelled"}"#), 1.0);
    for health in ["live", "stalled", "gone"] {
        assert_eq!(num(&m, format!(r#"nonce_workers{{health="{health}"}}"#)), 0.0, "{health}: {text}");
    }
    let searched = num(&m, "nonce_nonces_searched_total");
    assert_eq!(searched, result["searched"].as_f64().expect("the result's searched"));
    assert!(
        searched >= searched_while_running,
        "the counter went down: {searched_while_running} -> {searched}"
    );
    assert_eq!(num(&m, r#"nonce_rpc_requests_total{method="search.cancel"}"#), 1.0);
}

#[test]
fn aws_requests_ghosts_and_undecodable_events_are_counted_over_the_emulator() {
    let em = Emulator::get("metrics");
    let fabric = em.fabric();
    // For the events queue: an earlier job's events (ghosts) and bodies that do not decode.
    let earlier = JobId(0x0fed_cba9_8765_4321);
    let ghosts: Vec<String> = (0..4)
        .map(|i| {
            let worker = WorkerId(format!("ghost-{i}"));
            let key = protocol::auth::JobSecret::from_bytes([7; 32]).worker_key(earlier, &worker);
            let ev =
                Event { job: earlier, worker, body: EventBody::Bye { reason: protocol::ByeReason::Stopped } };
            codec::encode_text(&Message::Event(key.seal_event(1, ev))).expect("encodes")
        })
        .collect();
    let garbage = vec!["not base64 at all!".to_string(), "aGVsbG8gd29ybGQ=".to_string()];
    let d = start_with(
        "aws",
        "transport = \"aws\"\nlauncher = \"process\"\n",
        &format!(
            "\n[aws]\nprefix = \"{}\"\nbootstrap = true\n\n[metrics]\nemf = true\nemf_every_s = 1",
            em.prefix
        ),
        &em.env(),
    );
    // EMF lines report counters' growth since the first line: send once it is out.
    let t = Instant::now();
    while !std::fs::read_to_string(d.dir.join("stdout.log")).unwrap_or_default().contains("\"_aws\"") {
        assert!(t.elapsed() < Duration::from_secs(15), "no EMF line within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    em.send_bodies(&fabric.events_url, ghosts.iter().chain(&garbage).cloned().collect());
    let started = rpc(
        &d,
        ADMIN,
        "search.start",
        json!({"block": "metrics over aws", "difficulty": 60, "max_time": "5s", "workers": 2, "threads": 1}),
    );
    let job = s(&started["result"]["job_id"]).to_string();
    let done = rpc(&d, ADMIN, "search.wait", json!({"job_id": job, "timeout_s": 60}));
    assert_eq!(done["result"]["result"]["outcome"], json!("timed_out"), "{done}");

    // The router's counters are the daemon's since it started: wait for every body sent.
    let t = Instant::now();
    let (m, text) = loop {
        let (m, text) = scrape(&d);
        let n = |k: &str| m[k].as_f64().unwrap_or(0.0);
        if n("nonce_undecodable_events_total") >= 2.0 && n("nonce_ghost_events_total") >= 4.0 {
            break (m, text);
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the router did not count what was sent:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(num(&m, "nonce_undecodable_events_total"), 2.0, "{text}");
    assert!(num(&m, "nonce_routed_events_total") > 0.0, "{text}");
    // SQS and SNS requests by operation, as the SDK interceptor counted them.
    let sqs = |op: &str| m[format!(r#"nonce_aws_requests_total{{operation="{op}",service="SQS"}}"#)].as_f64();
    assert!(sqs("ReceiveMessage").is_some_and(|n| n > 0.0), "{text}");
    assert!(sqs("CreateQueue").is_some_and(|n| n > 0.0), "the bootstrap's: {text}");
    assert!(
        m[r#"nonce_aws_requests_total{operation="Publish",service="SNS"}"#]
            .as_f64()
            .is_some_and(|n| n >= 1.0),
        "the Stop broadcast: {text}"
    );
    assert_eq!(m["#type nonce_aws_requests"], json!("counter"));
    for (key, _) in samples(&m, "nonce_aws_requests") {
        assert!(
            ["SQS", "SNS", "ECS"].iter().any(|svc| key.contains(&format!(r#"service="{svc}""#))),
            "{key}"
        );
        assert!(!key.contains("http") && !key.contains(&em.prefix), "a URL or a name in a label: {key}");
    }

    // The EMF lines validate, carry the deployment's prefix as their dimension, and their
    // counters' growth adds up to what the router counted.
    std::thread::sleep(Duration::from_millis(1500));
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/emf.schema.json");
    let summary =
        check(&["emf", schema.to_str().expect("utf-8"), d.dir.join("stdout.log").to_str().expect("utf-8")]);
    assert_eq!(summary["last"]["Prefix"], json!(em.prefix), "{summary}");
    let lines = std::fs::read_to_string(d.dir.join("stdout.log")).expect("stdout");
    let sum = |name: &str| -> f64 {
        lines
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .filter_map(|v| v[name].as_f64())
            .sum()
    };
    assert_eq!(sum("UndecodableEvents"), 2.0, "{lines}");
    assert!(sum("GhostEvents") >= 4.0, "{lines}");
}

/// A real Prometheus server (Debian's) on loopback, scraping `d` every second with the admin
/// token from a file, its storage in `d`'s directory; killed on drop.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn scraping(d: &Daemon) -> Prometheus {
        let dir = d.dir.join("prometheus");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("token"), ADMIN).expect("token file");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: nonced\n    \
             authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{}']\n",
            dir.join("token").display(),
            d.port
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let port = free_port();
        let bin = std::env::var("NONCE_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} is needed (Debian's prometheus package): {e}"));
        wait_for_listener(port);
        // It listens before its storage is open: 503 until then.
        let t = Instant::now();
        while get(port, "GET", "/-/ready", None, "").0 != 200 {
            assert!(t.elapsed() < Duration::from_secs(30), "prometheus not ready within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { child, port }
    }

    /// An instant query through the HTTP API: its result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let q: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (status, text) = get(self.port, "GET", &format!("/api/v1/query?query={q}"), None, "");
        assert_eq!(status, 200, "{promql}: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_finds_a_running_jobs_rate_by_its_id() {
    let d = start("prometheus", "");
    let started = rpc(
        &d,
        ADMIN,
        "search.start",
        json!({"block": "prometheus scrape", "difficulty": 60, "max_time": "60s", "workers": 1, "threads": 1}),
    );
    let job = s(&started["result"]["job_id"]).to_string();
    let prom = Prometheus::scraping(&d);
    let promql = format!(r#"nonce_job_hash_rate{{job_id="{job}"}}"#);
    let t = Instant::now();
    let found = loop {
        let r = prom.query(&promql);
        if r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
        {
            break r;
        }
        let log = std::fs::read_to_string(d.dir.join("prometheus/prometheus.log")).unwrap_or_default();
        assert!(t.elapsed() < Duration::from_secs(30), "no rate for {job} within 30 s: {r:?}\n{log}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // The scraper's own labels are its own: ours came through unrenamed.
    assert_eq!(found[0]["metric"]["job"], json!("nonced"), "{found:?}");
    assert_eq!(found[0]["metric"]["job_id"], json!(job), "{found:?}");
    assert!(found[0]["metric"].get("exported_job").is_none(), "{found:?}");
    // The scrape itself is healthy (authenticated, parsed).
    let up = prom.query(r#"up{job="nonced"}"#);
    assert_eq!(up.first().map(|s| s["value"][1].clone()), Some(json!("1")), "{up:?}");
    rpc(&d, ADMIN, "search.cancel", json!({"job_id": job}));
}
