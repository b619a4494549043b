//! Removes the inboxes (and their subscriptions) that dead workers left behind: a worker
//! killed with SIGKILL, or a task that was stopped hard, cannot delete its own.

use crate::clients::{describe, AwsClients};
use std::collections::HashMap;

/// Deletes the queues at `inboxes` that still exist, and their subscriptions to `topic_arn`.
/// Answers how many were left behind (and are now gone).
pub async fn sweep_inboxes(clients: &AwsClients, topic_arn: &str, inboxes: &[String]) -> usize {
    let mut left = vec![];
    for url in inboxes {
        // A worker that left cleanly deleted its inbox: the lookup fails and there is nothing to do.
        if let Ok(arn) = crate::fabric::queue_arn(clients, url).await {
            left.push((url.clone(), arn));
        }
    }
    if left.is_empty() {
        return 0;
    }
    let mut subscriptions: HashMap<String, String> = HashMap::new();
    let mut pages = clients.sns.list_subscriptions_by_topic().topic_arn(topic_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => {
                for s in p.subscriptions() {
                    if let (Some(endpoint), Some(arn)) = (s.endpoint(), s.subscription_arn()) {
                        subscriptions.insert(endpoint.to_string(), arn.to_string());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %describe("ListSubscriptionsByTopic", e), "subscriptions not swept");
                break;
            }
        }
    }
    for (url, arn) in &left {
        if let Some(sub) = subscriptions.get(arn) {
            if let Err(e) = clients.sns.unsubscribe().subscription_arn(sub).send().await {
                tracing::warn!(error = %describe("Unsubscribe", e), "a dead worker's subscription stays");
            }
        }
        match clients.sqs.delete_queue().queue_url(url).send().await {
            Ok(_) => tracing::info!(inbox = %url, "swept a dead worker's inbox"),
            Err(e) => tracing::warn!(error = %describe("DeleteQueue", e), "a dead worker's inbox stays"),
        }
    }
    left.len()
}
