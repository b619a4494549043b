//! The worker's side: its own inbox queue, subscribed to the control topic, and an
//! [`EventSender`] to the events queue. The inbox is created at start and deleted (with its
//! subscription) on the way out, so no queue outlives its worker.
//!
//! The inbox has one reader that acts on each command once, so messages are never deleted:
//! a 12-hour visibility timeout hides them after the first receive and a 60-second
//! retention period lets SQS drop them. That saves a `DeleteMessageBatch` per receive.
//!
//! The inbox carries tags ([`JOB_TAG`], [`ORPHAN_TAG`], [`ALIVE_TAG`]) and the worker
//! refreshes [`ALIVE_TAG`] every third of its orphan timeout ([`WorkerLink::touch`]): an
//! inbox whose tag is older than its orphan timeout belongs to a worker that died without
//! cleaning up (a live worker touches it, one orphaned by its coordinator removes it
//! itself), which is what the daemon's sweep (`sweep::sweep_stale_inboxes`) looks for.

use crate::clients::{describe, AwsClients};
use crate::command_sender::send_bodies;
use crate::event_router::LONG_POLL_S;
use crate::AwsError;
use aws_sdk_sqs::types::QueueAttributeName;
use protocol::JobId;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where a worker connects: from its environment (see `nonce-worker`'s docs).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The worker's job.
    pub job: JobId,
    /// The events queue's URL.
    pub events_url: String,
    /// The control topic's ARN.
    pub topic_arn: String,
    /// The inbox queue's name (see `names::inbox_queue`).
    pub inbox_queue: String,
    /// The worker's orphan timeout (tagged on the inbox, for the sweep).
    pub orphan_timeout: Duration,
}

/// Inbox tag: the job the worker serves.
pub const JOB_TAG: &str = "nonce-cloud:job";
/// Inbox tag: the worker's orphan timeout, in seconds.
pub const ORPHAN_TAG: &str = "nonce-cloud:orphan-s";
/// Inbox tag: when the worker was last known alive, in Unix seconds.
pub const ALIVE_TAG: &str = "nonce-cloud:alive";

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An open inbox and its subscription. See the module docs.
#[derive(Debug)]
pub struct WorkerLink {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    inbox_url: String,
    subscription_arn: std::sync::Mutex<Option<String>>,
}

impl WorkerLink {
    /// Creates the inbox and subscribes it to the control topic (raw delivery, filtered to
    /// this job's broadcasts and the `all` ones). On failure nothing is left behind.
    pub async fn open(clients: &AwsClients, cfg: &LinkConfig) -> Result<Self, AwsError> {
        let arn = queue_arn_beside(&cfg.topic_arn, &cfg.inbox_queue);
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "control-topic",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn.clone().unwrap_or_else(|| "*".into()),
                "Condition": {"ArnEquals": {"aws:SourceArn": cfg.topic_arn}},
            }],
        });
        let created = clients
            .sqs
            .create_queue()
            .queue_name(&cfg.inbox_queue)
            .attributes(QueueAttributeName::VisibilityTimeout, "43200")
            .attributes(QueueAttributeName::MessageRetentionPeriod, "60")
            .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .tags(JOB_TAG, cfg.job.to_string())
            .tags(ORPHAN_TAG, cfg.orphan_timeout.as_secs().max(1).to_string())
            .tags(ALIVE_TAG, unix_now().to_string())
            .send()
            .await
            .map_err(|e| AwsError::Call(describe(&format!("CreateQueue {}", cfg.inbox_queue), e)))?;
        let inbox_url = created
            .queue_url()
            .ok_or(AwsError::Incomplete { operation: "CreateQueue", missing: "URL" })?
            .to_string();
        let link = WorkerLink {
            sqs: clients.sqs.clone(),
            sns: clients.sns.clone(),
            inbox_url,
            subscription_arn: std::sync::Mutex::new(None),
        };
        let arn = match arn {
            Some(a) => a,
            None => match crate::fabric::queue_arn(clients, &link.inbox_url).await {
                Ok(a) => a,
                Err(e) => {
                    link.close().await;
                    return Err(e);
                }
            },
        };
        let filter = serde_json::json!({ crate::JOB_ATTRIBUTE: [cfg.job.to_string(), "all"] });
        let subscribed = clients
            .sns
            .subscribe()
            .topic_arn(&cfg.topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .attributes("FilterPolicy", filter.to_string())
            .return_subscription_arn(true)
            .send()
            .await;
        match subscribed {
            Ok(out) => {
                *link.subscription_arn.lock().unwrap_or_else(|e| e.into_inner()) =
                    out.subscription_arn().map(str::to_string)
            }
            Err(e) => {
                link.close().await;
                return Err(AwsError::Call(describe("Subscribe to the control topic", e)));
            }
        }
        Ok(link)
    }

    /// Marks the inbox as alive now (one `TagQueue`). Best effort: a missed touch only
    /// matters after several, and the next one mends it.
    pub async fn touch(&self) {
        let tagged = self
            .sqs
            .tag_queue()
            .queue_url(&self.inbox_url)
            .tags(ALIVE_TAG, unix_now().to_string())
            .send()
            .await;
        if let Err(e) = tagged {
            tracing::warn!(error = %describe("TagQueue on the inbox", e), "inbox not marked alive");
        }
    }

    /// The inbox's URL: what the worker's `Hello` tells the coordinator.
    pub fn inbox_url(&self) -> &str {
        &self.inbox_url
    }

    /// One long poll of the inbox: the bodies that arrived (none after 20 quiet seconds).
    pub async fn receive(&self) -> Result<Vec<String>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.inbox_url)
            .max_number_of_messages(10)
            .wait_time_seconds(LONG_POLL_S)
            .send()
            .await
            .map_err(|e| describe("ReceiveMessage on the inbox", e))?;
        Ok(out.messages.unwrap_or_default().into_iter().filter_map(|m| m.body).collect())
    }

    /// Unsubscribes and deletes the inbox. Best effort: failures are logged (the daemon's
    /// sweep removes inboxes that dead workers leave behind).
    pub async fn close(&self) {
        let subscription = self.subscription_arn.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Independent calls: made together, so a stopping worker leaves sooner.
        let unsubscribe = async {
            if let Some(arn) = subscription {
                if let Err(e) = self.sns.unsubscribe().subscription_arn(arn).send().await {
                    tracing::warn!(error = %describe("Unsubscribe", e), "subscription left behind");
                }
            }
        };
        let delete = async {
            if let Err(e) = self.sqs.delete_queue().queue_url(&self.inbox_url).send().await {
                tracing::warn!(error = %describe("DeleteQueue", e), inbox = %self.inbox_url, "inbox left behind");
            }
        };
        tokio::join!(unsubscribe, delete);
    }
}

/// `arn:partition:sqs:region:account:name` for a queue in the topic's account and region,
/// which saves a `GetQueueAttributes` call. `None` when the topic ARN does not parse.
fn queue_arn_beside(topic_arn: &str, queue: &str) -> Option<String> {
    let parts: Vec<&str> = topic_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, _] => {
            Some(format!("arn:{partition}:sqs:{region}:{account}:{queue}"))
        }
        _ => None,
    }
}

/// A worker's events on their way to the events queue: callers (hashing threads too) never
/// wait; a task sends what has piled up in `SendMessageBatch` calls. Dropping every clone
/// lets the task send the rest and end: await the handle `start` returned for that.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<String>,
}

/// Time a send waits for company before it goes: a heartbeat and a `ShardDone` often
/// travel together.
const COALESCE: Duration = Duration::from_millis(10);

impl EventSender {
    /// Starts the sending task on the current tokio runtime.
    pub fn start(sqs: aws_sdk_sqs::Client, events_url: String) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                tokio::time::sleep(COALESCE).await;
                let mut bodies = vec![first];
                while let Ok(b) = rx.try_recv() {
                    bodies.push(b);
                }
                send_with_retries(&sqs, &events_url, bodies).await;
            }
        });
        (EventSender { tx }, task)
    }

    /// Queues one encoded event.
    pub fn send(&self, body: String) {
        let _ = self.tx.send(body);
    }
}

async fn send_with_retries(sqs: &aws_sdk_sqs::Client, url: &str, bodies: Vec<String>) {
    let mut wait = Duration::from_millis(250);
    for attempt in 1..=5 {
        // The SDK already retries each call; this covers longer outages. Heartbeats repeat
        // every finding and watermark, so what is finally dropped is reported again.
        match send_bodies(sqs, url, bodies.clone()).await {
            Ok(()) => return,
            Err(e) if attempt == 5 => tracing::error!(error = %e, "events dropped after 5 attempts"),
            Err(e) => tracing::warn!(error = %e, attempt, "events not sent; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_arn_from_the_topic() {
        assert_eq!(
            super::queue_arn_beside("arn:aws:sns:eu-west-1:123456789012:nc-control", "nc-inbox-w1")
                .as_deref(),
            Some("arn:aws:sqs:eu-west-1:123456789012:nc-inbox-w1")
        );
        assert_eq!(super::queue_arn_beside("garbage", "q"), None);
    }
}
