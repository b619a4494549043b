//! Supervision over the AWS emulator with real `nonce-worker` processes: a worker stopped
//! or killed mid-search, the daemon killed mid-job and restarted, and a coordinator gone for
//! good. The answer stays the reference one; no worker and no inbox outlives its job.

mod common;
use common::emulator::Emulator;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lowest nonce of `sup-a` at difficulty 27 (see supervision.rs); inside the range below.
const REFERENCE: u64 = 213_623_294;
const SEARCH: [&str; 11] = [
    "search",
    "--block",
    "sup-a",
    "--difficulty",
    "27",
    "--mode",
    "lowest",
    "--range",
    "0..240000000",
    "--workers",
    "3",
];
/// Fast liveness for tests: a stall is noticed in 2 s.
const TIMINGS: [&str; 6] = ["--heartbeat", "500ms", "--stall-timeout", "2s", "--orphan-timeout", "4s"];

fn wait_gone(pids: &[String], within: Duration, what: &str) -> Duration {
    let t = Instant::now();
    while pids.iter().any(|p| running(p)) {
        assert!(t.elapsed() < within, "{what}: workers still running after {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

/// The reference search over aws on 3 process workers, doing `disturb` to one a second in.
fn disturbed_search(name: &str, disturb: impl FnOnce(&str)) -> (Emulator, Value) {
    let em = Emulator::get(name);
    let child = em
        .noncectl()
        .args(SEARCH)
        .args(TIMINGS)
        .args(["--launcher", "process", "--json"])
        .args(em.aws_flags())
        .stdout(Stdio::piped())
        .spawn()
        .expect("noncectl starts");
    let pids = worker_pids(child.id(), 3);
    assert_eq!(pids.len(), 3, "three worker processes");
    std::thread::sleep(Duration::from_secs(1));
    disturb(&pids[1]);
    let out = child.wait_with_output().expect("noncectl ends");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(0), "{v}");
    wait_gone(&pids, Duration::from_secs(6), "after the job");
    assert_eq!(em.inboxes(), Vec::<String>::new(), "no inbox outlives the job (dead workers' are swept)");
    assert_eq!(em.subscriptions(), 0, "no subscription outlives the job");
    (em, v)
}

#[test]
fn a_stopped_worker_is_resharded_and_its_late_messages_change_nothing() {
    let (_, v) = disturbed_search("sigstop", |pid| stall_then_wake(pid, Duration::from_secs(4)));
    assert_eq!(v["nonce"], REFERENCE, "{v}");
    assert!(v["stalls"].as_u64().expect("stalls") >= 1, "{v}");
    assert!(v["reshards"].as_u64().expect("reshards") >= 1, "{v}");
}

/// CPU time (user + system, in clock ticks) `pid` has used.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// The scenario with no timing flags: the aws defaults (heartbeat 9 s, stall timeout
/// 21 s) must take a hung worker's range away within 30 s, and the job must end on the others.
#[test]
fn with_the_default_timings_a_hung_worker_loses_its_range_within_30_seconds() {
    let em = Emulator::get("defaults");
    let mut child = em
        .noncectl()
        .args(["search", "--block", "COMSM0010cloud", "--difficulty", "40", "--mode", "exhaustive"])
        .args(["--range", "0..400000000", "--workers", "3", "--launcher", "process", "--json"])
        .args(em.aws_flags())
        // The supervisor's decisions, to time the re-shard from outside.
        .env("NONCE_LOG", "nonce_core=warn,error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("noncectl starts");
    let pids = worker_pids(child.id(), 3);
    assert_eq!(pids.len(), 3, "three worker processes");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("re-sharding a lost worker's range") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    // Stop it once it hashes (it has its shard): on a loaded machine a worker may take
    // seconds to create its inbox, say Hello and get its Assign through the emulator.
    let t = Instant::now();
    while cpu_ticks(&pids[1]) < 50 {
        assert!(t.elapsed() < Duration::from_secs(60), "worker {} never started hashing", pids[1]);
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-STOP", &pids[1]);
    let stopped = Instant::now();
    let resharded = rx.recv_timeout(Duration::from_secs(60)).expect("the hung worker's range is re-sharded");
    let delay = resharded - stopped;
    signal("-CONT", &pids[1]);
    assert!(delay <= Duration::from_secs(30), "re-sharded {delay:?} after the SIGSTOP (goal: 30 s)");
    let out = child.wait_with_output().expect("noncectl ends");
    let ended = stopped.elapsed();
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(ended <= Duration::from_secs(90), "the job ended {ended:?} after the stop (goal: 90 s): {v}");
    assert_eq!(v["searched"], json!(400_000_000u64), "{v}");
    assert!(v["reshards"].as_u64().expect("reshards") >= 1, "{v}");
    eprintln!("re-sharded {delay:?} after the SIGSTOP; job ended {ended:?} after it");
    wait_gone(&pids, Duration::from_secs(10), "after the job");
    assert_eq!(em.inboxes(), Vec::<String>::new(), "no inbox outlives the job");
}

#[test]
fn a_killed_worker_is_resharded_at_once_and_its_inbox_swept() {
    let (_, v) = disturbed_search("sigkill", |pid| signal("-KILL", pid));
    assert_eq!(v["nonce"], REFERENCE, "{v}");
    assert!(v["reshards"].as_u64().expect("reshards") >= 1, "{v}");
}

#[test]
fn workers_exit_by_themselves_when_the_coordinator_dies_for_good() {
    let em = Emulator::get("orphans");
    let mut child = em
        .noncectl()
        .args([
            "search",
            "--block",
            "orphan",
            "--difficulty",
            "200",
            "--workers",
            "3",
            "--launcher",
            "process",
        ])
        .args(["--orphan-timeout", "3s"])
        .args(em.aws_flags())
        .stdout(Stdio::null())
        .spawn()
        .expect("noncectl starts");
    let pids = worker_pids(child.id(), 3);
    assert_eq!(pids.len(), 3);
    let t = Instant::now();
    while em.inboxes().len() < 3 {
        assert!(t.elapsed() < Duration::from_secs(20), "3 inboxes");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-KILL", &child.id().to_string());
    let _ = child.wait();
    // No Stop will come and no pipe closes: only the orphan timeout (3 s, checked every
    // second) ends them. Allow one check interval and start-up slack on top.
    let took = wait_gone(&pids, Duration::from_secs(6), "orphans");
    assert!(took >= Duration::from_secs(2), "they left after {took:?}: not by the orphan timeout?");
    assert_eq!(em.inboxes(), Vec::<String>::new(), "orphaned workers delete their inboxes");
    assert_eq!(em.subscriptions(), 0);
}

/// A `nonced` over the emulator, with its own state directory; killed if the test fails.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(em: &Emulator, dir: &Path) -> Daemon {
    let config = dir.join("nonced.toml");
    std::fs::write(
        &config,
        format!(
            "transport = \"aws\"\nlauncher = \"process\"\n[aws]\nprefix = \"{}\"\nbootstrap = true\n",
            em.prefix
        ),
    )
    .expect("config");
    let socket = dir.join("nonced.sock");
    let _ = std::fs::remove_file(&socket); // a SIGKILLed daemon leaves it behind
    let child = Command::new(bin("nonced"))
        .args(["--config", &config.display().to_string(), "--socket", &socket.display().to_string()])
        .args(["--state-dir", &dir.join("state").display().to_string()])
        .envs(em.env())
        .stdout(Stdio::null())
        .spawn()
        .expect("nonced starts");
    let t = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "nonced did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child, socket }
}

fn call(socket: &Path, method: &str, params: Value) -> Value {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(150))).expect("timeout");
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    writeln!(s, "{req}").expect("send");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("reply");
    serde_json::from_str(&line).expect("JSON reply")
}

/// The ids of the job's workers the daemon knows (empty once the job has ended).
fn worker_ids(socket: &Path, job: &str) -> Vec<String> {
    let r = call(socket, "workers.list", json!({"job_id": job}));
    r["result"]["workers"]
        .as_array()
        .or_else(|| r["result"].as_array())
        .map(|a| a.iter().filter_map(|w| w["worker"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn the_daemon_killed_mid_job_restarts_adopts_its_workers_and_finishes_right() {
    let em = Emulator::get("daemon");
    let dir = std::env::temp_dir().join(format!("nonced-aws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut d = start_daemon(&em, &dir);
    let started = call(
        &d.socket,
        "search.start",
        json!({"block": "sup-a", "difficulty": 27, "mode": "lowest", "range": "0..480000000", "workers": 3,
               "heartbeat": "500ms", "stall_timeout": "3s", "orphan_timeout": "8s"}),
    );
    let job = started["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{started}")).to_string();
    let first_life = worker_pids(d.child.id(), 3);
    assert_eq!(first_life.len(), 3, "three workers");
    std::thread::sleep(Duration::from_millis(4500)); // past progress records (one a second)
                                                     // The job's own transport counters, while it runs.
    let st = call(&d.socket, "search.status", json!({"job_id": job}));
    assert!(st["result"]["transport"]["events"].as_u64().unwrap_or(0) >= 3, "Hellos and heartbeats: {st}");
    assert!(st["result"]["transport"]["sqs_requests"].as_u64().unwrap_or(0) > 0, "{st}");
    let first_ids = worker_ids(&d.socket, &job);
    assert_eq!(first_ids.len(), 3, "{first_ids:?}");
    d.child.kill().expect("SIGKILL");
    let _ = d.child.wait();
    drop(d);
    assert!(first_life.iter().all(|p| running(p)), "workers outlive their coordinator's crash");
    let d2 = start_daemon(&em, &dir);
    // A keep-alive with the new incarnation (every 2 s here) makes the first life's
    // workers say Hello again: the new coordinator lists them beside its own.
    let t = Instant::now();
    loop {
        let now = worker_ids(&d2.socket, &job);
        if first_ids.iter().all(|w| now.contains(w)) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not adopted: {first_ids:?} vs {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = call(&d2.socket, "search.wait", json!({"job_id": job, "timeout_s": 120}));
    assert_eq!(r["result"]["finished"], true, "{r}");
    assert_eq!(r["result"]["result"]["nonce"], REFERENCE, "{r}");
    let counted = &r["result"]["result"]["transport"];
    assert!(counted["events"].as_u64().unwrap_or(0) >= 3, "the result carries the job's counters: {r}");
    let info = call(&d2.socket, "daemon.info", json!({}));
    assert_eq!(info["result"]["aws"]["prefix"], em.prefix.as_str(), "{info}");
    assert!(info["result"]["aws"]["events"].as_u64().unwrap_or(0) > 0, "{info}");
    // The first life's workers heard the new incarnation, said Hello again, and were stopped
    // with the rest by the job's Stop broadcast.
    wait_gone(&first_life, Duration::from_secs(8), "the first life's workers after the job");
    let mut d2 = d2;
    let _ = Command::new("kill").args(["-TERM", &d2.child.id().to_string()]).status();
    let _ = d2.child.wait();
    assert_eq!(em.inboxes(), Vec::<String>::new(), "no inbox outlives the job");
    let _ = std::fs::remove_dir_all(&dir);
}
