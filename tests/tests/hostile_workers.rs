//! Attacks on a real search over the AWS emulator, with real `nonce-worker` processes: an
//! attacker who can send to the events queue and read queue names (so it knows the job id,
//! the workers' names and, from them, the shard ids), but holds no key. It (a) joins with a
//! `Hello` and claims shards done, (b) sends heartbeats in the real workers' names with their
//! shard ids and epochs, claiming everything searched, (c) says `Hello` in a real worker's name
//! with its own inbox, (d) says `Hello` naming a foreign queue. The search must give the
//! brute-force reference answer, count the forgeries, and leave the foreign queue alone.

mod common;
use common::emulator::Emulator;
use common::*;
use protocol::auth::JobSecret;
use protocol::{codec, Event, EventBody, JobId, Message, ShardId, ShardProgress, WorkerId};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 2^28 nonces of the seed block at difficulty 26: four golden nonces (brute-force reference).
const PUZZLE: [&str; 9] = [
    "search",
    "--block",
    "COMSM0010cloud",
    "--difficulty",
    "26",
    "--mode",
    "exhaustive",
    "--range",
    "0..268435456",
];

fn forged(job: JobId, worker: &WorkerId, body: EventBody, seq: u64) -> String {
    // A key of the attacker's own: the job's secret never leaves the coordinator.
    let key = JobSecret::from_bytes([0x66; 32]).worker_key(job, worker);
    codec::encode_text(&Message::Event(key.seal_event(seq, Event { job, worker: worker.clone(), body })))
        .expect("encodes")
}

#[test]
fn forged_joins_heartbeats_and_hellos_change_nothing_and_a_foreign_queue_survives() {
    let (code, reference) = noncectl_json(&PUZZLE);
    assert_eq!(code, 0, "{reference}");
    let em = Emulator::get("hostile");
    let fabric = em.fabric();
    // The foreign queue: another deployment's, which a Hello names as its inbox.
    let foreign = em.with_clients(|c| async move {
        let out = c.sqs.create_queue().queue_name("someone-elses-queue").send().await.expect("CreateQueue");
        out.queue_url().expect("a URL").to_string()
    });
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let attacker = {
        let (done, sent, events, foreign) =
            (Arc::clone(&done), Arc::clone(&sent), fabric.events_url.clone(), foreign.clone());
        let em = em.clone();
        std::thread::spawn(move || {
            let mut seq = 1_000_000;
            while !done.load(Ordering::Relaxed) {
                // Worker names from the inbox queues: w<n>-<life>-<job>.
                let names: Vec<String> = em
                    .inboxes()
                    .iter()
                    .filter_map(|u| u.rsplit("-inbox-").next().map(str::to_string))
                    .collect();
                let mut bodies = vec![];
                for name in &names {
                    let parts: Vec<&str> = name.split('-').collect();
                    let (Some(life), Some(job)) =
                        (parts.get(1), parts.get(2).and_then(|j| j.parse::<JobId>().ok()))
                    else {
                        continue;
                    };
                    let life = u64::from_str_radix(life, 16).unwrap_or(0);
                    let real = WorkerId(name.clone());
                    let stranger = WorkerId(format!("w77-{life:08x}-{job}"));
                    for k in 0..4u64 {
                        let shard = ShardId(1 + (life << 32) + k);
                        let epoch = 1 + (life << 32) + k;
                        let all = ShardProgress {
                            shard,
                            epoch,
                            from: 0,
                            watermark: 1 << 28,
                            found: vec![],
                            shares: vec![],
                        };
                        seq += 1;
                        // (b) heartbeats in the real worker's name: everything searched.
                        let hb = EventBody::Heartbeat { shards: vec![all], rate: 1e9, best: None };
                        bodies.push(forged(job, &real, hb, seq));
                        // (a) a joiner's ShardDone.
                        let sd = EventBody::ShardDone {
                            shard,
                            epoch,
                            best: None,
                            from: 0,
                            end: 1 << 28,
                            found: vec![],
                            shares: vec![],
                        };
                        bodies.push(forged(job, &stranger, sd, seq));
                    }
                    seq += 1;
                    // (a) a joiner, (c) a real worker's name with the attacker's inbox, (d) a foreign queue.
                    bodies.push(forged(
                        job,
                        &stranger,
                        EventBody::Hello { inbox: foreign.clone(), cpus: 64 },
                        seq,
                    ));
                    bodies.push(forged(
                        job,
                        &real,
                        EventBody::Hello { inbox: foreign.clone(), cpus: 64 },
                        seq,
                    ));
                }
                if !bodies.is_empty() {
                    sent.fetch_add(bodies.len() as u64, Ordering::Relaxed);
                    em.send_bodies(&events, bodies);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let out = em
        .noncectl()
        .args(PUZZLE)
        .args(["--workers", "2", "--json", "--launcher", "process"])
        .args(em.aws_flags())
        .output()
        .expect("noncectl runs");
    done.store(true, Ordering::Relaxed);
    attacker.join().expect("the attacker thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}; stderr {}", String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "found", "{v}");
    assert_eq!(v["found"], reference["found"], "every golden nonce, as the brute force has them: {v}");
    assert_eq!(v["searched"], 1u64 << 28, "{v}");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 0, "the attacker saw the workers' inboxes and sent its forgeries");
    let forged_n = v["forged"].as_u64().expect("forged counted");
    assert!(forged_n > 0, "forgeries counted: {v}");
    assert!(
        v["verification"]["suspects"].as_array().is_some_and(|s| s.is_empty()),
        "no honest worker suspect: {v}"
    );
    let exists =
        em.with_clients(
            |c| async move { c.sqs.get_queue_attributes().queue_url(&foreign).send().await.is_ok() },
        );
    assert!(exists, "the foreign queue a Hello named was not deleted");
}

/// Runs the 2^28 exhaustive search over aws with three workers started from the lying worker
/// binary (the first one lies as `lie` says), with `extra` flags. Answers the result.
fn search_with_a_liar(em: &Emulator, lie: &str, extra: &[&str]) -> Value {
    search_with_a_liar_in(em, &PUZZLE, lie, extra)
}

/// [`search_with_a_liar`] of `puzzle`.
fn search_with_a_liar_in(em: &Emulator, puzzle: &[&str], lie: &str, extra: &[&str]) -> Value {
    let out = em
        .noncectl()
        .args(puzzle)
        .args(["--workers", "3", "--json", "--launcher", "process"])
        .args(em.aws_flags())
        .args(extra)
        .env("NONCE_WORKER_BIN", bin("lying-worker"))
        .env("NONCE_LIE", lie)
        .output()
        .expect("noncectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}; stderr {}", String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(0), "{v}");
    v
}

/// The lying worker (`w0-…`) is among the suspects, and no honest one is.
fn only_the_liar_is_suspect(v: &Value) {
    let suspects = v["verification"]["suspects"].as_array().expect("suspects");
    assert!(!suspects.is_empty(), "the liar was caught: {v}");
    for s in suspects {
        assert!(
            s["worker"].as_str().is_some_and(|w| w.starts_with("w0-")),
            "an honest worker made suspect: {v}"
        );
        assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
}

#[test]
fn an_insider_that_skips_half_of_every_range_is_caught_and_its_work_searched_again() {
    let (code, reference) = noncectl_json(&PUZZLE);
    assert_eq!(code, 0, "{reference}");
    let em = Emulator::get("skipper");
    // 16 share bits: ~2,000 shares in each worker's 2^27 nonces, so skipping half shows.
    let v = search_with_a_liar(&em, "skip-half", &["--share-bits", "16", "--spot-check", "0"]);
    assert_eq!(v["found"], reference["found"], "every golden nonce, as the brute force has them: {v}");
    assert_eq!(v["searched"], 1u64 << 28, "{v}");
    only_the_liar_is_suspect(&v);
    let reason = v["verification"]["suspects"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("shares where"), "caught by the share count: {v}");
}

#[test]
fn a_miscomputing_core_is_caught_by_spot_checks_and_its_work_searched_again() {
    let (code, reference) = noncectl_json(&PUZZLE);
    assert_eq!(code, 0, "{reference}");
    let em = Emulator::get("miscompute");
    // It loses one share in 16: too few for the count to prove, but a tenth of its claims is
    // searched again by another worker, in windows of ~4 shares.
    let v = search_with_a_liar(&em, "drop:16", &["--share-bits", "16", "--spot-check", "0.1"]);
    assert_eq!(v["found"], reference["found"], "every golden nonce, as the brute force has them: {v}");
    only_the_liar_is_suspect(&v);
    assert!(v["verification"]["spot_check_mismatches"].as_u64() > Some(0), "{v}");
}

#[test]
fn in_lowest_mode_neither_liar_changes_the_answer() {
    let lowest: Vec<&str> = PUZZLE.iter().map(|&a| if a == "exhaustive" { "lowest" } else { a }).collect();
    let (code, reference) = noncectl_json(&lowest);
    assert_eq!(code, 0, "{reference}");
    for (name, lie) in [("low-skip", "skip-half"), ("low-drop", "drop:16")] {
        let em = Emulator::get(name);
        let v = search_with_a_liar_in(&em, &lowest, lie, &["--share-bits", "16", "--spot-check", "0.1"]);
        assert_eq!(v["outcome"], "found", "{lie}: {v}");
        assert_eq!(
            v["nonce"], reference["nonce"],
            "{lie}: the lowest golden nonce, as the brute force has it: {v}"
        );
        let suspects = v["verification"]["suspects"].as_array().expect("suspects");
        for s in suspects {
            assert!(
                s["worker"].as_str().is_some_and(|w| w.starts_with("w0-")),
                "an honest worker made suspect: {v}"
            );
        }
    }
}
