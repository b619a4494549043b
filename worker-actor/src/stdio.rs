//! The stdio transport: commands arrive on stdin and events leave on stdout, one base64
//! envelope per line (the same text SQS bodies carry). Used by the `process` launcher.

use crate::actor::{EventSink, WorkerActor};
use actix::Addr;
use protocol::codec;
use protocol::{Message, SealedEvent};
use std::io::{BufRead, Write};
use std::sync::Mutex;

/// Writes events to stdout, one line each.
#[derive(Debug, Default)]
pub struct StdoutSink {
    out: Mutex<()>,
}

impl EventSink for StdoutSink {
    fn send(&self, event: SealedEvent) {
        let Ok(text) = codec::encode_text(&Message::Event(event)) else { return };
        let _guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        // A closed stdout means the coordinator is gone; stdin's EOF will stop us.
        let _ = writeln!(out, "{text}").and_then(|_| out.flush());
    }
}

/// Reads commands from stdin until EOF and hands them to the actor. Undecodable lines are
/// counted and logged, never fatal. Returns when stdin closes (the coordinator is gone).
pub fn pump_stdin(actor: Addr<WorkerActor>) -> u64 {
    let mut rejected = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if !crate::actor::deliver_text(&actor, &line) {
            rejected += 1;
        }
    }
    rejected
}
