//! What a person at a terminal does to a search: Ctrl-C, which the terminal sends to the
//! whole foreground process group.

mod common;
use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn ctrl_c_cancels_a_search_with_process_workers_cleanly() {
    let mut cmd = Command::new(bin("noncectl"));
    cmd.args(["search", "--block", "ctrl-c", "--difficulty", "200", "--workers", "2", "--threads", "1"])
        .args(["--launcher", "process", "--max-time", "60s", "--json"])
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .env("NONCE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // As a shell runs a foreground job: a process group of its own.
        .process_group(0);
    let child = cmd.spawn().expect("noncectl starts");
    let pid = child.id().to_string();
    worker_pids(child.id(), 2);
    std::thread::sleep(Duration::from_millis(500));
    // Ctrl-C: SIGINT to every process of the foreground group.
    let sent = Command::new("kill").args(["-s", "INT", "--", &format!("-{pid}")]).status().expect("kill");
    assert!(sent.success(), "kill -s INT -- -{pid}");
    let out = child.wait_with_output().expect("noncectl exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr} {}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["outcome"], "cancelled", "{v}");
    assert_eq!((v["reshards"].as_u64(), v["stalls"].as_u64()), (Some(0), Some(0)), "no worker was lost: {v}");
    assert!(!stderr.contains("WARN"), "a clean cancel warns of nothing: {stderr}");
    // The workers (their logs are on the same stderr) were stopped by the job, not by the
    // terminal's signal.
    assert!(!stderr.contains("SIGINT"), "a worker got the terminal's SIGINT: {stderr}");
}
