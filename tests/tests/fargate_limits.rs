//! Fleets at Fargate's real limits, over the AWS emulator with real `nonce-worker` processes:
//! the ECS shim stands in front of the emulator's ECS API as the account's RunTask token
//! bucket (scaled down: a burst of 3, then 2 calls a second) and injects throttles and
//! capacity failures besides; the `ecs` launcher must keep to the bucket, start every worker
//! anyway, and the job must end with the reference answer. Then Spot: tasks on
//! `FARGATE_SPOT`, two of them interrupted (SIGTERM) mid-job, and nothing searched is lost.

mod common;
use common::ecs_shim::EcsShim;
use common::emulator::Emulator;
use common::*;
use serde_json::Value;

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

/// Runs the search through the shim's ECS front; answers the exit code, the report and the
/// shim's record of the tasks and the calls.
fn search(shim: EcsShim, em: &Emulator, extra: &[&str]) -> (i32, Value, Value) {
    let out = em
        .noncectl()
        .args(PUZZLE)
        .args(["--json", "--launcher", "ecs", "--heartbeat", "2s"])
        .args(em.aws_flags())
        .args(shim.ecs_flags())
        .args(extra)
        // Only the launcher's ECS calls go through the front; SQS and SNS go straight on.
        .env("AWS_ENDPOINT_URL_ECS", s(&shim.settings["ecs_endpoint"]))
        .output()
        .expect("noncectl runs");
    let report = shim.report();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("not one JSON object ({e}): {stdout:?}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("an exit code"), v, report)
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
    let shim = EcsShim::start(
        &em,
        &["--front", "--quota", "3:2", "--throttle-every", "4", "--no-capacity-every", "5"],
    );
    let (code, v, report) = search(
        shim,
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
    // (The front lets a call arrive up to 100 ms early, as network jitter: a launcher that
    // ignored the bucket would send all 8 at once and have 5 of them throttled.)
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
    let shim = EcsShim::start(&em, &["--front", "--interrupt", "2", "--interrupt-after", "3"]);
    let (code, v, report) = search(shim, &em, &["--workers", "4", "--capacity", "spot"]);
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
