//! `CommandSender`: the coordinator's outgoing side. Direct commands go to a worker's inbox
//! queue, broadcasts to the control topic. Callers never wait: commands are queued and a
//! task sends them, batching what piles up for the same inbox into `SendMessageBatch`.

use crate::clients::{describe, AwsClients};
use crate::AwsError;
use crate::JOB_ATTRIBUTE;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use protocol::{codec, Message, SealedCommand, SignedBroadcast};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// SQS batch limits: ten entries and 256 KiB.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;
/// Sends in flight at once (one per inbox batch or broadcast).
const IN_FLIGHT: usize = 32;

enum Outgoing {
    Direct { inbox: String, body: String },
    Broadcast { job: String, body: String },
}

/// See the module docs. Cheap to clone; the task ends when every clone is dropped.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Commands queued or in flight: a process waits for zero before it exits, so a final
    /// `Stop` is not lost with it.
    pending: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outgoing::Direct { inbox, .. } => write!(f, "Direct({inbox})"),
            Outgoing::Broadcast { job, .. } => write!(f, "Broadcast({job})"),
        }
    }
}

impl CommandSender {
    /// Starts the sending task on the current tokio runtime.
    pub fn start(clients: AwsClients, topic_arn: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(clients, topic_arn, rx, Arc::clone(&pending)));
        CommandSender { tx, pending }
    }

    /// Waits until everything queued so far has been sent (or failed), at most `timeout`.
    /// Answers whether it all went.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn enqueue(&self, item: Outgoing) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(item).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Queues a command for one worker's inbox (its queue URL).
    pub fn send(&self, inbox: &str, command: &SealedCommand) {
        if let Some(body) = encode(&Message::Command(command.clone())) {
            self.enqueue(Outgoing::Direct { inbox: inbox.to_string(), body });
        }
    }

    /// Queues a broadcast. Workers' subscriptions filter on the job, so `Stop { job: None }`
    /// is tagged `all` and reaches every worker of the deployment.
    pub fn broadcast(&self, broadcast: &SignedBroadcast) {
        let job = broadcast.command.job().map_or_else(|| "all".to_string(), |j| j.to_string());
        if let Some(body) = encode(&Message::Broadcast(broadcast.clone())) {
            self.enqueue(Outgoing::Broadcast { job, body });
        }
    }
}

fn encode(message: &Message) -> Option<String> {
    match codec::encode_text(message) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a command");
            None
        }
    }
}

async fn run(
    clients: AwsClients,
    topic_arn: String,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    pending: Arc<AtomicUsize>,
) {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Take everything already queued: that is what batching can merge.
        let mut direct: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut next = Some(first);
        while let Some(item) = next.take().or_else(|| rx.try_recv().ok()) {
            match item {
                Outgoing::Direct { inbox, body } => direct.entry(inbox).or_default().push(body),
                Outgoing::Broadcast { job, body } => {
                    let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
                    let (sns, topic, pending) =
                        (clients.sns.clone(), topic_arn.clone(), Arc::clone(&pending));
                    tokio::spawn(async move {
                        publish(&sns, &topic, &job, body).await;
                        pending.fetch_sub(1, Ordering::AcqRel);
                        drop(permit);
                    });
                }
            }
        }
        for (inbox, bodies) in direct {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
            let (sqs, pending) = (clients.sqs.clone(), Arc::clone(&pending));
            tokio::spawn(async move {
                let n = bodies.len();
                if let Err(e) = send_bodies(&sqs, &inbox, bodies).await {
                    // Usually a worker that has left and deleted its inbox.
                    tracing::debug!(%inbox, error = %e, "command not delivered");
                }
                pending.fetch_sub(n, Ordering::AcqRel);
                drop(permit);
            });
        }
    }
}

async fn publish(sns: &aws_sdk_sns::Client, topic: &str, job: &str, body: String) {
    let attr = match MessageAttributeValue::builder().data_type("String").string_value(job).build() {
        Ok(a) => a,
        Err(e) => return tracing::error!(error = %e, "cannot build a message attribute"),
    };
    let sent =
        sns.publish().topic_arn(topic).message(body).message_attributes(JOB_ATTRIBUTE, attr).send().await;
    if let Err(e) = sent {
        tracing::warn!(error = %describe("Publish", e), "broadcast not sent");
    }
}

/// Sends `bodies` to the queue at `url` in as few `SendMessageBatch` calls as the limits
/// allow. Entries the service refuses are reported in the error.
pub async fn send_bodies(sqs: &aws_sdk_sqs::Client, url: &str, bodies: Vec<String>) -> Result<(), AwsError> {
    let mut batch: Vec<SendMessageBatchRequestEntry> = vec![];
    let mut bytes = 0;
    let mut failures = vec![];
    let count = bodies.len();
    for (i, body) in bodies.into_iter().enumerate() {
        if batch.len() == BATCH_ENTRIES || (bytes + body.len() > BATCH_BYTES && !batch.is_empty()) {
            flush(sqs, url, std::mem::take(&mut batch), &mut failures).await;
            bytes = 0;
        }
        bytes += body.len();
        let entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(body)
            .build()
            .map_err(|e| AwsError::Invalid(format!("batch entry: {e}")))?;
        batch.push(entry);
    }
    if !batch.is_empty() {
        flush(sqs, url, batch, &mut failures).await;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(AwsError::Call(format!(
            "{} of {count} messages not sent: {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}

async fn flush(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: Vec<SendMessageBatchRequestEntry>,
    failures: &mut Vec<String>,
) {
    let n = batch.len();
    match sqs.send_message_batch().queue_url(url).set_entries(Some(batch)).send().await {
        Ok(out) => failures
            .extend(out.failed().iter().map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("")))),
        Err(e) => failures.push(format!("all {n} of a batch: {}", describe("SendMessageBatch", e))),
    }
}
