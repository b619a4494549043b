//! The worker's protocol logic driven in memory, with no threads, sockets or clock: which
//! commands it believes, what it asks its shell to search, shrink and cancel, when it says
//! Hello again, when it is orphaned, and how it says goodbye.

use protocol::auth::JobSecret;
use protocol::worker::{
    Delivery, ExitReason, Shutdown, WorkerInput, WorkerMachine, WorkerOutput, WorkerRules, BROADCAST_SKEW,
};
use protocol::{ByeReason, Command, Encoding, EventBody, JobId, Mode, NonceRange, Puzzle, ShardId, WorkerId};
use std::time::Duration;

const JOB: JobId = JobId(5);
const NOW_MS: u64 = 1_800_000_000_000;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

struct Coordinator {
    secret: JobSecret,
    worker: WorkerId,
    seq: u64,
}

impl Coordinator {
    fn new() -> Coordinator {
        Coordinator { secret: JobSecret::from_bytes([3; 32]), worker: WorkerId("w0-m".into()), seq: 0 }
    }

    fn rules(&self, heartbeat: Duration) -> WorkerRules {
        WorkerRules {
            id: self.worker.clone(),
            job: JOB,
            inbox: "mem://w0-m".into(),
            cpus: 2,
            heartbeat,
            orphan_timeout: ms(10_000),
            key: self.secret.worker_key(JOB, &self.worker),
            broadcast: self.secret.broadcast_signer(JOB).verifier(),
        }
    }

    fn direct(&mut self, command: Command) -> WorkerInput {
        self.seq += 1;
        let sealed = self.secret.worker_key(JOB, &self.worker).seal_command(1, self.seq, command);
        WorkerInput::Delivered { delivery: Delivery::Direct(sealed), unix_ms: NOW_MS }
    }

    fn broadcast_at(&mut self, command: Command, sent_at_ms: u64) -> WorkerInput {
        self.seq += 1;
        let signed = self.secret.broadcast_signer(JOB).sign(1, self.seq, sent_at_ms, command);
        WorkerInput::Delivered { delivery: Delivery::Broadcast(signed), unix_ms: NOW_MS }
    }
}

fn assign(shard: u64, epoch: u64) -> Command {
    Command::Assign {
        job: JOB,
        shard: ShardId(shard),
        epoch,
        puzzle: Puzzle::append(b"machine".to_vec(), Encoding::Be32, 20).expect("puzzle"),
        range: NonceRange::new(0, 1 << 20),
        mode: Mode::Exhaustive,
        share_bits: 8,
    }
}

fn emitted(out: &[WorkerOutput]) -> Vec<&EventBody> {
    out.iter().filter_map(|o| if let WorkerOutput::Emit(b) = o { Some(b) } else { None }).collect()
}

#[test]
fn assign_shrink_and_revoke_are_obeyed_only_at_their_epoch() {
    let mut c = Coordinator::new();
    let mut m = WorkerMachine::new(c.rules(ms(250)));
    let hello = m.handle(ms(0), WorkerInput::Start);
    assert!(matches!(emitted(&hello)[..], [EventBody::Hello { cpus: 2, .. }]), "{hello:?}");
    let out = m.handle(ms(10), c.direct(assign(1, 7)));
    assert!(matches!(&out[..], [WorkerOutput::Search { shard: ShardId(1), epoch: 7, .. }]), "{out:?}");
    // A duplicate delivery (a second copy from SQS) starts nothing.
    assert!(m.handle(ms(20), c.direct(assign(1, 7))).is_empty());
    // A Shrink or Revoke of another epoch is ignored; of this one, obeyed.
    let shrink = |epoch| Command::Shrink { job: JOB, shard: ShardId(1), epoch, new_end: 1 << 19 };
    assert!(m.handle(ms(30), c.direct(shrink(6))).is_empty());
    let out = m.handle(ms(40), c.direct(shrink(7)));
    assert_eq!(out, vec![WorkerOutput::Shrink { shard: ShardId(1), epoch: 7, new_end: 1 << 19 }]);
    let revoke = |epoch| Command::Revoke { job: JOB, shard: ShardId(1), epoch };
    assert!(m.handle(ms(50), c.direct(revoke(6))).is_empty());
    assert_eq!(m.handle(ms(60), c.direct(revoke(7))), vec![WorkerOutput::Cancel(ShardId(1))]);
    assert!(m.shards().is_empty());
    // The same shard id from a newer coordinator life replaces the old search.
    m.handle(ms(70), c.direct(assign(2, 1)));
    let out = m.handle(ms(80), c.direct(assign(2, 9)));
    assert!(
        matches!(&out[..], [WorkerOutput::Cancel(ShardId(2)), WorkerOutput::Search { epoch: 9, .. }]),
        "{out:?}"
    );
}

#[test]
fn forged_replayed_and_stale_commands_are_refused() {
    let mut c = Coordinator::new();
    let mut m = WorkerMachine::new(c.rules(ms(250)));
    m.handle(ms(0), WorkerInput::Start);
    // Sealed with another worker's key.
    let other = c.secret.worker_key(JOB, &WorkerId("w1-m".into())).seal_command(1, 1, assign(1, 1));
    let out = m.handle(ms(1), WorkerInput::Delivered { delivery: Delivery::Direct(other), unix_ms: NOW_MS });
    assert_eq!(out, vec![WorkerOutput::Refused("a command whose tag does not open with our key")]);
    // A replay of a command already taken.
    let sealed = c.secret.worker_key(JOB, &c.worker).seal_command(1, 1, assign(1, 1));
    m.handle(ms(2), WorkerInput::Delivered { delivery: Delivery::Direct(sealed.clone()), unix_ms: NOW_MS });
    let out = m.handle(ms(3), WorkerInput::Delivered { delivery: Delivery::Direct(sealed), unix_ms: NOW_MS });
    assert_eq!(out, vec![WorkerOutput::Refused("a replayed command")]);
    // A Stop broadcast whose clock is past the skew: a captured one, replayed later.
    let late = NOW_MS - BROADCAST_SKEW.as_millis() as u64 - 1;
    let out = m.handle(ms(4), c.broadcast_at(Command::Stop { job: Some(JOB) }, late));
    assert_eq!(out, vec![WorkerOutput::Refused("a broadcast whose clock is far from ours")]);
    assert_eq!(m.refused(), 3);
    assert_eq!(m.exited(), None);
    // A fresh one is obeyed: halt, the final progress of the running shard, Bye, exit.
    let out = m.handle(ms(5), c.broadcast_at(Command::Stop { job: Some(JOB) }, NOW_MS));
    assert_eq!(
        out,
        vec![
            WorkerOutput::Halt,
            WorkerOutput::Beat,
            WorkerOutput::Emit(EventBody::Bye { reason: ByeReason::Stopped }),
            WorkerOutput::Exit(ExitReason::Stopped),
        ]
    );
    assert_eq!(m.poll_timeout(), None);
    assert!(m.handle(ms(6), WorkerInput::Tick).is_empty(), "nothing after the exit");
}

#[test]
fn it_beats_on_its_heartbeat_repeats_hello_until_known_and_is_orphaned_by_silence() {
    let mut c = Coordinator::new();
    let mut m = WorkerMachine::new(c.rules(ms(3000)));
    m.handle(ms(0), WorkerInput::Start);
    // It looks at itself every second (the heartbeat is longer) and beats every 3 s.
    assert_eq!(m.poll_timeout(), Some(ms(1000)));
    let mut beats = Vec::new();
    while let Some(at) = m.poll_timeout().filter(|&at| at <= ms(6000)) {
        let out = m.handle(at, WorkerInput::Tick);
        if out.contains(&WorkerOutput::Beat) {
            // Not known yet: each beat says Hello again first (the first may have been lost).
            assert!(matches!(emitted(&out)[..], [EventBody::Hello { .. }]), "{out:?}");
            beats.push(at);
        }
    }
    assert_eq!(beats, vec![ms(3000), ms(6000)]);
    // Once assigned, it is known: beats without Hello.
    m.handle(ms(6500), c.direct(assign(1, 1)));
    let out = m.handle(ms(9000), WorkerInput::Tick);
    assert_eq!(out, vec![WorkerOutput::Beat]);
    // A keep-alive of another coordinator life: Hello again, to the new one.
    m.handle(ms(9100), c.broadcast_at(Command::KeepAlive { job: JOB, incarnation: 1 }, NOW_MS));
    let out = m.handle(ms(9200), c.broadcast_at(Command::KeepAlive { job: JOB, incarnation: 2 }, NOW_MS));
    assert!(matches!(emitted(&out)[..], [EventBody::Hello { .. }]), "{out:?}");
    // Then silence past the orphan timeout (10 s from the last command heard, at 9.2 s).
    let out = m.handle(ms(19_200), WorkerInput::Tick);
    assert!(!out.iter().any(|o| matches!(o, WorkerOutput::Exit(_))), "not yet: {out:?}");
    let out = m.handle(ms(19_201), WorkerInput::Tick);
    assert_eq!(out.last(), Some(&WorkerOutput::Exit(ExitReason::Orphaned)), "{out:?}");
    assert!(emitted(&out).contains(&&EventBody::Bye { reason: ByeReason::Orphaned }), "{out:?}");
}

#[test]
fn a_terminated_worker_sends_its_progress_then_says_why_it_left() {
    let mut c = Coordinator::new();
    let mut m = WorkerMachine::new(c.rules(ms(60_000)));
    m.handle(ms(0), WorkerInput::Start);
    m.handle(ms(10), c.direct(assign(1, 1)));
    let out = m.handle(ms(600), WorkerInput::Shutdown(Shutdown::Terminated));
    assert_eq!(
        out,
        vec![
            WorkerOutput::Halt,
            WorkerOutput::Beat,
            WorkerOutput::Emit(EventBody::Bye { reason: ByeReason::Terminated }),
            WorkerOutput::Exit(ExitReason::Terminated),
        ]
    );
    // A `first` find of a shard it no longer runs is still reported, without a flush.
    let mut m = WorkerMachine::new(c.rules(ms(60_000)));
    m.handle(ms(0), WorkerInput::Start);
    m.handle(ms(10), c.direct(assign(3, 4)));
    let out = m.handle(ms(20), WorkerInput::FirstFound { shard: ShardId(3), epoch: 4, nonce: 99 });
    assert_eq!(
        out,
        vec![
            WorkerOutput::Beat,
            WorkerOutput::Emit(EventBody::Found { shard: ShardId(3), epoch: 4, nonce: 99 })
        ],
        "the progress before the find goes out first"
    );
    let out = m.handle(ms(30), WorkerInput::FirstFound { shard: ShardId(3), epoch: 4, nonce: 120 });
    assert_eq!(out, vec![WorkerOutput::Emit(EventBody::Found { shard: ShardId(3), epoch: 4, nonce: 120 })]);
}
