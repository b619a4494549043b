//! `nonced` as a user meets it: a real daemon process on a temporary socket.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon, killed on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(name: &str, config: Option<&str>) -> Daemon {
        let dir = std::env::temp_dir().join(format!("nonced-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Daemon::start_in(dir, config, &[])
    }

    fn start_in(dir: PathBuf, config: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        let socket = dir.join("nonced.sock");
        let mut cmd = Command::new(bin("nonced"));
        cmd.arg("--socket").arg(&socket).arg("--state-dir").arg(dir.join("state"));
        if let Some(text) = config {
            let path = dir.join("nonced.toml");
            std::fs::write(&path, text).expect("config");
            cmd.arg("--config").arg(path);
        }
        cmd.env("NONCE_LOG", "warn").envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("nonced starts");
        let d = Daemon { child, dir, socket };
        let t = Instant::now();
        while UnixStream::connect(&d.socket).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "nonced did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn cli(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        let sock = self.socket.to_str().expect("utf-8 path");
        all.extend(["--socket", sock]);
        noncectl_json(&all)
    }

    /// SIGKILLs the daemon and starts another on the same state (its journal) and socket.
    fn killed_and_restarted(mut self, config: Option<&str>) -> Daemon {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        let dir = self.dir.clone();
        std::mem::forget(self);
        std::fs::remove_file(dir.join("nonced.sock")).ok();
        Daemon::start_in(dir, config, &[])
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One JSON-RPC exchange on a fresh connection.
fn rpc(socket: &Path, text: &str) -> Option<Value> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(text.as_bytes()).expect("write");
    s.write_all(b"\n").expect("write");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    (!line.is_empty()).then(|| serde_json::from_str(&line).expect("reply is JSON"))
}

fn call(socket: &Path, method: &str, params: Value) -> Value {
    rpc(socket, &json!({"jsonrpc":"2.0","method":method,"params":params,"id":1}).to_string())
        .expect("a reply")
}

#[test]
fn searches_through_the_daemon_give_the_reference_answers() {
    let d = Daemon::start("reference", None);
    let mode = std::fs::metadata(&d.socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let g = golden();
    for case in g["lowest"].as_array().expect("cases").iter().step_by(7) {
        let range = range_arg(case);
        let d10 = case["difficulty"].to_string();
        let (code, v) = d.cli(&[
            "search",
            "--block-hex",
            s(&case["block_hex"]),
            "--encoding",
            s(&case["encoding"]),
            "--difficulty",
            &d10,
            "--mode",
            "lowest",
            "--range",
            &range,
        ]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "{}", s(&case["name"]));
    }
    // The container health check.
    let ok = Command::new(bin("nonced"))
        .arg("--health-check")
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .expect("runs");
    assert_eq!(ok.status.code(), Some(0));
    let missing = Command::new(bin("nonced"))
        .args(["--health-check", "--socket", "/nonexistent/nonced.sock"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    let said = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(said.trim().lines().count(), 1, "a failed health check says why once: {said}");
    assert!(missing.stdout.is_empty(), "and logs nothing: {}", String::from_utf8_lossy(&missing.stdout));
    let (code, v) = d.cli(&["jobs"]);
    assert_eq!(code, 0);
    assert!(v.as_array().expect("list").len() >= 10);
    let out = noncectl(&["status", "0123456789abcdef", "--socket", d.socket.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(4), "an unknown job");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job 0123456789abcdef"));
}

#[test]
fn fifty_concurrent_clients_are_served() {
    let d = Daemon::start(
        "fifty",
        Some("[quotas]\nmax_concurrent_jobs = 64\nmax_fleet = 512\nmax_workers_per_job = 8\n"),
    );
    let want: Vec<u64> = (0..50u64)
        .map(|i| {
            let p = protocol::Puzzle::append(format!("client-{i}").into_bytes(), protocol::Encoding::Be32, 8)
                .expect("valid");
            (0..).find(|&n| protocol::verify(&p, n).golden).expect("a golden nonce")
        })
        .collect();
    let handles: Vec<_> = (0..50u64)
        .map(|i| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let info = call(&socket, "daemon.info", json!({}));
                assert!(info["result"]["pid"].is_number(), "{info}");
                let started = call(
                    &socket,
                    "search.start",
                    json!({"block": format!("client-{i}"), "difficulty": 8, "mode": "lowest", "workers": 1, "range": "0..200000"}),
                );
                let job = started["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{started}")).to_string();
                let done = call(&socket, "search.wait", json!({"job_id": job, "timeout_s": 60}));
                done["result"]["result"]["nonce"].as_u64().unwrap_or_else(|| panic!("{done}"))
            })
        })
        .collect();
    let got: Vec<u64> = handles.into_iter().map(|h| h.join().expect("client thread")).collect();
    assert_eq!(got, want);
}

#[test]
fn malformed_input_gets_errors_and_the_daemon_keeps_serving() {
    let mut d = Daemon::start("malformed", None);
    let code = |v: &Value| v["error"]["code"].as_i64().expect("an error reply");
    // Random bytes (not UTF-8, not JSON).
    let junk: Vec<u8> =
        (0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).filter(|&b| b != b'\n').collect();
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.write_all(&junk).and_then(|_| s.write_all(b"\n")).expect("write");
    let mut line = String::new();
    BufReader::new(s.try_clone().expect("clone")).read_line(&mut line).expect("reply");
    assert_eq!(code(&serde_json::from_str(&line).expect("json")), -32700);
    // A 10 MB line: an error, then the connection closes.
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let big = vec![b'x'; 10 << 20];
    let _ = s.write_all(&big); // the daemon may close while we are still writing
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    if !reply.is_empty() {
        let v: Value = serde_json::from_str(reply.lines().next().expect("a line")).expect("json");
        assert_eq!(code(&v), -32600);
        assert!(v["error"]["data"]["reason"].as_str().expect("reason").contains("exceeds"));
    }
    // Wrong types, unknown methods, bad params.
    assert_eq!(code(&rpc(&d.socket, r#"{"jsonrpc":"2.0","method":7,"id":1}"#).expect("reply")), -32600);
    assert_eq!(
        code(&rpc(&d.socket, r#"{"jsonrpc":"2.0","method":"search.nope","id":1}"#).expect("reply")),
        -32601
    );
    let bad = call(&d.socket, "search.start", json!({"block": "x", "difficulty": "hard"}));
    assert_eq!(code(&bad), -32602);
    let bad = call(&d.socket, "search.start", json!({"block": "x", "difficulty": 300}));
    assert_eq!(code(&bad), -32602);
    assert!(bad["error"]["data"]["reason"].as_str().expect("reason").contains("256"));
    let bad = call(&d.socket, "search.status", json!({"job_id": "zz"}));
    assert_eq!(code(&bad), -32602);
    let bad = call(&d.socket, "search.status", json!({"job_id": "00000000000000ff"}));
    assert_eq!(code(&bad), -32000);
    // Quotas: a clear application error with data.
    let q = call(&d.socket, "search.start", json!({"block": "x", "difficulty": 3, "workers": 65}));
    assert_eq!(code(&q), -32001);
    assert_eq!(q["error"]["data"]["quota"], "max_workers_per_job");
    // Batches and notifications per the spec.
    let batch = rpc(
        &d.socket,
        r#"[{"jsonrpc":"2.0","method":"daemon.info","id":1},{"jsonrpc":"2.0","method":"daemon.info"},3]"#,
    )
    .expect("reply");
    assert_eq!(batch.as_array().map(Vec::len), Some(2));
    // Half a JSON text, then hang up.
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.write_all(br#"{"jsonrpc":"2.0","meth"#).expect("write");
    drop(s);
    // Still serving, still alive.
    assert!(call(&d.socket, "daemon.info", json!({}))["result"]["pid"].is_number());
    assert!(d.alive());
}

#[test]
fn sigterm_keeps_running_jobs_and_the_next_start_resumes_them() {
    let d = Daemon::start("resume", None);
    let started = call(&d.socket, "search.start", json!({"block": "x", "difficulty": 200, "workers": 1}));
    let job = started["result"]["job_id"].as_str().expect("job").to_string();
    let finished = call(&d.socket, "search.start", json!({"block": "x", "difficulty": 1, "workers": 1}));
    let done_job = finished["result"]["job_id"].as_str().expect("job").to_string();
    let r = call(&d.socket, "search.wait", json!({"job_id": done_job, "timeout_s": 30}));
    assert_eq!(r["result"]["finished"], true);
    let mut d = d;
    let pid = d.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().expect("wait") {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no graceful exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists(), "the socket is removed on shutdown");
    // Restart on the same state directory: the finished job's result is still there and the
    // running one is running again.
    let dir = d.dir.clone();
    std::mem::forget(d); // keep the directory; the new daemon owns it now
    let d2 = Daemon::start_in(dir, None, &[]);
    let old = call(&d2.socket, "search.status", json!({"job_id": done_job}));
    assert_eq!(old["result"]["finished"], true, "{old}");
    let resumed = call(&d2.socket, "search.status", json!({"job_id": job}));
    assert_eq!(resumed["result"]["finished"], false, "{resumed}");
    let c = call(&d2.socket, "search.cancel", json!({"job_id": job}));
    assert_eq!(c["result"]["cancelling"], true);
    let r = call(&d2.socket, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    assert_eq!(r["result"]["result"]["outcome"], "cancelled");
}

#[test]
fn ready_is_sent_to_the_notify_socket() {
    let dir = std::env::temp_dir().join(format!("nonced-e2e-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _d = Daemon::start_in(dir, None, &[("NOTIFY_SOCKET", notify_path.to_str().expect("utf-8"))]);
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("a notification");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.lines().any(|l| l == "READY=1"), "{text:?}");
}

#[test]
fn ctrl_c_on_a_client_search_cancels_the_daemons_job() {
    let d = Daemon::start("ctrlc", None);
    let child = Command::new(bin("noncectl"))
        .args(["search", "--block", "x", "--difficulty", "200", "--json", "--socket"])
        .arg(&d.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("noncectl starts");
    std::thread::sleep(Duration::from_millis(800));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill").success());
    let out = child.wait_with_output().expect("exits");
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["outcome"], "cancelled");
    let jobs = call(&d.socket, "search.list", json!({}));
    let job = &jobs["result"][0];
    assert_eq!(
        (job["state"].as_str(), job["outcome"].as_str()),
        (Some("finished"), Some("cancelled")),
        "{jobs}"
    );
}

#[test]
fn sigkill_mid_job_then_restart_resumes_from_the_journal_with_the_right_answer() {
    let mut d = Daemon::start("sigkill", None);
    // The lowest d=27 nonce of "sup-a" is 213623294 (see supervision.rs): several seconds of work.
    let started = call(
        &d.socket,
        "search.start",
        json!({"block": "sup-a", "difficulty": 27, "mode": "lowest", "workers": 2}),
    );
    let job = started["result"]["job_id"].as_str().expect("job").to_string();
    // Past two progress records (one a second), well before the answer (~5 s of work here).
    std::thread::sleep(Duration::from_millis(2500));
    let before = call(&d.socket, "search.status", json!({"job_id": job}));
    let searched_before = before["result"]["searched"].as_u64().expect("searched");
    assert!(searched_before > 0, "{before}");
    d.child.kill().expect("SIGKILL");
    let _ = d.child.wait();
    let journal = std::fs::read_to_string(d.dir.join("state/journal.jsonl")).expect("journal");
    assert!(journal.contains("\"type\":\"progress\""), "progress is journaled");
    let dir = d.dir.clone();
    std::mem::forget(d);
    std::fs::remove_file(dir.join("nonced.sock")).ok(); // a crash leaves the socket behind
    let d2 = Daemon::start_in(dir, None, &[]);
    // The resumed job starts from the journaled progress, not from zero.
    let resumed = call(&d2.socket, "search.status", json!({"job_id": job}));
    let resumed_from = resumed["result"]["searched"].as_u64().unwrap_or(u64::MAX);
    assert!(resumed_from > 0, "{resumed}");
    let r = call(&d2.socket, "search.wait", json!({"job_id": job, "timeout_s": 120}));
    assert_eq!(r["result"]["finished"], true, "{r}");
    let result = &r["result"]["result"];
    assert_eq!(result["nonce"], 213_623_294u64, "{r}");
    // Its rate is this life's: the resumed nonces are not counted as hashed in this life's time.
    let (searched, rate, elapsed) = (
        result["searched"].as_u64().expect("searched") as f64,
        result["rate"].as_f64().expect("rate"),
        result["elapsed_s"].as_f64().expect("elapsed"),
    );
    // (Before, rate x elapsed was all lives' nonces: `searched`.)
    assert!(rate * elapsed < searched - resumed_from as f64 / 2.0, "{result}");
}

#[test]
fn the_daemon_learns_startups_keeps_them_across_a_restart_and_plans_with_them() {
    let d = Daemon::start("startup", None);
    let planned = json!({"block": "learn", "difficulty": 12, "max_time": "20s", "confidence": 0.9});
    let r = call(&d.socket, "search.start", planned.clone());
    let plan = &r["result"]["plan"];
    assert_eq!(plan["startup_source"], "default", "no history yet: {r}");
    assert_eq!(plan["startup_s"], 0.002, "{r}");
    let first = r["result"]["job_id"].as_str().expect("job").to_string();
    let r = call(&d.socket, "search.start", json!({"block": "learn", "difficulty": 12, "workers": 3}));
    let second = r["result"]["job_id"].as_str().expect("job").to_string();
    for job in [first, second] {
        let w = call(&d.socket, "search.wait", json!({"job_id": job, "timeout_s": 30}));
        assert_eq!(w["result"]["finished"], true, "{w}");
    }
    let file = d.dir.join("state").join("startup.json");
    let book: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("history saved")).expect("JSON");
    let samples: Vec<f64> = book["launchers"]["threads"]["samples"]
        .as_array()
        .expect("threads history")
        .iter()
        .map(|s| s.as_f64().expect("seconds"))
        .collect();
    assert!(samples.len() >= 2, "one sample per worker that said Hello: {samples:?}");
    // SIGKILL: nothing is saved at shutdown, the history was saved as each job finished.
    let mut d = d;
    let _ = d.child.kill();
    let _ = d.child.wait();
    let dir = d.dir.clone();
    std::mem::forget(d);
    let d2 = Daemon::start_in(dir, None, &[]);
    let r = call(&d2.socket, "search.start", planned);
    let plan = &r["result"]["plan"];
    assert_eq!(plan["startup_source"], format!("measured p95 of {} samples", samples.len()), "{r}");
    let max = samples.iter().copied().fold(0.0, f64::max);
    assert_eq!(plan["startup_s"].as_f64(), Some(max), "fewer than 20 samples: p95 is the largest: {r}");
}

/// The daemon calibrates its hash rate at start and keeps the figure in its state directory,
/// beside its journal: a service account needs no home, and a user's `noncectl bench` does not
/// stand for the daemon's binary.
#[test]
fn the_daemon_keeps_its_calibration_in_its_state_directory() {
    let dir = std::env::temp_dir().join(format!("nonced-e2e-calibration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("temp dir");
    let home_text = home.to_str().expect("utf-8 path");
    let d = Daemon::start_in(dir, None, &[("HOME", home_text), ("XDG_CACHE_HOME", home_text)]);
    let file = d.dir.join("state").join("calibration.json");
    let t = Instant::now();
    while !file.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "no calibration in {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
    let rate = saved[0]["per_thread"].as_f64().expect("a rate");
    assert!(rate > 1e5, "a measured rate: {saved}");
    assert!(!home.join("nonce-cloud").exists(), "nothing written to the home or cache directory");
    let mode = std::fs::metadata(&file).expect("calibration").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the daemon's alone, like the journal beside it: {mode:o}");
}

/// One JSON-RPC exchange on the socket as another local account (uid 1001, group `users`),
/// through Debian's `setpriv` and the system Python: the daemon knows it by SO_PEERCRED.
fn call_as_uid_1001(socket: &Path, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc":"2.0","method":method,"params":params,"id":1}).to_string();
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  s.sendall(sys.argv[2].encode()+b'\\n')\nf=s.makefile()\nprint(f.readline(),end='')";
    let out = Command::new("setpriv")
        .args(["--reuid=1001", "--regid=100", "--clear-groups", "/usr/bin/python3", "-c", script])
        .arg(socket)
        .arg(request)
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reply is JSON")
}

#[test]
fn local_users_reach_only_their_own_jobs_and_admins_reach_all() {
    let config = "socket_group = \"users\"\n[[users]]\nname = \"bob\"\nrole = \"user\"\nuid = 1001\n";
    let d = Daemon::start("owners", Some(config));
    let long = json!({"block": "owners", "difficulty": 200, "workers": 1, "threads": 1, "max_time": "60s"});
    // Root is an admin: its job is its own, and it sees everything.
    let a = call(&d.socket, "search.start", long.clone());
    let job_a = s(&a["result"]["job_id"]).to_string();
    // bob (uid 1001) cannot see, wait on or cancel it: to him it does not exist.
    for method in ["search.status", "search.cancel", "search.wait"] {
        let r = call_as_uid_1001(&d.socket, method, json!({"job_id": job_a}));
        assert_eq!(r["error"]["code"], -32000, "{method}: {r}");
    }
    let r = call_as_uid_1001(&d.socket, "workers.list", json!({"job_id": job_a}));
    assert_eq!(r["error"]["code"], -32000, "{r}");
    let r = call_as_uid_1001(&d.socket, "daemon.info", json!({}));
    assert_eq!(r["error"]["code"], -32003, "daemon.info is for admins: {r}");
    // His own job he reaches; the list shows only it.
    let b = call_as_uid_1001(&d.socket, "search.start", long);
    let job_b = s(&b["result"]["job_id"]).to_string();
    let mine = call_as_uid_1001(&d.socket, "search.list", json!({}));
    let ids: Vec<&str> = mine["result"].as_array().expect("a list").iter().map(|j| s(&j["job_id"])).collect();
    assert_eq!(ids, vec![job_b.as_str()], "{mine}");
    assert_eq!(mine["result"][0]["owner"], "bob");
    let st = call_as_uid_1001(&d.socket, "search.status", json!({"job_id": job_b}));
    assert!(st["result"]["job_id"] == json!(job_b), "{st}");
    // The admin sees both and may cancel bob's.
    let all = call(&d.socket, "search.list", json!({}));
    assert_eq!(all["result"].as_array().expect("a list").len(), 2, "{all}");
    for job in [&job_a, &job_b] {
        let c = call(&d.socket, "search.cancel", json!({"job_id": job}));
        assert_eq!(c["result"]["cancelling"], true, "{c}");
    }
    assert!(call(&d.socket, "daemon.info", json!({}))["result"]["pid"].is_number());
}

#[test]
fn quotas_bite_per_user_and_a_days_usage_survives_a_restart() {
    let config =
        "socket_group = \"users\"\n[user_quotas]\nmax_workers_per_job = 2\nmax_concurrent_jobs = 1\n\
                  max_vcpu_seconds_per_day = 3\n[[users]]\nname = \"bob\"\nrole = \"user\"\nuid = 1001\n";
    let d = Daemon::start("quotas", Some(config));
    let job = |workers: u32| json!({"block": "quota", "difficulty": 200, "workers": workers, "threads": 1});
    let refused = |r: &Value, quota: &str| {
        assert_eq!(r["error"]["code"], -32001, "{r}");
        assert_eq!(r["error"]["data"]["quota"], format!("user bob: {quota}"), "{r}");
    };
    refused(&call_as_uid_1001(&d.socket, "search.start", job(3)), "max_workers_per_job");
    // Past the daemon's limit too: still the user's own limit, as a count.
    let r = call_as_uid_1001(&d.socket, "search.start", job(100));
    refused(&r, "max_workers_per_job");
    assert_eq!(
        (r["error"]["data"]["limit"].clone(), r["error"]["data"]["requested"].clone()),
        (json!(2), json!(100)),
        "{r}"
    );
    // Three vCPU-seconds a day on one thread: the job's deadline is cut to 3 s.
    let first = call_as_uid_1001(&d.socket, "search.start", job(1));
    let deadline = first["result"]["plan"]["deadline_s"].as_f64().expect("a deadline");
    assert!(deadline > 0.0 && deadline <= 3.0, "{first}");
    refused(&call_as_uid_1001(&d.socket, "search.start", job(1)), "max_concurrent_jobs");
    // An admin is bound by the daemon's quotas only.
    let admin = call(
        &d.socket,
        "search.start",
        json!({"block": "quota", "difficulty": 200, "workers": 3, "max_time": "1s"}),
    );
    assert!(admin["result"]["job_id"].is_string(), "{admin}");
    let id = s(&first["result"]["job_id"]).to_string();
    let done = call_as_uid_1001(&d.socket, "search.wait", json!({"job_id": id, "timeout_s": 30}));
    assert_eq!(done["result"]["result"]["outcome"], "timed_out", "{done}");
    refused(&call_as_uid_1001(&d.socket, "search.start", job(1)), "max_vcpu_seconds_per_day");
    // The day's usage is in the journal: a restarted daemon still refuses.
    let d2 = d.killed_and_restarted(Some(config));
    refused(&call_as_uid_1001(&d2.socket, "search.start", job(1)), "max_vcpu_seconds_per_day");
}

/// Resident memory of process `pid`, in KiB (from /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Runs jobs `from..to` (one worker, found at once) through the daemon, two clients at once.
fn short_jobs(socket: &Path, from: u64, to: u64) -> Vec<String> {
    let half = from + (to - from) / 2;
    let handles: Vec<_> = [(from, half), (half, to)]
        .into_iter()
        .map(|(a, b)| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                (a..b)
                    .map(|i| {
                        let started = call(
                            &socket,
                            "search.start",
                            json!({"block": format!("soak-{i}"), "difficulty": 1, "mode": "first", "workers": 1, "threads": 1, "range": "0..4096"}),
                        );
                        let job = s(&started["result"]["job_id"]).to_string();
                        let done = call(&socket, "search.wait", json!({"job_id": job, "timeout_s": 30}));
                        assert_eq!(done["result"]["result"]["outcome"], "found", "{done}");
                        job
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
}

#[test]
fn sixteen_thousand_finished_jobs_leave_the_daemons_memory_flat() {
    // The default keep_finished (1,000): the newest thousand stay, older ones are forgotten.
    let d = Daemon::start("soak", Some("[quotas]\nmax_concurrent_jobs = 64\n"));
    let pid = d.child.id();
    // Each job's actor lingers 5 s after its end: measure past that, both times.
    let linger = Duration::from_secs(6);
    // Measured from 4,000 jobs on, not 1,000: the allocator's slack grows for the first few
    // thousand and then stays (measured over 25,000 jobs: +1.8 MiB by 4,000, +1.2 MiB more by
    // 13,000, flat after), and by how much differed between machines (CI's grew 8.1 MiB from
    // 1,000 to 10,000 jobs, this one's 2.2), while a leak grows with every job.
    let first = short_jobs(&d.socket, 0, 4000);
    std::thread::sleep(linger);
    let warm = rss_kib(pid);
    let rest = short_jobs(&d.socket, 4000, 16_000);
    std::thread::sleep(linger);
    let after_all = rss_kib(pid);
    eprintln!(
        "nonced resident: {:.1} MiB after 4,000 jobs, {:.1} MiB after 16,000 ({:+.1} MiB)",
        warm as f64 / 1024.0,
        after_all as f64 / 1024.0,
        (after_all as f64 - warm as f64) / 1024.0
    );
    // Slack of a few MiB at most; a leak of 600 bytes a job failed this at +8.6 MiB (planted
    // in `keep_finished` to check; the daemon once kept ~12 KB a finished job).
    assert!(after_all <= warm + 6 * 1024, "{warm} KiB after 4,000 jobs, {after_all} KiB after 16,000");
    // What is remembered: the newest thousand, and nothing older.
    let list = call(&d.socket, "search.list", json!({}));
    assert_eq!(list["result"].as_array().map(Vec::len), Some(1000), "the newest 1,000 are listed");
    let newest = call(&d.socket, "search.status", json!({"job_id": rest.last().expect("a job")}));
    assert_eq!(newest["result"]["finished"], true, "{newest}");
    let oldest = call(&d.socket, "search.status", json!({"job_id": first[0]}));
    assert_eq!(oldest["error"]["code"], -32000, "a forgotten job is not found: {oldest}");
    // And the journal stays bounded too: forgotten jobs leave it at each compaction.
    let lines = std::fs::read_to_string(d.dir.join("state/journal.jsonl")).expect("journal").lines().count();
    assert!(lines < 15_000, "{lines} journal lines after 16,000 jobs");
}

#[test]
fn a_forgotten_jobs_spend_still_counts_against_its_owners_day() {
    // keep_finished = 1: bob's job is forgotten as soon as another one finishes.
    let config = "keep_finished = 1\nsocket_group = \"users\"\n[user_quotas]\nmax_concurrent_jobs = 1\n\
                  max_vcpu_seconds_per_day = 3\n[[users]]\nname = \"bob\"\nrole = \"user\"\nuid = 1001\n";
    let d = Daemon::start("forgotten-quota", Some(config));
    let job = json!({"block": "quota", "difficulty": 200, "workers": 1, "threads": 1});
    let refused = |r: &Value| {
        assert_eq!(r["error"]["code"], -32001, "{r}");
        assert_eq!(r["error"]["data"]["quota"], "user bob: max_vcpu_seconds_per_day", "{r}");
    };
    let first = call_as_uid_1001(&d.socket, "search.start", job.clone());
    let id = s(&first["result"]["job_id"]).to_string();
    let done = call_as_uid_1001(&d.socket, "search.wait", json!({"job_id": id, "timeout_s": 30}));
    assert_eq!(done["result"]["result"]["outcome"], "timed_out", "{done}");
    // An admin's job finishes after it: bob's is forgotten...
    let other = call(
        &d.socket,
        "search.start",
        json!({"block": "x", "difficulty": 1, "workers": 1, "range": "0..64"}),
    );
    let other_id = s(&other["result"]["job_id"]).to_string();
    call(&d.socket, "search.wait", json!({"job_id": other_id, "timeout_s": 30}));
    let gone = call_as_uid_1001(&d.socket, "search.status", json!({"job_id": id}));
    assert_eq!(gone["error"]["code"], -32000, "forgotten: {gone}");
    // ...but what it spent today still counts, before and after a restart.
    refused(&call_as_uid_1001(&d.socket, "search.start", job.clone()));
    let d2 = d.killed_and_restarted(Some(config));
    refused(&call_as_uid_1001(&d2.socket, "search.start", job));
    let gone = call_as_uid_1001(&d2.socket, "search.status", json!({"job_id": id}));
    assert_eq!(gone["error"]["code"], -32000, "still forgotten after a restart: {gone}");
}

#[test]
fn daemon_commands_with_a_closed_stdout_end_quietly() {
    let d = Daemon::start("pipes", None);
    let started = call(
        &d.socket,
        "search.start",
        json!({"block": "pipes", "difficulty": 1, "workers": 1, "range": "0..64"}),
    );
    let job = s(&started["result"]["job_id"]).to_string();
    call(&d.socket, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    let sock = d.socket.to_str().expect("utf-8 path");
    for args in [vec!["jobs"], vec!["status", &job], vec!["wait", &job], vec!["workers"]] {
        let mut all = args.clone();
        all.extend(["--socket", sock]);
        let (code, stderr) = with_closed_stdout(&all);
        assert!(!stderr.contains("panicked"), "noncectl {all:?} panicked: {stderr}");
        assert_eq!(code, Some(0), "noncectl {all:?}: {stderr}");
    }
}

/// `noncectl` against a daemon as an operator uses it: tables for people, `--json` with one
/// type per field (a whole 64-bit space's `total` exact), flags before or after the command
/// and a flag beating its environment variable, and one documented exit code per kind of
/// failure (README, "Exit codes"), each refusal one readable line.
#[test]
fn operator_commands_print_tables_take_flags_anywhere_and_exit_distinctly() {
    let d = Daemon::start("operator", Some("[quotas]\nmax_workers_per_job = 4\n"));
    let sock = d.socket.to_str().expect("utf-8 path");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(bin("noncectl"))
            .args(args)
            .env("NONCE_LOG", "error")
            .envs(env.iter().copied())
            .output()
            .expect("noncectl runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["jobs", "--socket", sock], &[]);
    assert_eq!((code, out.trim()), (Some(0), "no jobs"), "an empty list says so");

    // One job found, one running over the whole 64-bit space (its total is 2^64).
    let found = call(&d.socket, "search.start", json!({"block": "tables", "difficulty": 8, "workers": 1}));
    let found = s(&found["result"]["job_id"]).to_string();
    call(&d.socket, "search.wait", json!({"job_id": found, "timeout_s": 30}));
    let big = call(
        &d.socket,
        "search.start",
        json!({"block": "tables", "difficulty": 200, "encoding": "be64", "workers": 1, "threads": 1}),
    );
    let big = s(&big["result"]["job_id"]).to_string();

    // A request's durations take a number of seconds as well as text (as flags do).
    let timed = call(
        &d.socket,
        "search.start",
        json!({"block": "tables", "difficulty": 200, "workers": 1, "max_time": 0.5}),
    );
    let timed = s(&timed["result"]["job_id"]).to_string();
    let waited = call(&d.socket, "search.wait", json!({"job_id": timed, "timeout_s": 30}));
    assert_eq!(waited["result"]["result"]["outcome"], "timed_out", "{waited}");
    let bad = call(&d.socket, "search.start", json!({"block": "t", "difficulty": 8, "max_time": true}));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // Flags before the subcommand, after it, and --json anywhere.
    for args in [vec!["--socket", sock, "jobs"], vec!["jobs", "--socket", sock]] {
        let (code, out, err) = run(&args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("JOB ") && lines[0].contains("STATE") && lines[0].contains("RATE"),
            "{out}"
        );
        assert_eq!(lines.len(), 4, "a header and three rows: {out}");
        let row = lines.iter().find(|l| l.starts_with(&big)).expect("the big job's row");
        assert!(row.contains("running") && row.contains("1/1"), "{row}");
        let row = lines.iter().find(|l| l.starts_with(&found)).expect("the found job's row");
        assert!(row.contains("found"), "{row}");
    }
    let (code, out, err) = run(&["--json", "jobs", "--socket", sock], &[]);
    assert_eq!(code, Some(0), "{err}");
    let jobs: Vec<Value> = serde_json::from_str(&out).expect("a JSON array");
    let keys = |v: &Value| v.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&jobs[0]), keys(&jobs[1]), "every item has every field");
    assert_eq!(keys(&jobs[1]), keys(&jobs[2]), "every item has every field");
    for j in &jobs {
        assert!(j["total"].is_u64() || j["job_id"] == json!(big), "total an integer: {j}");
        assert!(j["elapsed_s"].is_f64(), "elapsed_s one type: {j}");
        assert!(j["rate"].is_f64(), "rate one type: {j}");
    }
    let big_item = jobs.iter().find(|j| j["job_id"] == json!(big)).expect("listed");
    assert_eq!(big_item["total"].to_string(), "18446744073709551616", "exact, not a float");
    // Its status and its workers, as text and as JSON (the status used to fail on 2^64).
    let (code, out, err) = run(&["status", &big, "--socket", sock], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("{big}: running")) && out.contains("of 18446744073709551616 nonces"),
        "{out}"
    );
    let (code, out, _) = run(&["status", &big, "--socket", sock, "--json"], &[]);
    assert_eq!(code, Some(0));
    let st: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(st["total"].to_string(), "18446744073709551616");
    let (code, out, err) = run(&["workers", "--socket", sock], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.lines().next().is_some_and(|h| h.starts_with("JOB ") && h.contains("HEALTH")), "{out}");
    assert!(out.lines().nth(1).is_some_and(|r| r.starts_with(&big) && r.contains("live")), "{out}");
    let (_, out, _) = run(&["status", "--socket", sock], &[]);
    assert!(out.starts_with("nonced ") && out.contains("1 running, 3 known"), "{out}");
    assert!(out.contains("http       off") && out.contains("users      0 configured"), "{out}");

    // A flag on the command line beats its environment variable.
    let (code, out, err) =
        run(&["jobs", "--socket", sock, "--json"], &[("NONCE_ENDPOINT", "https://nonced.invalid")]);
    assert_eq!(code, Some(0), "--socket beats NONCE_ENDPOINT: {err}");
    assert!(out.starts_with('['));
    let (code, _, err) =
        run(&["jobs"], &[("NONCE_SOCKET", sock), ("NONCE_ENDPOINT", "https://nonced.invalid")]);
    assert_eq!(code, Some(2), "both from the environment is ambiguous: {err}");

    // Exit codes, each failure one line.
    let one_line = |err: &str| {
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!err.contains('{'), "readable, not a JSON dump: {err}");
    };
    let (code, _, err) = run(&["status", "0123456789abcdef", "--socket", sock], &[]);
    assert_eq!(code, Some(4), "no such job: {err}");
    one_line(&err);
    let (code, _, err) = run(&["status", "not-a-job", "--socket", sock], &[]);
    assert_eq!(code, Some(2), "a malformed id is bad input: {err}");
    one_line(&err);
    let (code, _, err) =
        run(&["search", "--block", "q", "--difficulty", "8", "--workers", "8", "--socket", sock], &[]);
    assert_eq!(code, Some(6), "a quota refusal: {err}");
    one_line(&err);
    assert!(err.contains("max_workers_per_job") && err.contains('8') && err.contains('4'), "{err}");
    let (code, _, err) = run(&["jobs", "--socket", "/nonexistent/nonced.sock"], &[]);
    assert_eq!(code, Some(7), "no daemon there: {err}");
    one_line(&err);
    // What the daemon lacks, only its operator can give: no flag to try that it then refuses.
    let (code, _, err) =
        run(&["search", "--block", "q", "--difficulty", "8", "--transport", "aws", "--socket", sock], &[]);
    assert_eq!(code, Some(2), "{err}");
    one_line(&err);
    assert!(err.contains("this daemon has no aws transport") && !err.contains("--aws-prefix"), "{err}");
    // Cancelled: `status` reports it (0); `wait` gives the search's exit code (130).
    let (code, out, _) = run(&["cancel", &big, "--socket", sock], &[]);
    assert_eq!((code, out.trim()), (Some(0), format!("cancelling {big}").as_str()));
    let (code, _, _) = run(&["wait", &big, "--socket", sock], &[]);
    assert_eq!(code, Some(130));
    let (code, out, _) = run(&["status", &big, "--socket", sock], &[]);
    assert_eq!(code, Some(0), "status told: {out}");
    assert!(out.starts_with("cancelled"), "{out}");
    let (code, out, _) = run(&["cancel", &found, "--socket", sock], &[]);
    assert_eq!((code, out.trim()), (Some(0), format!("{found} had already ended: found").as_str()));
}
