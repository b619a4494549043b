//! A worker stopped by its platform (Fargate Spot's SIGTERM) mid-shard: what it searched since
//! its last heartbeat goes out in a final one before its `Bye`, so the coordinator credits it
//! and re-shards only the rest. Before, the worker said only `Bye`, and up to a heartbeat of
//! work (9 s over SQS) was searched again.

use nonce_kernel::Backend;
use protocol::auth::JobSecret;
use protocol::{
    ByeReason, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, SealedEvent, ShardId, WorkerId,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use worker_actor::{Delivery, EventSink, Inbox, LocalStop, Shutdown, WorkerActor, WorkerConfig};

#[derive(Default, Clone)]
struct Kept(Arc<Mutex<Vec<SealedEvent>>>);

impl EventSink for Kept {
    fn send(&self, event: SealedEvent) {
        self.0.lock().expect("not poisoned").push(event);
    }
}

fn run(why: Shutdown) -> Vec<EventBody> {
    let (job, worker) = (JobId(7), WorkerId("w0-test".into()));
    let secret = JobSecret::from_bytes([9; 32]);
    let key = secret.worker_key(job, &worker);
    let cfg = WorkerConfig {
        id: worker.clone(),
        job,
        inbox: "mem://w0-test".into(),
        threads: 1,
        // A heartbeat far away: only the final one can carry the progress.
        heartbeat: Duration::from_secs(60),
        orphan_timeout: Duration::from_secs(60),
        backend: Backend::detect(),
        key: key.clone(),
        broadcast: secret.broadcast_signer(job).verifier(),
    };
    let kept = Kept::default();
    let sink = kept.clone();
    let sealing = key.clone();
    actix::System::new().block_on(async move {
        let actor = actix::Actor::start(WorkerActor::new(cfg, Arc::new(sink)));
        let puzzle = Puzzle::append(b"interrupted".to_vec(), Encoding::Be32, 60).expect("puzzle");
        let range = NonceRange::new(0, 1 << 40);
        let assign = Command::Assign {
            job,
            shard: ShardId(1),
            epoch: 1,
            puzzle,
            range,
            mode: Mode::Exhaustive,
            share_bits: 20,
        };
        actor.do_send(Inbox(Delivery::Direct(sealing.seal_command(1, 1, assign))));
        tokio::time::sleep(Duration::from_millis(600)).await;
        actor.do_send(LocalStop(why));
        let t = Instant::now();
        while actor.connected() && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let events = kept.0.lock().expect("not poisoned").clone();
    assert!(events.iter().all(|e| key.opens_event(e)), "every event sealed with the worker's key");
    events.into_iter().map(|e| e.event.body).collect()
}

#[test]
fn a_terminated_worker_sends_its_progress_then_says_why_it_left() {
    let bodies = run(Shutdown::Terminated);
    let kinds: Vec<&str> = bodies.iter().map(EventBody::kind).collect();
    assert_eq!(kinds.first(), Some(&"hello"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"bye"), "{kinds:?}");
    assert_eq!(bodies.last(), Some(&EventBody::Bye { reason: ByeReason::Terminated }));
    // The last heartbeat, right before the Bye: 0.6 s of hashing, with its shares.
    let Some(EventBody::Heartbeat { shards, .. }) = bodies.iter().rev().nth(1) else {
        panic!("a final heartbeat before the Bye: {kinds:?}");
    };
    let s = &shards[0];
    assert_eq!((s.shard, s.from), (ShardId(1), 0));
    assert!(s.watermark >= 1 << 20, "the work since the last heartbeat is in it: {}", s.watermark);
    assert!(!s.shares.is_empty() && s.shares.iter().all(|&n| u128::from(n) < s.watermark), "{s:?}");
}

#[test]
fn a_worker_told_to_stop_says_so() {
    let bodies = run(Shutdown::Stopped);
    assert_eq!(bodies.last(), Some(&EventBody::Bye { reason: ByeReason::Stopped }));
}
