//! Supervision with real `nonce-worker` processes: stop or kill one mid-search and the
//! `lowest` answer is still the reference one, found by re-sharding the lost range.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The lowest nonce of `sup-a` at difficulty 27, from an undisturbed run (the embedded
/// search agrees with the independent brute force on every case in testdata/golden.json).
const REFERENCE: u64 = 213_623_294;

/// Runs the reference search on 3 process workers, doing `disturb` to one of them a second in.
fn disturbed_search(disturb: impl FnOnce(&str)) -> serde_json::Value {
    let child = Command::new(bin("noncectl"))
        .args(["search", "--block", "sup-a", "--difficulty", "27", "--mode", "lowest", "--workers", "3"])
        .args(["--launcher", "process", "--json"])
        .env("NONCE_LOG", "error")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("noncectl starts");
    let pids = worker_pids(child.id(), 3);
    assert_eq!(pids.len(), 3, "three worker processes");
    std::thread::sleep(Duration::from_secs(1));
    disturb(&pids[1]);
    let out = child.wait_with_output().expect("noncectl ends");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(0), "{v}");
    // No worker outlives the job.
    std::thread::sleep(Duration::from_millis(2500));
    for pid in &pids {
        assert!(!running(pid), "worker {pid} outlived the job");
    }
    v
}

#[test]
fn a_stopped_worker_is_resharded_and_its_late_messages_change_nothing() {
    let v = disturbed_search(|pid| stall_then_wake(pid, Duration::from_secs(4)));
    assert_eq!(v["nonce"], REFERENCE, "{v}");
    assert!(v["reshards"].as_u64().expect("n") >= 1, "{v}");
    assert!(v["stalls"].as_u64().expect("n") >= 1, "{v}");
}

#[test]
fn a_killed_worker_is_resharded_at_once() {
    let t = Instant::now();
    let v = disturbed_search(|pid| signal("-KILL", pid));
    assert_eq!(v["nonce"], REFERENCE, "{v}");
    assert!(v["reshards"].as_u64().expect("n") >= 1, "{v}");
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn workers_exit_by_themselves_when_the_coordinator_dies() {
    let mut child = Command::new(bin("noncectl"))
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
        .env("NONCE_LOG", "error")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .stdout(Stdio::null())
        .spawn()
        .expect("noncectl starts");
    let pids = worker_pids(child.id(), 3);
    assert_eq!(pids.len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    signal("-KILL", &child.id().to_string());
    let _ = child.wait();
    // No Stop was ever sent: each worker must notice on its own (its pipe closed; the orphan
    // timeout is the backstop) and leave.
    let t = Instant::now();
    for pid in &pids {
        loop {
            if !running(pid) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "worker {pid} outlived its coordinator");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
