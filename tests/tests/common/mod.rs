//! Helpers shared by the end-to-end tests: find the workspace's binaries and run them.
#![allow(dead_code)]

pub mod ecs_shim;
pub mod emulator;
pub mod http;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A binary built by this workspace, next to the test executable's profile directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|p| p.parent()).expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

pub fn noncectl(args: &[&str]) -> Output {
    Command::new(bin("noncectl")).args(args).env("NONCE_LOG", "error").output().expect("noncectl runs")
}

/// Runs `noncectl` with `--json` appended and parses the one object it prints.
pub fn noncectl_json(args: &[&str]) -> (i32, Value) {
    noncectl_json_env(args, &[])
}

/// As [`noncectl_json`], with extra environment variables.
pub fn noncectl_json_env(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = Command::new(bin("noncectl"))
        .args(&all)
        .env("NONCE_LOG", "error")
        .envs(env.iter().copied())
        .output()
        .expect("noncectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "noncectl panicked: {stderr}");
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout:?} stderr: {stderr}"));
    (out.status.code().expect("exit code"), v)
}

pub fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("testdata/golden.json")).expect("valid JSON")
}

/// The golden case of `mode` named `name` (found by the independent Python brute force).
pub fn golden_case(mode: &str, name: &str) -> Value {
    golden()[mode]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no golden {mode} case {name}"))
}

/// A golden case's range as `noncectl --range` takes it: `START..END`.
pub fn range_arg(case: &Value) -> String {
    format!("{}..{}", s(&case["range"][0]), s(&case["range"][1]))
}

pub fn s(v: &Value) -> &str {
    v.as_str().expect("a string")
}

/// The pids of `parent`'s `nonce-worker` children, once there are `want` (or after 20 s).
pub fn worker_pids(parent: u32, want: usize) -> Vec<String> {
    let t = std::time::Instant::now();
    loop {
        let out =
            Command::new("pgrep").args(["-P", &parent.to_string(), "nonce-worker"]).output().expect("pgrep");
        let pids: Vec<String> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
        if pids.len() >= want || t.elapsed() > std::time::Duration::from_secs(20) {
            return pids;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether `pid` runs (a zombie, exited but not yet reaped, does not count).
pub fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).map(|st| st != "Z"))
        .unwrap_or(false)
}

/// Sends `sig` (`-STOP`, `-KILL`, ...) to `pid`.
pub fn signal(sig: &str, pid: &str) {
    assert!(Command::new("kill").args([sig, pid]).status().expect("kill").success(), "kill {sig} {pid}");
}

/// SIGSTOPs `pid` (past a stall timeout) and SIGCONTs it `after` later, so it wakes up and
/// talks with stale epochs while the search goes on.
pub fn stall_then_wake(pid: &str, after: std::time::Duration) {
    signal("-STOP", pid);
    let pid = pid.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
    });
}

/// Runs noncectl with its stdout's reader gone before anything is written (`| head -0`):
/// (exit code, stderr).
pub fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin("noncectl"))
        .args(args)
        .env("NONCE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("noncectl runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("noncectl ends");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}
