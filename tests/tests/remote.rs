//! `nonced` over the network, as remote users meet it: a real daemon with `[http] listen`,
//! two users with their own tokens, plain HTTP on loopback and TLS with a private CA, and a
//! load test from a second process while a reference search runs.

mod common;
use common::http::{free_port, http_exchange, http_request, nonced_in, rpc_over_http, sha256_hex};
use common::*;
use nonce_api::{Daemon, JobStatus};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Tokens of the test users (any printable text works; `nonced token new` makes 64 hex).
const ALICE: &str = "alice-token-0123456789abcdef0123456789abcdef0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef0123456789abcdef0123456789abcdef0123";
const ADMIN: &str = "admin-token-0123456789abcdef0123456789abcdef0123456789abcdef01";

/// A daemon with a network listener, killed on drop.
struct Remote {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Remote {
    /// `http` is the body of the `[http]` table after `listen`.
    fn start(name: &str, http: &str, extra: &str) -> Remote {
        Remote::start_logging(name, http, extra, "warn")
    }

    /// As `start`, logging at `level` (`NONCE_LOG`) to `nonced.log`.
    fn start_logging(name: &str, http: &str, extra: &str, level: &str) -> Remote {
        let dir = std::env::temp_dir().join(format!("nonced-remote-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = free_port();
        let config = format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n\n{extra}\n\n\
             [[users]]\nname = \"alice\"\nrole = \"user\"\ntoken_sha256 = \"{}\"\nquotas = {{ max_concurrent_jobs = 1 }}\n\n\
             [[users]]\nname = \"bob\"\nrole = \"user\"\ntoken_sha256 = \"{}\"\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(ALICE),
            sha256_hex(BOB),
            sha256_hex(ADMIN)
        );
        std::fs::write(dir.join("nonced.toml"), config).expect("config");
        for (user, token) in [("alice", ALICE), ("bob", BOB), ("ops", ADMIN)] {
            std::fs::write(dir.join(format!("{user}.token")), format!("{token}\n")).expect("token file");
        }
        // Its logs are JSON lines on stdout when stderr is not a terminal: both to the log.
        let log = std::fs::File::create(dir.join("nonced.log")).expect("log");
        let child = nonced_in(&dir)
            .env("NONCE_LOG", level)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("nonced starts");
        let r = Remote { child, dir, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(15), "nonced did not listen: {}", r.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nonced.log")).unwrap_or_default()
    }

    fn token_file(&self, user: &str) -> String {
        self.dir.join(format!("{user}.token")).to_str().expect("utf-8").to_string()
    }

    /// `noncectl ARGS --endpoint http://... --token-file USER --json`.
    fn cli(&self, user: &str, args: &[&str]) -> (i32, Value) {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let tf = self.token_file(user);
        let mut all = args.to_vec();
        all.extend(["--endpoint", &endpoint, "--token-file", &tf]);
        noncectl_json(&all)
    }

    /// One HTTP request on a fresh connection: (status, body).
    fn http(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        http_request(self.port, method, path, token, body)
    }

    /// A JSON-RPC call over HTTP POST /rpc as the holder of `token`.
    fn rpc(&self, token: &str, method: &str, params: Value) -> Value {
        rpc_over_http(self.port, token, method, params)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The golden case every test here searches (an independent Python brute force found it).
fn case() -> Value {
    golden_case("lowest", "coursework-be32-bottom")
}

fn case_args(c: &Value) -> Vec<String> {
    let range = range_arg(c);
    ["search", "--block-hex", s(&c["block_hex"]), "--encoding", s(&c["encoding"]), "--difficulty"]
        .iter()
        .map(|x| x.to_string())
        .chain([c["difficulty"].to_string(), "--mode".into(), "lowest".into(), "--range".into(), range])
        .collect()
}

fn case_request(c: &Value) -> Value {
    let range = range_arg(c);
    json!({"block_hex": c["block_hex"], "encoding": c["encoding"], "difficulty": c["difficulty"],
           "mode": "lowest", "range": range})
}

/// A job that runs until it is cancelled or its 60 s run out.
fn long_request() -> Value {
    json!({"block": "nonce-cloud remote test", "difficulty": 60, "max_time": "60s", "workers": 1, "threads": 1})
}

/// `fut.within("what")`: the future's output, or a panic naming what did not happen in 30 s.
trait Within: std::future::Future + Sized {
    async fn within(self, what: &str) -> Self::Output {
        match tokio::time::timeout(Duration::from_secs(30), self).await {
            Ok(v) => v,
            Err(_) => panic!("{what}: nothing within 30 s"),
        }
    }
}
impl<F: std::future::Future> Within for F {}

fn error_code(reply: &Value) -> i64 {
    reply["error"]["code"].as_i64().unwrap_or_else(|| panic!("an error reply: {reply}"))
}

#[test]
fn two_users_over_http_and_websocket_each_reach_only_their_own_jobs() {
    let d = Remote::start("users", "plain = true", "");
    let c = case();

    // Health checks need no token.
    assert_eq!(d.http("GET", "/healthz", None, ""), (200, "ok\n".into()));
    // No token, a wrong one, a malformed header: 401 and nothing else.
    for token in [None, Some("not-a-token"), Some("")] {
        let (status, body) =
            d.http("POST", "/rpc", token, r#"{"jsonrpc":"2.0","id":1,"method":"search.list"}"#);
        assert_eq!((status, body.as_str()), (401, ""), "token {token:?}");
    }
    assert_eq!(d.http("GET", "/nothing-here", Some(ALICE), "").0, 404);
    assert_eq!(d.http("GET", "/rpc", Some(ALICE), "").0, 405);

    // noncectl --endpoint gives the embedded run's JSON (ids and timings aside).
    let args = case_args(&c);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, remote) = d.cli("alice", &argv);
    assert_eq!(code, 0, "{remote}");
    assert_eq!(remote["nonce"].to_string(), s(&c["lowest"]));
    let (code, local) = noncectl_json(&argv);
    assert_eq!(code, 0);
    // Every field is there both ways; those that do not depend on timing are equal ("found"
    // and "best" list what was searched before the lowest was proven, which varies).
    let keys = |v: &Value| v.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&remote), keys(&local), "remote and embedded results have other fields");
    for k in [
        "nonce",
        "hash",
        "digest",
        "leading_zeros",
        "mode",
        "outcome",
        "workers",
        "error",
        "ghosts",
        "rejected",
    ] {
        assert_eq!(remote[k], local[k], "{k}: remote {remote} embedded {local}");
    }

    // Over HTTP POST: start as alice, wait, get the brute-force answer.
    let started = d.rpc(ALICE, "search.start", case_request(&c));
    let job = s(&started["result"]["job_id"]).to_string();
    let waited = d.rpc(ALICE, "search.wait", json!({"job_id": job, "timeout_s": 60}));
    assert_eq!(waited["result"]["finished"], json!(true), "{waited}");
    assert_eq!(waited["result"]["result"]["nonce"].to_string(), s(&c["lowest"]));

    // Bob sees none of it: "not found", exactly like a job that does not exist.
    for method in ["search.status", "search.cancel", "search.wait", "workers.list"] {
        let r = d.rpc(BOB, method, json!({"job_id": job}));
        assert_eq!(error_code(&r), -32000, "{method}: {r}");
    }
    let listed = d.rpc(BOB, "search.list", json!({}));
    assert_eq!(listed["result"], json!([]), "bob lists no job of alice's");
    assert_eq!(error_code(&d.rpc(ALICE, "daemon.info", json!({}))), -32003);
    assert!(d.rpc(ADMIN, "daemon.info", json!({}))["result"].is_object());
    let all = d.rpc(ADMIN, "search.list", json!({}));
    assert_eq!(all["result"].as_array().expect("list").len(), 2, "the admin sees alice's two jobs");

    // Quotas per user: alice may run one job at once, bob is not held back by hers.
    let first = d.rpc(ALICE, "search.start", long_request());
    let long_job = s(&first["result"]["job_id"]).to_string();
    let second = d.rpc(ALICE, "search.start", long_request());
    assert_eq!(error_code(&second), -32001, "{second}");
    assert!(s(&second["error"]["message"]).contains("user alice"), "{second}");
    let bobs = d.rpc(BOB, "search.start", long_request());
    let bob_job = s(&bobs["result"]["job_id"]).to_string();

    // Over WebSocket: the subscription streams alice's progress; bob cannot subscribe to it
    // nor cancel it; alice cancels, and the stream ends with the cancelled result.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let endpoint = format!("http://127.0.0.1:{}", d.port);
        let alice = noncectl::client::Remote::new(&endpoint, ALICE.into(), None)
            .expect("endpoint")
            .connect()
            .within("alice connects")
            .await
            .expect("alice connects");
        let bob = noncectl::client::Remote::new(&endpoint, BOB.into(), None)
            .expect("endpoint")
            .connect()
            .within("bob connects")
            .await
            .expect("bob connects");
        let (mut alice, mut bob) = (alice, bob);
        // Updates are pushed (`search.subscribe`) over the network: `next_update` follows them.
        match bob.next_update(&long_job).within("bob subscribes").await {
            Err(noncectl::client::CallError::Rpc(e)) => assert_eq!(e.code, -32000),
            other => panic!("bob subscribed to alice's job: {other:?}"),
        }
        let mut searched = Vec::new();
        while searched.len() < 3 {
            match alice.next_update(&long_job).within("a notification").await.expect("a notification") {
                JobStatus::Running(p) => searched.push(p.searched),
                other => panic!("alice's job ended: {other:?}"),
            }
        }
        assert!(searched.windows(2).all(|w| w[0] <= w[1]) && searched[2] > 0, "progress moves: {searched:?}");
        match bob.cancel(&long_job).within("bob cancels").await {
            Err(noncectl::client::CallError::Rpc(e)) => assert_eq!(e.code, -32000),
            other => panic!("bob cancelled alice's job: {other:?}"),
        }
        alice.cancel(&long_job).within("alice cancels").await.expect("alice cancels");
        let last = loop {
            match alice.next_update(&long_job).within("the final notification").await.expect("an update") {
                JobStatus::Finished(f) => break f.result,
                JobStatus::Running(_) => {}
            }
        };
        assert_eq!(last.outcome, nonce_api::Outcome::Cancelled, "{last:?}");
    });
    let r = d.rpc(BOB, "search.cancel", json!({"job_id": bob_job}));
    assert_eq!(r["result"]["cancelling"], json!(true));

    // Ctrl-C on a remote search cancels the daemon's job: exit 130 with the cancelled result.
    let endpoint = format!("http://127.0.0.1:{}", d.port);
    let tf = d.token_file("bob");
    let child = Command::new(bin("noncectl"))
        .args([
            "search",
            "--block",
            "ctrl-c test",
            "--difficulty",
            "60",
            "--max-time",
            "60s",
            "--workers",
            "1",
        ])
        .args(["--json", "--endpoint", &endpoint, "--token-file", &tf])
        .env("NONCE_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("noncectl runs");
    let t = Instant::now();
    while d.rpc(BOB, "search.list", json!({}))["result"]
        .as_array()
        .expect("list")
        .iter()
        .all(|j| j["state"] != json!("running") || j["request"]["block"] != json!("ctrl-c test"))
    {
        assert!(t.elapsed() < Duration::from_secs(20), "the remote search did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-INT", &child.id().to_string());
    let out = child.wait_with_output().expect("noncectl ends");
    assert_eq!(out.status.code(), Some(130), "Ctrl-C exit code");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["outcome"], json!("cancelled"), "{v}");

    // A wrong token through noncectl: a clear error and the failure exit code.
    let out = Command::new(bin("noncectl"))
        .args(["jobs", "--endpoint", &format!("http://127.0.0.1:{}", d.port)])
        .env("NONCE_TOKEN", "wrong")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(5), "refused: the forbidden exit code");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token (HTTP 401)"));
    // https:// to this plain listener: a hint, not "received corrupt message".
    let out = Command::new(bin("noncectl"))
        .args(["jobs", "--endpoint", &format!("https://127.0.0.1:{}", d.port)])
        .env("NONCE_TOKEN", ALICE)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "unreachable: {err}");
    assert!(
        err.contains("does not speak TLS") && err.contains(&format!("http://127.0.0.1:{}", d.port)),
        "{err}"
    );
    assert!(!d.log().contains(ALICE) && !d.log().contains("wrong"), "a token reached the log");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A private CA and a certificate for 127.0.0.1 signed by it, as `NAME-ca.pem`, `NAME.pem`,
/// `NAME.key` in `dir`.
fn make_ca_and_cert(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
    );
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
        .expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().expect("utf-8"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

#[test]
fn tls_from_certificate_files_and_a_new_certificate_on_sighup() {
    let certs = std::env::temp_dir().join(format!("nonced-remote-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).expect("dir");
    make_ca_and_cert(&certs, "first");
    make_ca_and_cert(&certs, "second");
    let live_cert = certs.join("live.pem");
    let live_key = certs.join("live.key");
    std::fs::copy(certs.join("first.pem"), &live_cert).expect("copy");
    std::fs::copy(certs.join("first.key"), &live_key).expect("copy");
    let d = Remote::start(
        "tls",
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            live_cert.to_str().expect("utf-8"),
            live_key.to_str().expect("utf-8")
        ),
        "",
    );
    let endpoint = format!("https://127.0.0.1:{}", d.port);
    let tf = d.token_file("alice");
    let jobs_with = |ca: &str| {
        let ca = certs.join(ca);
        Command::new(bin("noncectl"))
            .args(["jobs", "--json", "--endpoint", &endpoint, "--token-file", &tf, "--ca-file"])
            .arg(&ca)
            .env("NONCE_LOG", "error")
            .output()
            .expect("runs")
    };
    let ok = jobs_with("first-ca.pem");
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "[]");
    let refused = jobs_with("second-ca.pem");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(7), "another CA's certificate is refused: {err}");
    assert!(err.contains(&endpoint) && !err.contains("wss://"), "names the endpoint as given: {err}");
    assert!(err.contains("not trusted") && err.contains("--ca-file"), "says what to do: {err}");
    // http:// to this TLS listener: a hint, not "http parser error".
    let out = Command::new(bin("noncectl"))
        .args(["jobs", "--endpoint", &endpoint.replacen("https", "http", 1), "--token-file", &tf])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("a TLS listener?") && err.contains(&endpoint), "{err}");
    // Plain HTTP to a TLS port gets nowhere.
    assert_ne!(http_request(d.port, "GET", "/healthz", None, "").0, 200);

    // The renewed certificate is served after SIGHUP, without a restart.
    std::fs::copy(certs.join("second.pem"), &live_cert).expect("copy");
    std::fs::copy(certs.join("second.key"), &live_key).expect("copy");
    let pid = d.child.id().to_string();
    signal("-HUP", &pid);
    let t = Instant::now();
    while jobs_with("second-ca.pem").status.code() != Some(0) {
        assert!(t.elapsed() < Duration::from_secs(10), "the new certificate was not served: {}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(jobs_with("first-ca.pem").status.code(), Some(7), "the old certificate is gone");
    // A broken certificate on SIGHUP keeps the good one.
    std::fs::write(&live_cert, "not a certificate").expect("write");
    signal("-HUP", &pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(jobs_with("second-ca.pem").status.code(), Some(0), "a bad reload kept serving");
    assert!(running(&pid));
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn under_load_from_many_slow_and_garbage_clients_a_reference_search_still_gets_its_answer() {
    // Tight limits so the load reaches them: idle cut-off 5 s, 64 connections per address.
    let d = Remote::start(
        "load",
        "plain = true\nidle_timeout_s = 5\nmax_connections_per_ip = 64\nauth_failures_per_minute = 5",
        "[quotas]\nmax_concurrent_jobs = 16\nmax_fleet = 64\n\n[user_quotas]\nmax_concurrent_jobs = 3",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("load/remote_load.py");
    let report = d.dir.join("load.json");
    let mut load = Command::new("python3")
        .arg(&script)
        .args(["--port", &d.port.to_string(), "--seconds", "20", "--report"])
        .arg(&report)
        .args(["--token", ALICE, "--token", BOB])
        .spawn()
        .expect("python3 runs the load");
    std::thread::sleep(Duration::from_secs(3));
    // The reference search, as the admin, while the load runs; the daemon answers health
    // checks throughout.
    let c = case();
    let args = case_args(&c);
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    argv.extend(["--workers", "1"]);
    let (code, v) = d.cli("ops", &argv);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["nonce"].to_string(), s(&c["lowest"]), "the reference answer under load");
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(d.http("GET", "/healthz", None, "").0, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = load.wait().expect("the load ends");
    assert!(status.success(), "the load script failed: {status}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    eprintln!("load report: {r}\nslowest /healthz under load: {slowest:?}");
    assert!(r["started"].as_u64().expect("started") >= 10, "{r}");
    assert!(r["cancelled"].as_u64().expect("cancelled") >= 5, "{r}");
    assert!(r["watched"].as_u64().expect("watched") >= 10, "{r}");
    assert!(r["quota_refused"].as_u64().is_some(), "{r}");
    assert_eq!(r["unexpected"], json!(0), "{r}");
    assert!(r["unauthorized"].as_u64().expect("401") >= 5, "{r}");
    assert!(r["throttled"].as_u64().expect("429") >= 1, "{r}");
    assert!(r["slow_closed_by_daemon"].as_u64().expect("slow") >= 8, "idle clients are cut off: {r}");
    assert!(r["over_cap_refused"].as_u64().expect("cap") >= 1, "the per-address cap holds: {r}");
    assert!(r["oversize_rejected"].as_u64().expect("oversize") >= 1, "{r}");
    assert!(slowest < Duration::from_secs(2), "/healthz took {slowest:?} under load");
    // Still serving after the load.
    assert_eq!(d.http("GET", "/healthz", None, "").0, 200);
}

/// Sends SIGHUP to the daemon and waits (15 s at most) for the log to say `what` once more.
fn hangup_and_wait_for(d: &Remote, what: &str) {
    let before = d.log().matches(what).count();
    signal("-HUP", &d.child.id().to_string());
    let t = Instant::now();
    while d.log().matches(what).count() == before {
        assert!(t.elapsed() < Duration::from_secs(15), "no {what:?} after SIGHUP: {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_users_and_quotas_under_a_plain_listener_and_never_kills_the_daemon() {
    let mut d = Remote::start_logging("sighup", "plain = true", "", "info");
    let config_path = d.dir.join("nonced.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    // A job runs across every reload; alice may run one at a time.
    let first = d.rpc(ALICE, "search.start", long_request());
    let job = s(&first["result"]["job_id"]).to_string();
    assert_eq!(error_code(&d.rpc(ALICE, "search.start", long_request())), -32001, "alice's quota");
    let (status, _) = d.http("POST", "/rpc", Some(BOB), r#"{"jsonrpc":"2.0","id":1,"method":"search.list"}"#);
    assert_eq!(status, 200, "bob's token works before");
    // bob also holds a WebSocket open from before the reload.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let endpoint = format!("http://127.0.0.1:{}", d.port);
    let (bob_ws, bob_job) = rt.block_on(async {
        let mut c = noncectl::client::Remote::new(&endpoint, BOB.into(), None)
            .expect("endpoint")
            .connect()
            .within("bob connects")
            .await
            .expect("bob connects");
        c.list().within("bob lists").await.expect("bob's socket works before");
        let job = c.start(&long_request()).within("bob starts").await.expect("bob's job").job_id;
        c.next_update(&job).within("bob subscribes").await.expect("bob's progress is pushed");
        (c, job)
    });
    // bob's token revoked, alice's quota raised, and a change that needs a restart.
    let bob_table = config.find("[[users]]\nname = \"bob\"").expect("bob's table");
    let ops_table = config.find("[[users]]\nname = \"ops\"").expect("ops' table");
    let edited = format!("{}{}", &config[..bob_table], &config[ops_table..])
        .replace("max_concurrent_jobs = 1", "max_concurrent_jobs = 2")
        .replace("plain = true", "plain = true\nidle_timeout_s = 30");
    std::fs::write(&config_path, edited).expect("config");
    hangup_and_wait_for(&d, "SIGHUP: configuration reloaded");
    assert!(d.child.try_wait().expect("wait").is_none(), "the daemon lives: {}", d.log());
    let log = d.log();
    assert!(log.contains("bob") && log.contains("users_removed"), "who went is logged: {log}");
    assert!(log.contains("need a restart") && log.contains("[http]"), "the restart-only change: {log}");
    assert!(!log.contains(&sha256_hex(BOB)), "no token hash in the log");
    let (status, _) = d.http("POST", "/rpc", Some(BOB), r#"{"jsonrpc":"2.0","id":1,"method":"search.list"}"#);
    assert_eq!(status, 401, "bob's token no longer works, without a restart");
    // Nor does the socket he opened before: every connection authenticates again.
    let mut bob_ws = bob_ws;
    // His subscription, opened before, ends with the same refusal (its pushes stop).
    let reloaded = Instant::now();
    let refused = rt.block_on(async {
        loop {
            match bob_ws.next_update(&bob_job).within("bob's next update").await {
                // Pushed before the reload reached the stream (a push a second).
                Ok(JobStatus::Running(_)) if reloaded.elapsed() < Duration::from_secs(10) => continue,
                other => break other,
            }
        }
    });
    match refused {
        Err(noncectl::client::CallError::Rpc(e)) => assert_eq!(e.code, -32003, "{e:?}"),
        other => panic!("a revoked token's subscription still streams: {other:?}"),
    }
    match rt.block_on(bob_ws.list().within("bob lists again")) {
        Err(noncectl::client::CallError::Rpc(e)) => assert_eq!(e.code, -32003, "{e:?}"),
        other => panic!("a revoked token's open WebSocket still works: {other:?}"),
    }
    let second = d.rpc(ALICE, "search.start", long_request());
    assert!(second["result"]["job_id"].is_string(), "alice's new quota applies: {second}");
    // A configuration that does not load changes nothing and ends nothing.
    std::fs::write(&config_path, "this is = not [toml").expect("config");
    hangup_and_wait_for(&d, "SIGHUP: the configuration does not load");
    assert!(d.child.try_wait().expect("wait").is_none(), "the daemon lives: {}", d.log());
    let st = d.rpc(ALICE, "search.status", json!({"job_id": job}));
    assert_eq!(st["result"]["finished"], false, "the first job ran on through every reload: {st}");
    let (status, _) = d.http("POST", "/rpc", Some(BOB), r#"{"jsonrpc":"2.0","id":1,"method":"search.list"}"#);
    assert_eq!(status, 401, "still revoked");
}

/// The socket's answer to `text` (None for a notification): sent with a sentinel request
/// after it on the same connection, so "no answer" is seen, not waited for.
fn socket_answer(socket: &Path, text: &str) -> Option<Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let sentinel = r#"{"jsonrpc":"2.0","method":"daemon.info","id":"sentinel"}"#;
    s.write_all(format!("{text}\n{sentinel}\n").as_bytes()).expect("write");
    let mut answers = Vec::new();
    for line in BufReader::new(s).lines() {
        let v: Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
        if v["id"] == json!("sentinel") {
            break;
        }
        answers.push(v);
    }
    assert!(answers.len() <= 1, "one answer at most: {answers:?}");
    answers.pop()
}

#[test]
fn json_rpc_over_http_answers_the_specifications_cases_as_the_socket_does() {
    let d = Remote::start("spec", "plain = true", "");
    let socket = d.dir.join("nonced.sock");
    let cases: &[(&str, Option<i64>)] = &[
        // (request, the error code expected; None: a result, or no answer at all)
        (r#"{"jsonrpc":"2.0","method":"search.list","id":1}"#, None),
        (r#"{"jsonrpc":"2.0","method":"search.list"}"#, None),
        (r#"[{"jsonrpc":"2.0","method":"search.list"},{"jsonrpc":"2.0","method":"nope"}]"#, None),
        (r#"{"jsonrpc":"2.0","method":"search.list","id":1.5}"#, None),
        (r#"{"jsonrpc":"2.0","method":"search.list","id":"abc"}"#, None),
        (r#"{"jsonrpc":"2.0","method":1,"id":1}"#, Some(-32600)),
        (r#"{"jsonrpc":"2.0","method":"search.list","params":"x","id":2}"#, Some(-32600)),
        (r#"{"jsonrpc":"2.0","method":"nope","id":3}"#, Some(-32601)),
        (r#"{"jsonrpc":"2.0","method":"search.status","params":{"job_id":"zz"},"id":4}"#, Some(-32602)),
        (r#"{"jsonrpc":"2.0","method":"search.list","params":{},"id":"#, Some(-32700)),
        (r#"[]"#, Some(-32600)),
        (r#"{"foo":"bar"}"#, Some(-32600)),
    ];
    for (text, code) in cases {
        let from_socket = socket_answer(&socket, text);
        let (status, head, body) = http_exchange(d.port, "POST", "/rpc", Some(ADMIN), &[], text);
        let from_http: Option<Value> = match status {
            204 => {
                assert!(body.is_empty(), "{text}: 204 with a body: {body}");
                None
            }
            200 => Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("{text}: {e}: {body}"))),
            s => panic!("{text}: HTTP {s}: {head}\n{body}"),
        };
        assert_eq!(from_http, from_socket, "{text}: the two listeners differ");
        if let Some(code) = code {
            let reply = from_http.unwrap_or_else(|| panic!("{text}: an error reply"));
            assert_eq!(reply["error"]["code"], json!(code), "{text}: {reply}");
        }
    }
    // Notifications still run: a cancel sent as one cancels.
    let started = d.rpc(ADMIN, "search.start", long_request());
    let job = s(&started["result"]["job_id"]).to_string();
    let note = json!({"jsonrpc": "2.0", "method": "search.cancel", "params": {"job_id": job}}).to_string();
    assert_eq!(http_exchange(d.port, "POST", "/rpc", Some(ADMIN), &[], &note).0, 204);
    let done = d.rpc(ADMIN, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    assert_eq!(done["result"]["result"]["outcome"], json!("cancelled"), "{done}");
    // As DEPLOY.md shows it: no Content-Type at all is JSON; another type is refused.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"search.list"}"#;
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    use std::io::{Read, Write};
    write!(
        raw,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
        list.len()
    )
    .expect("send");
    let mut reply = String::new();
    let _ = raw.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let form = ("Content-Type", "text/plain");
    assert_eq!(http_exchange(d.port, "POST", "/rpc", Some(ADMIN), &[form], list).0, 415);
}

/// SIGTERM with a call in flight over HTTP: the listener stops taking connections, the call
/// still gets its answer, and the daemon exits 0 after it (mini-redis's shutdown: the work in
/// flight finishes). Before, the network listener's task was aborted and the call cut off.
#[test]
fn sigterm_answers_the_http_call_in_flight_then_exits() {
    let mut d = Remote::start("sigterm", "plain = true", "");
    let started = d.rpc(BOB, "search.start", long_request());
    let job = started["result"]["job_id"].as_str().expect("a job id").to_string();
    let port = d.port;
    // A search.wait that answers after 1.5 s (the job runs for a minute).
    let waiting = std::thread::spawn(move || {
        rpc_over_http(port, BOB, "search.wait", json!({ "job_id": job, "timeout_s": 1.5 }))
    });
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let reply = waiting.join().expect("the caller");
    assert_eq!(
        reply["result"]["finished"],
        json!(false),
        "the call in flight is answered: {reply} {}",
        d.log()
    );
    let t = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().expect("wait") {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "nonced did not exit: {}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "nonced exits 0 after SIGTERM: {status:?} {}", d.log());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "no new connections after shutdown");
}
