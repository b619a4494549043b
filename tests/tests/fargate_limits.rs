//! Fleets at Fargate's real limits, over the AWS emulator with real `nonce-worker` processes:
//! the ECS shim stands in front of the emulator's ECS API as the account's RunTask token
//! bucket (scaled down: a burst of 3, then 2 calls a second) and injects throttles and
//! capacity failures besides; the `ecs` launcher must keep to the bucket, start every worker
//! anyway, and the job must end with the reference answer. Then Spot: tasks on
//! `FARGATE_SPOT`, two of them interrupted (SIGTERM) mid-job, and nothing searched is lost.

mod common;
use common::emulator::Emulator;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// 2^28 nonces at difficulty 24: about 16 golden ones, and long enough (several seconds on
/// two cores) that the last paced workers join while there is work.
const PUZZLE: [&str; 9] = [
    "search",
    "--block",
    "fargate-limits",
    "--difficulty",
    "24",
    "--mode",
    "exhaustive",
    "--range",
    "0..268435456",
];

struct Shim {
    proc: Child,
    lines: Lines<BufReader<ChildStdout>>,
    settings: Value,
}

impl Shim {
    fn start(em: &Emulator, extra: &[&str]) -> Shim {
        let python = std::env::var("NONCE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("NONCE_TEST_PYTHON is not set: the ECS shim needs the emulator's Python (scripts/test sets it)")
        });
        let mut proc = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/ecs_shim.py"))
            .args(["--endpoint", &em.endpoint, "--cluster", &format!("{}-cluster", em.prefix)])
            .args(["--worker-bin", &bin("nonce-worker").display().to_string()])
            .arg("--front")
            .args(extra)
            .envs(em.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the ECS shim starts");
        let mut lines = BufReader::new(proc.stdout.take().expect("shim stdout")).lines();
        let settings: Value = serde_json::from_str(&lines.next().expect("settings line").expect("readable"))
            .expect("settings JSON");
        Shim { proc, lines, settings }
    }

    /// Runs the search through the shim's ECS front; answers the exit code, the report and
    /// the shim's record of the tasks and the calls.
    fn search(mut self, em: &Emulator, extra: &[&str]) -> (i32, Value, Value) {
        let join = |k: &str| {
            self.settings[k]
                .as_array()
                .expect(k)
                .iter()
                .map(|s| s.as_str().expect("id"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let out = em
            .noncectl()
            .args(PUZZLE)
            .args(["--json", "--launcher", "ecs", "--heartbeat", "2s"])
            .args(em.aws_flags())
            .args(["--ecs-cluster", s(&self.settings["cluster"])])
            .args(["--ecs-task-definition", s(&self.settings["task_definition"])])
            .args(["--ecs-subnets", &join("subnets"), "--ecs-security-groups", &join("security_groups")])
            .args(extra)
            // Only the launcher's ECS calls go through the front; SQS and SNS go straight on.
            .env("AWS_ENDPOINT_URL_ECS", s(&self.settings["ecs_endpoint"]))
            .output()
            .expect("noncectl runs");
        drop(self.proc.stdin.take()); // the shim reports and ends
        let report: Value = serde_json::from_str(&self.lines.next().expect("report line").expect("readable"))
            .expect("report JSON");
        let _ = self.proc.wait();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("not one JSON object ({e}): {stdout:?}; stderr: {}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code().expect("an exit code"), v, report)
    }
}

/// The embedded run's golden nonces (the embedded run agrees with the brute force on every
/// golden case: `golden_reference.rs`).
fn reference() -> Value {
    let (code, v) = noncectl_json(&PUZZLE);
    assert_eq!(code, 0, "{v}");
    assert!(v["found"].as_array().is_some_and(|f| f.len() >= 4), "{v}");
    v["found"].clone()
}

#[test]
fn a_fleet_past_the_burst_keeps_to_the_bucket_through_throttles_and_capacity_failures() {
    let em = Emulator::get("paced");
    let shim = Shim::start(&em, &["--quota", "3:2", "--throttle-every", "4", "--no-capacity-every", "5"]);
    let (code, v, report) = shim.search(
        &em,
        &[
            "--workers",
            "8",
            "--ecs-call-quota",
            "3:2",
            "--ecs-task-quota",
            "3:2",
            "--ecs-capacity-retry",
            "2m",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "found", "exhaustive, with golden nonces: {v}");
    assert_eq!(v["found"], reference(), "{v}");
    assert_eq!(v["searched"], 268_435_456u64, "{v}");
    let front = &report["front"];
    eprintln!("the ECS front: {front}");
    // The faults happened, and every worker started anyway (the launcher retried them).
    assert!(front["injected_throttles"].as_u64() >= Some(1), "{front}");
    assert!(front["no_capacity"].as_u64() >= Some(1), "{front}");
    assert_eq!(report["tasks"].as_array().map(Vec::len), Some(8), "{report}");
    assert_eq!(v["workers_started"], 8, "{v}");
    // It kept to the bucket: the front never had to throttle a call for exceeding it.
    assert_eq!(front["bucket_throttles"], 0, "{front}");
    // And paced it no slower than it allows: the calls went out at the bucket's rate (3 at
    // once, then 2 a second), give or take the calls' own latency and the capacity backoffs.
    let calls = front["calls"].as_u64().expect("calls") as f64;
    let accepted: Vec<f64> =
        front["accepted"].as_array().expect("accepted").iter().filter_map(Value::as_f64).collect();
    let last = accepted.iter().copied().fold(0.0, f64::max);
    let ideal = (calls - 3.0) / 2.0;
    assert!(last <= ideal + 6.0, "the last call at {last:.1} s; the bucket allowed {ideal:.1} s: {front}");
    for t in &report["tasks"].as_array().expect("tasks")[..] {
        assert_eq!(t["stop_called"], true, "StopTask for every task: {t}");
    }
}

#[test]
fn spot_workers_interrupted_mid_job_lose_no_searched_work() {
    let em = Emulator::get("spot");
    let shim = Shim::start(&em, &["--interrupt", "2", "--interrupt-after", "3"]);
    let (code, v, report) = shim.search(&em, &["--workers", "4", "--capacity", "spot"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "found", "exhaustive, with golden nonces: {v}");
    assert_eq!(v["found"], reference(), "{v}");
    assert_eq!(v["searched"], 268_435_456u64, "{v}");
    // Every RunTask asked for Spot, and the emulator put every task there.
    let strategies = report["front"]["strategies"].as_object().expect("strategies");
    assert!(!strategies.is_empty() && strategies.values().all(|s| s == "FARGATE_SPOT"), "{report}");
    let tasks = report["tasks"].as_array().expect("tasks");
    assert!(tasks.iter().all(|t| t["capacityProviderName"] == "FARGATE_SPOT"), "{report}");
    let interrupted = tasks.iter().filter(|t| t["interrupted"] == true).count();
    assert_eq!(interrupted, 2, "{report}");
    // Both counted as interruptions, their ranges re-sharded, and each left cleanly.
    assert_eq!(v["interruptions"], 2, "{v}");
    assert!(v["reshards"].as_u64() >= Some(2), "{v}");
    for t in tasks.iter().filter(|t| t["interrupted"] == true) {
        assert_eq!(t["exit_code"], 0, "{t}");
    }
}
