//! The `pipe` transport: commands to `nonce-worker` processes over their stdin, as the wire
//! codec's base64 text (what an SQS body carries). Their events come back on stdout, read
//! by the `process` launcher, which owns the processes.

use super::Transport;
use protocol::{codec, Message, SealedCommand, SignedBroadcast};
use std::collections::HashMap;
use std::io::Write;
use std::process::ChildStdin;
use std::sync::{Arc, Mutex};

/// Inboxes of process workers: their stdin pipes.
#[derive(Clone, Default)]
pub struct PipeNetwork {
    inboxes: Arc<Mutex<HashMap<String, ChildStdin>>>,
}

impl std::fmt::Debug for PipeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipeNetwork")
    }
}

impl PipeNetwork {
    /// Makes a started worker's stdin reachable as `inbox`.
    pub fn register(&self, inbox: String, stdin: ChildStdin) {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).insert(inbox, stdin);
    }

    /// Forgets an inbox (its worker has exited).
    pub fn unregister(&self, inbox: &str) {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).remove(inbox);
    }

    fn write(pipe: &mut ChildStdin, message: &Message) {
        if let Ok(text) = codec::encode_text(message) {
            // A closed pipe is a dead worker: its exit is reported by the reader thread.
            let _ = writeln!(pipe, "{text}").and_then(|_| pipe.flush());
        }
    }

    /// Closes every pipe: workers read EOF and stop.
    pub fn close_all(&self) {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Transport for PipeNetwork {
    fn send(&self, inbox: &str, command: SealedCommand) {
        if let Some(pipe) = self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(inbox) {
            Self::write(pipe, &Message::Command(command));
        }
    }

    fn broadcast(&self, broadcast: SignedBroadcast) {
        let message = Message::Broadcast(broadcast);
        for pipe in self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).values_mut() {
            Self::write(pipe, &message);
        }
    }
}
