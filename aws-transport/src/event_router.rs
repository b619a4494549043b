//! `EventRouter`: the coordinator's incoming side. Long-polls the events queue and hands each
//! event to the job it names. One router serves every job of a process (the daemon runs
//! many), so events of unknown or finished jobs are expected: they are deleted and counted
//! as ghosts. Bodies that do not decode are moved to the dead-letter queue.
//!
//! Cost and scale: each poller holds one long poll (3 requests a minute when idle) and
//! handles a few hundred events a second, so the number of pollers follows the fleet
//! ([`pollers_for`]). Deletes wait up to [`DELETE_DELAY`] to share one `DeleteMessageBatch`
//! of up to ten receipts: with a few workers that halves the deletes, with many it makes them
//! a tenth of the events.

use crate::clients::{describe, AwsClients};
use crate::fabric::Fabric;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use protocol::{codec, JobId, Message, SealedEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long-poll wait: the longest SQS allows, so an idle queue costs 3 requests a minute.
pub const LONG_POLL_S: i32 = 20;

/// How long a processed event's receipt may wait to share a `DeleteMessageBatch`. The events
/// queue hides a received message for 30 s (its visibility timeout), leaving 10 s for the
/// delete itself; one that comes later only lets a harmless duplicate through.
pub const DELETE_DELAY: Duration = Duration::from_secs(20);

/// Workers one poller serves. A poller's loop (receive up to 10, route, hand the receipts
/// to the deleter) runs at tens of milliseconds a round against SQS: hundreds of events a
/// second, and a worker sends one every heartbeat (seconds).
pub const WORKERS_PER_POLLER: usize = 250;

/// Most pollers a process runs.
pub const MAX_POLLERS: usize = 64;

/// Pollers for a fleet of `workers`: one per [`WORKERS_PER_POLLER`], at least one.
pub fn pollers_for(workers: usize) -> usize {
    (1 + workers / WORKERS_PER_POLLER).min(MAX_POLLERS)
}

/// Delivers one job's events (in the coordinator: into its supervisor's mailbox).
pub type Deliver = Box<dyn Fn(SealedEvent) + Send + Sync>;

/// What the router has seen, for logs, `--json` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Events routed to a job this coordinator runs.
    pub delivered: u64,
    /// Events of jobs this process does not run (earlier or other jobs).
    pub ghosts: u64,
    /// Bodies that did not decode, moved to the dead-letter queue.
    pub undecodable: u64,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<JobId, Deliver>>,
    /// Events delivered to each job with a route.
    per_job: Mutex<HashMap<JobId, u64>>,
    delivered: AtomicU64,
    ghosts: AtomicU64,
    undecodable: AtomicU64,
}

/// The router's tasks: the pollers (resized as fleets come and go) and the deleter. Aborted
/// when the last router handle goes.
struct Tasks {
    pollers: Mutex<Vec<JoinHandle<()>>>,
    deleter: JoinHandle<()>,
    sqs: aws_sdk_sqs::Client,
    fabric: Fabric,
    receipts: mpsc::UnboundedSender<String>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for p in self.pollers.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            p.abort();
        }
        self.deleter.abort();
    }
}

/// See the module docs. Clones share the routes and the pollers.
#[derive(Clone)]
pub struct EventRouter {
    shared: Arc<Shared>,
    tasks: Arc<Tasks>,
}

impl std::fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRouter").field("stats", &self.stats()).field("pollers", &self.pollers()).finish()
    }
}

impl EventRouter {
    /// Starts `pollers` long-polling tasks and the deleter on the current tokio runtime.
    pub fn start(clients: &AwsClients, fabric: &Fabric, pollers: usize) -> Self {
        let shared = Arc::new(Shared::default());
        let (receipts, rx) = mpsc::unbounded_channel();
        let deleter = tokio::spawn(delete_in_batches(clients.sqs.clone(), fabric.events_url.clone(), rx));
        let tasks = Tasks {
            pollers: Mutex::new(Vec::new()),
            deleter,
            sqs: clients.sqs.clone(),
            fabric: fabric.clone(),
            receipts,
        };
        let router = EventRouter { shared, tasks: Arc::new(tasks) };
        router.set_pollers(pollers);
        router
    }

    /// Grows or shrinks the pollers to `n` (at least one, at most [`MAX_POLLERS`]). A poller
    /// stopped mid-receive loses nothing: what it held comes back after the visibility timeout.
    pub fn set_pollers(&self, n: usize) {
        let n = n.clamp(1, MAX_POLLERS);
        let mut pollers = self.tasks.pollers.lock().unwrap_or_else(|e| e.into_inner());
        while pollers.len() > n {
            if let Some(p) = pollers.pop() {
                p.abort();
            }
        }
        while pollers.len() < n {
            let t = &self.tasks;
            pollers.push(tokio::spawn(poll(
                t.sqs.clone(),
                t.fabric.clone(),
                Arc::clone(&self.shared),
                t.receipts.clone(),
            )));
        }
    }

    /// Pollers running now.
    pub fn pollers(&self) -> usize {
        self.tasks.pollers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Routes `job`'s events to `deliver` from now on.
    pub fn register(&self, job: JobId, deliver: Deliver) {
        self.shared.routes.lock().unwrap_or_else(|e| e.into_inner()).insert(job, deliver);
    }

    /// `job` has ended: its late events are ghosts from now on.
    pub fn unregister(&self, job: JobId) {
        self.shared.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&job);
        self.shared.per_job.lock().unwrap_or_else(|e| e.into_inner()).remove(&job);
    }

    /// Events delivered to `job` so far (0 once it is unregistered).
    pub fn delivered_to(&self, job: JobId) -> u64 {
        self.shared.per_job.lock().unwrap_or_else(|e| e.into_inner()).get(&job).copied().unwrap_or(0)
    }

    /// What it has routed, dropped and dead-lettered so far.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            ghosts: self.shared.ghosts.load(Ordering::Relaxed),
            undecodable: self.shared.undecodable.load(Ordering::Relaxed),
        }
    }
}

/// Collects receipts and deletes them ten at a time, or when the oldest has waited
/// [`DELETE_DELAY`]. Each batch is its own task, so deletes keep up with any number of pollers.
async fn delete_in_batches(sqs: aws_sdk_sqs::Client, queue: String, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut pending: Vec<String> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let flush = tokio::select! {
            r = rx.recv() => match r {
                Some(receipt) => {
                    pending.push(receipt);
                    due.get_or_insert_with(|| tokio::time::Instant::now() + DELETE_DELAY);
                    pending.len() >= 10
                }
                None => true,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => true,
        };
        if flush && !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            due = None;
            tokio::spawn(delete_batch(sqs.clone(), queue.clone(), batch));
        }
        if rx.is_closed() && pending.is_empty() {
            return;
        }
    }
}

async fn delete_batch(sqs: aws_sdk_sqs::Client, queue: String, receipts: Vec<String>) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            match DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(r).build() {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a delete entry");
                    None
                }
            }
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    let deleted = sqs.delete_message_batch().queue_url(&queue).set_entries(Some(entries)).send().await;
    // Undeleted events come back after the visibility timeout: duplicates are harmless.
    match deleted {
        Ok(out) if !out.failed().is_empty() => {
            tracing::warn!(failed = out.failed().len(), "some events not deleted; they will repeat")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %describe("DeleteMessageBatch", e), "events will repeat"),
    }
}

async fn poll(
    sqs: aws_sdk_sqs::Client,
    fabric: Fabric,
    shared: Arc<Shared>,
    receipts: mpsc::UnboundedSender<String>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&fabric.events_url)
            .max_number_of_messages(10)
            .wait_time_seconds(LONG_POLL_S)
            .send()
            .await;
        let messages = match received {
            Ok(out) => {
                backoff = Duration::from_millis(200);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(error = %describe("ReceiveMessage on the events queue", e), "retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(20));
                continue;
            }
        };
        for m in messages {
            let (Some(receipt), body) = (m.receipt_handle, m.body.unwrap_or_default()) else { continue };
            let handled = match codec::decode_text(&body) {
                Ok(Message::Event(ev)) => {
                    route(&shared, ev);
                    true
                }
                Ok(Message::Command(_) | Message::Broadcast(_)) => {
                    dead_letter(&sqs, &fabric, &shared, body, "a command").await
                }
                Err(e) => dead_letter(&sqs, &fabric, &shared, body, &e.to_string()).await,
            };
            if handled && receipts.send(receipt).is_err() {
                return; // the router is gone
            }
        }
    }
}

/// Hands an event to its job, still sealed: the job checks the tag (it has the keys).
fn route(shared: &Shared, sealed: SealedEvent) {
    let routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
    let job = sealed.event.job;
    match routes.get(&job) {
        Some(deliver) => {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            *shared.per_job.lock().unwrap_or_else(|e| e.into_inner()).entry(job).or_default() += 1;
            deliver(sealed);
        }
        None => {
            let n = shared.ghosts.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(%job, worker = %sealed.event.worker, ghosts = n, "event of a job not running here: dropped");
        }
    }
}

/// Moves a poison body to the DLQ. Answers whether it may now be deleted from the events
/// queue (if the DLQ refuses it, the redrive policy moves it after a few receives instead).
async fn dead_letter(
    sqs: &aws_sdk_sqs::Client,
    fabric: &Fabric,
    shared: &Shared,
    body: String,
    why: &str,
) -> bool {
    let n = shared.undecodable.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(
        reason = why,
        bytes = body.len(),
        undecodable = n,
        "undecodable event moved to the dead-letter queue"
    );
    match sqs.send_message().queue_url(&fabric.dlq_url).message_body(body).send().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %describe("SendMessage to the DLQ", e), "left for the redrive policy");
            false
        }
    }
}
