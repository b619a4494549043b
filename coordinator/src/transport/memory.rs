//! The `memory` transport: inboxes are actor addresses, so in-process workers get their
//! commands as actor messages and send events straight to the job's supervisor.

use super::{Transport, WorkerEvent};
use actix::prelude::*;
use protocol::{SealedCommand, SealedEvent, SignedBroadcast};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use worker_actor::{Delivery, EventSink, Inbox};

/// In-process transport: inboxes are actor addresses, keyed by inbox name.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inboxes: Arc<Mutex<HashMap<String, Recipient<Inbox>>>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").field("inboxes", &self.with(|m| m.len())).finish()
    }
}

impl MemoryNetwork {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Recipient<Inbox>>) -> R) -> R {
        f(&mut self.inboxes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Delivers what is sent to `inbox` to `recipient`.
    pub fn register(&self, inbox: String, recipient: Recipient<Inbox>) {
        self.with(|m| m.insert(inbox, recipient));
    }

    /// Forgets `inbox` (its worker is gone).
    pub fn unregister(&self, inbox: &str) {
        self.with(|m| m.remove(inbox));
    }

    /// Inboxes registered now.
    pub fn inbox_count(&self) -> usize {
        self.with(|m| m.len())
    }
}

impl Transport for MemoryNetwork {
    fn send(&self, inbox: &str, command: SealedCommand) {
        if let Some(r) = self.with(|m| m.get(inbox).cloned()) {
            r.do_send(Inbox(Delivery::Direct(command)));
        }
    }

    fn broadcast(&self, broadcast: SignedBroadcast) {
        let all: Vec<_> = self.with(|m| m.values().cloned().collect());
        for r in all {
            r.do_send(Inbox(Delivery::Broadcast(broadcast.clone())));
        }
    }
}

/// Workers' events straight into the supervisor's mailbox.
#[derive(Clone)]
pub struct MemorySink(pub Recipient<WorkerEvent>);

impl std::fmt::Debug for MemorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemorySink")
    }
}

impl EventSink for MemorySink {
    fn send(&self, event: SealedEvent) {
        self.0.do_send(WorkerEvent(event));
    }
}
