//! `EventRouter`: the coordinator's incoming side. Long-polls the events queue and hands each
//! event to the job it names. One router serves every job of a process (the daemon runs
//! many), so events of unknown or finished jobs are expected: they are deleted and counted
//! as ghosts. Bodies that do not decode are moved to the dead-letter queue.

use crate::clients::{describe, AwsClients};
use crate::fabric::Fabric;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use protocol::{codec, Event, JobId, Message};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Long-poll wait: the longest SQS allows, so an idle queue costs 3 requests a minute.
pub const LONG_POLL_S: i32 = 20;

/// Delivers one job's events (in the coordinator: into its supervisor's mailbox).
pub type Deliver = Box<dyn Fn(Event) + Send + Sync>;

/// What the router has seen, for logs, `--json` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub delivered: u64,
    /// Events of jobs this process does not run (earlier or other jobs).
    pub ghosts: u64,
    /// Bodies that did not decode, moved to the dead-letter queue.
    pub undecodable: u64,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<JobId, Deliver>>,
    delivered: AtomicU64,
    ghosts: AtomicU64,
    undecodable: AtomicU64,
}

/// Aborts the pollers when the last router handle goes.
struct Pollers(Vec<JoinHandle<()>>);

impl Drop for Pollers {
    fn drop(&mut self) {
        for p in &self.0 {
            p.abort();
        }
    }
}

/// See the module docs. Clones share the routes and the pollers.
#[derive(Clone)]
pub struct EventRouter {
    shared: Arc<Shared>,
    _pollers: Arc<Pollers>,
}

impl std::fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRouter").field("stats", &self.stats()).finish()
    }
}

impl EventRouter {
    /// Starts `pollers` long-polling tasks on the current tokio runtime.
    pub fn start(clients: &AwsClients, fabric: &Fabric, pollers: usize) -> Self {
        let shared = Arc::new(Shared::default());
        let handles = (0..pollers.max(1))
            .map(|_| tokio::spawn(poll(clients.sqs.clone(), fabric.clone(), Arc::clone(&shared))))
            .collect();
        EventRouter { shared, _pollers: Arc::new(Pollers(handles)) }
    }

    /// Routes `job`'s events to `deliver` from now on.
    pub fn register(&self, job: JobId, deliver: Deliver) {
        self.shared.routes.lock().unwrap_or_else(|e| e.into_inner()).insert(job, deliver);
    }

    /// `job` has ended: its late events are ghosts from now on.
    pub fn unregister(&self, job: JobId) {
        self.shared.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&job);
    }

    pub fn stats(&self) -> RouterStats {
        RouterStats {
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            ghosts: self.shared.ghosts.load(Ordering::Relaxed),
            undecodable: self.shared.undecodable.load(Ordering::Relaxed),
        }
    }
}

async fn poll(sqs: aws_sdk_sqs::Client, fabric: Fabric, shared: Arc<Shared>) {
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
        let mut done = vec![];
        for (i, m) in messages.into_iter().enumerate() {
            let (Some(receipt), body) = (m.receipt_handle, m.body.unwrap_or_default()) else { continue };
            let handled = match codec::decode_text(&body) {
                Ok(Message::Event(ev)) => {
                    route(&shared, ev);
                    true
                }
                Ok(Message::Command(_)) => dead_letter(&sqs, &fabric, &shared, body, "a command").await,
                Err(e) => dead_letter(&sqs, &fabric, &shared, body, &e.to_string()).await,
            };
            if handled {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build();
                match entry {
                    Ok(e) => done.push(e),
                    Err(e) => tracing::error!(error = %e, "cannot build a delete entry"),
                }
            }
        }
        if !done.is_empty() {
            let deleted =
                sqs.delete_message_batch().queue_url(&fabric.events_url).set_entries(Some(done)).send().await;
            // Undeleted events come back after the visibility timeout: duplicates are harmless.
            match deleted {
                Ok(out) if !out.failed().is_empty() => {
                    tracing::warn!(failed = out.failed().len(), "some events not deleted; they will repeat")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %describe("DeleteMessageBatch", e), "events will repeat"),
            }
        }
    }
}

fn route(shared: &Shared, ev: Event) {
    let routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
    match routes.get(&ev.job) {
        Some(deliver) => {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            deliver(ev);
        }
        None => {
            let n = shared.ghosts.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(job = %ev.job, worker = %ev.worker, ghosts = n, "event of a job not running here: dropped");
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
