//! The `aws` transport end to end, over the AWS emulator with real `nonce-worker` processes:
//! the answer, clean cancellation, ghost messages, poison messages and the `ecs` launcher.

mod common;
use common::ecs_shim::EcsShim;
use common::emulator::Emulator;
use common::*;
use protocol::{codec, Best, Event, EventBody, JobId, Message, ShardId, ShardProgress, WorkerId};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The search every test here runs: 60M nonces, so 3 workers each get a real share.
const PUZZLE: [&str; 9] =
    ["search", "--block", "sup-a", "--difficulty", "25", "--mode", "lowest", "--range", "0..60000000"];

/// The embedded run's answer (which agrees with the brute force on every golden case).
fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let (code, v) = noncectl_json(&PUZZLE);
        assert_eq!(code, 0, "{v}");
        v["nonce"].clone()
    })
}

/// Runs the search over aws with 3 workers and `extra` flags; answers the exit code and JSON.
fn aws_search(em: &Emulator, extra: &[&str]) -> (i32, Value) {
    let out = em
        .noncectl()
        .args(PUZZLE)
        .args(["--workers", "3", "--json"])
        .args(em.aws_flags())
        .args(extra)
        .output()
        .expect("noncectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout:?}; stderr: {stderr}"));
    (out.status.code().expect("an exit code"), v)
}

fn assert_clean(em: &Emulator) {
    assert_eq!(em.inboxes(), Vec::<String>::new(), "every worker deleted its inbox");
    assert_eq!(em.subscriptions(), 0, "every worker removed its subscription");
}

#[test]
fn lowest_with_three_process_workers_matches_the_embedded_run() {
    let em = Emulator::get("lowest");
    let (code, v) = aws_search(&em, &["--launcher", "process"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "found", "{v}");
    assert_eq!(&v["nonce"], reference(), "{v}");
    assert_eq!(v["workers"], 3);
    assert!(v["transport"]["events"].as_u64().expect("events") >= 6, "{v}");
    // The job's own counters: its events, and the coordinator's requests while it ran.
    let job = &v["transport"]["job"];
    assert!(job["events"].as_u64().expect("job events") >= 6, "{v}");
    assert!(job["sqs_requests"].as_u64().expect("job requests") > 0, "{v}");
    assert!(job["sqs_requests"].as_u64() <= v["transport"]["coordinator_sqs_requests"].as_u64(), "{v}");
    assert_clean(&em);
}

#[test]
fn in_process_workers_can_use_sqs_too() {
    // Transport and launcher are chosen independently.
    let em = Emulator::get("threads");
    let (code, v) = aws_search(&em, &["--launcher", "threads"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(&v["nonce"], reference(), "{v}");
    assert!(v["transport"]["events"].as_u64().expect("events") >= 3, "{v}");
    assert_clean(&em);
}

#[test]
fn ctrl_c_stops_every_worker_within_two_seconds_and_their_inboxes_go() {
    let em = Emulator::get("cancel");
    let probe = em.probe(&em.fabric().topic_arn);
    let child = em
        .noncectl()
        .args(["search", "--block", "cancel-me", "--difficulty", "60", "--mode", "exhaustive"])
        .args(["--workers", "3", "--launcher", "process", "--json"])
        .args(em.aws_flags())
        .stdout(Stdio::piped())
        .spawn()
        .expect("noncectl starts");
    let t = Instant::now();
    let pids = loop {
        let pids = worker_pids(child.id(), 0);
        if pids.len() == 3 && em.inboxes().len() == 3 {
            break pids;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "3 workers with inboxes within 30 s: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill").success());
    // The broadcast, as a subscriber of the control topic sees it.
    let watcher = {
        let (em, probe) = (em.clone(), probe.clone());
        std::thread::spawn(move || em.wait_for_stop(&probe, Duration::from_secs(10)))
    };
    while pids.iter().any(|p| running(p)) {
        assert!(sent.elapsed() < Duration::from_secs(10), "workers still running 10 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_gone = Instant::now();
    let broadcast =
        watcher.join().expect("probe thread").expect("the Stop broadcast reached the topic's subscribers");
    let took = all_gone.saturating_duration_since(broadcast);
    assert!(took < Duration::from_secs(2), "every worker left {took:?} after the broadcast");
    eprintln!("workers gone {:?} after Ctrl-C, {took:?} after the broadcast", all_gone - sent);
    let out = child.wait_with_output().expect("noncectl ends");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(130), "{v}");
    assert_eq!(v["outcome"], "cancelled");
    assert_clean(&em);
}

#[test]
fn stale_messages_of_another_job_change_nothing() {
    let em = Emulator::get("ghosts");
    let fabric = em.fabric();
    // What an earlier job's workers would have left behind: results and claims that the
    // whole range is done. The coursework system trusted such messages (its section 7).
    let ghost = JobId(0x0123_4567_89ab_cdef);
    let mut bodies = vec![];
    for i in 0..8u64 {
        let worker = WorkerId(format!("ghost-{i}"));
        let ev = |body| body_of(ghost, &worker, body);
        bodies.push(ev(EventBody::Hello { inbox: fabric.events_url.clone(), cpus: 1 }));
        bodies.push(ev(EventBody::Found { shard: ShardId(i), epoch: 0, nonce: i }));
        bodies.push(ev(EventBody::ShardDone {
            shard: ShardId(i),
            epoch: 0,
            best: Some(Best { nonce: i, leading_zeros: 40 }),
            from: 0,
            end: 60_000_000,
            found: vec![i],
            shares: vec![],
        }));
        bodies.push(ev(EventBody::Heartbeat {
            shards: vec![ShardProgress {
                shard: ShardId(i),
                epoch: 0,
                from: 0,
                watermark: 60_000_000,
                found: vec![],
                shares: vec![],
            }],
            rate: 1e9,
            best: None,
        }));
        bodies.push(ev(EventBody::Bye { reason: protocol::ByeReason::Stopped }));
    }
    let stale = bodies.len() as u64;
    em.send_bodies(&fabric.events_url, bodies);
    let (code, v) = aws_search(&em, &["--launcher", "process"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(&v["nonce"], reference(), "{v}");
    let ghosts = v["transport"]["ghosts"].as_u64().expect("ghosts");
    assert!(ghosts >= stale, "{ghosts} ghosts counted, {stale} sent: {v}");
    assert_clean(&em);
}

/// An event's SQS body, as a worker of `job` would send it, sealed with a key that is not the
/// job's (nobody but the coordinator can derive those).
fn body_of(job: JobId, worker: &WorkerId, body: EventBody) -> String {
    let key = protocol::auth::JobSecret::from_bytes([0xee; 32]).worker_key(job, worker);
    let sealed = key.seal_event(1, Event { job, worker: worker.clone(), body });
    codec::encode_text(&Message::Event(sealed)).expect("encodes")
}

#[test]
fn garbage_bodies_end_in_the_dead_letter_queue_and_the_job_finishes() {
    let em = Emulator::get("garbage");
    let fabric = em.fabric();
    let key = protocol::auth::JobSecret::from_bytes([1; 32]).worker_key(JobId(1), &WorkerId("w".into()));
    let command =
        codec::encode_text(&Message::Command(key.seal_command(1, 1, protocol::Command::Stop { job: None })))
            .expect("encodes");
    let mut truncated =
        body_of(JobId(1), &WorkerId("w".into()), EventBody::Bye { reason: protocol::ByeReason::Stopped });
    truncated.truncate(truncated.len() / 2);
    let garbage = vec![
        "not base64 at all!".to_string(),
        "aGVsbG8gd29ybGQ=".to_string(), // base64 of "hello world": no envelope
        truncated,
        command, // a command where events belong
        "A".repeat(100_000),
    ];
    em.send_bodies(&fabric.events_url, garbage.clone());
    let (code, v) = aws_search(&em, &["--launcher", "process"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(&v["nonce"], reference(), "{v}");
    assert_eq!(v["transport"]["undecodable"], garbage.len(), "{v}");
    let mut in_dlq = em.drain(&fabric.dlq_url);
    let mut sent = garbage;
    in_dlq.sort();
    sent.sort();
    assert_eq!(in_dlq, sent, "the dead-letter queue holds exactly the garbage");
    assert_clean(&em);
}

#[test]
fn ecs_launcher_runs_tagged_tasks_that_find_the_answer_and_stops_every_one() {
    let em = Emulator::get("ecs");
    let shim = EcsShim::start(&em, &[]);
    let mut flags = vec!["--launcher".to_string(), "ecs".to_string()];
    flags.extend(shim.ecs_flags());
    let (code, v) = aws_search(&em, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let report = shim.report();
    assert_eq!(code, 0, "{v}");
    assert_eq!(&v["nonce"], reference(), "{v}");
    let job = s(&v["job_id"]);
    let tasks = report["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{report}");
    // Each task its own name and key (one RunTask a task): no two workers share a key.
    let mut names = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    for t in tasks {
        let (name, key) = (s(&t["env"]["NONCE_WORKER_ID"]), s(&t["env"]["NONCE_WORKER_KEY"]));
        assert!(name.starts_with('w') && name.ends_with(job), "the job names its workers: {t}");
        assert!(key.len() == 64 && hex::decode(key).is_ok(), "{t}");
        names.insert(name.to_string());
        keys.insert(key.to_string());
    }
    assert_eq!((names.len(), keys.len()), (3, 3), "{report}");
    for t in tasks {
        let env = &t["env"];
        assert_eq!(env["NONCE_JOB_ID"], job, "{t}");
        assert_eq!(env["NONCE_TRANSPORT"], "aws", "{t}");
        assert_eq!(env["NONCE_AWS_PREFIX"], em.prefix.as_str(), "{t}");
        assert!(s(&env["NONCE_EVENTS_QUEUE_URL"]).ends_with(&format!("/{}-events", em.prefix)), "{t}");
        assert!(s(&env["NONCE_CONTROL_TOPIC_ARN"]).ends_with(&format!(":{}-control", em.prefix)), "{t}");
        assert_eq!(t["tags"]["nonce-cloud:job"], job, "{t}");
        assert_eq!(t["tags"]["nonce-cloud:prefix"], em.prefix.as_str(), "{t}");
        assert_eq!(t["launchType"], "FARGATE", "{t}");
        assert_eq!(t["stop_called"], true, "StopTask for every task: {t}");
        assert_eq!(t["exit_code"], 0, "every worker left cleanly: {t}");
    }
    assert_clean(&em);
}

/// Why the aws transport cannot start, said once and truly: "not found" only when SQS said
/// so; a refused connection is named as such (it used to read "queue ... not found").
#[test]
fn a_missing_fabric_and_an_unreachable_endpoint_are_told_apart() {
    let em = Emulator::get("missing");
    let puzzle = ["search", "--block", "m", "--difficulty", "8", "--workers", "1", "--transport", "aws"];
    let out =
        em.noncectl().args(puzzle).args(["--aws-prefix", "nobody-deployed-this"]).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("queue nobody-deployed-this-events not found (deploy infra/terraform"), "{err}");
    let out = em
        .noncectl()
        .args(puzzle)
        .args(["--aws-prefix", "p"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("not found") && err.contains("Connection refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "said once: {err}");
}
