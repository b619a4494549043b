//! Removes the inboxes (and their subscriptions) that dead workers left behind: a worker
//! killed with SIGKILL, or a task that was stopped hard, cannot delete its own.
//!
//! Two sweeps: a job's coordinator removes the inboxes it wrote to once the job ends
//! ([`sweep_inboxes`]); and the daemon, at start and periodically, removes the inboxes of
//! jobs it does not run whose worker has not touched them for longer than its orphan
//! timeout ([`sweep_stale_inboxes`]): those whose worker died while its coordinator was dead
//! too. A live worker touches its inbox every third of that timeout, so a concurrent CLI
//! run's inboxes on the same prefix are never taken.

use crate::clients::{describe, AwsClients};
use crate::worker_link::{unix_now, ALIVE_TAG, JOB_TAG, ORPHAN_TAG};
use protocol::JobId;
use std::collections::{HashMap, HashSet};

/// Deletes the inboxes under `inbox_prefix` (`<prefix>-inbox-`) whose worker is gone: not
/// of a job in `running`, and not touched for longer than their orphan timeout. Inboxes
/// without the tags (made by something else) are left alone. Answers how many went.
pub async fn sweep_stale_inboxes(
    clients: &AwsClients,
    topic_arn: &str,
    inbox_prefix: &str,
    running: &HashSet<JobId>,
) -> usize {
    let mut urls = Vec::new();
    let mut pages = clients.sqs.list_queues().queue_name_prefix(inbox_prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => urls.extend(p.queue_urls().iter().cloned()),
            Err(e) => {
                tracing::warn!(error = %describe("ListQueues", e), "inbox sweep skipped");
                return 0;
            }
        }
    }
    let now = unix_now();
    let mut stale = Vec::new();
    for url in urls {
        let tags = match clients.sqs.list_queue_tags().queue_url(&url).send().await {
            Ok(t) => t.tags().cloned().unwrap_or_default(),
            Err(_) => continue, // deleted meanwhile, or not ours to read
        };
        let number = |k: &str| tags.get(k).and_then(|v| v.parse::<u64>().ok());
        let job = tags.get(JOB_TAG).and_then(|j| j.parse::<JobId>().ok());
        let (Some(job), Some(alive), Some(orphan)) = (job, number(ALIVE_TAG), number(ORPHAN_TAG)) else {
            continue;
        };
        if !running.contains(&job) && now.saturating_sub(alive) > orphan {
            stale.push((url, job));
        }
    }
    if stale.is_empty() {
        return 0;
    }
    sweep_inboxes(clients, topic_arn, inbox_prefix, &stale).await
}

/// Whether the queue at `url` is an inbox of `job` under `inbox_prefix`: its name has the
/// prefix and its job tag names the job. A queue that fails either check is never deleted,
/// whatever told us its URL.
async fn is_inbox_of(clients: &AwsClients, url: &str, inbox_prefix: &str, job: JobId) -> bool {
    let name = url.rsplit('/').next().unwrap_or_default();
    if !name.starts_with(inbox_prefix) || name.len() == inbox_prefix.len() {
        return false;
    }
    match clients.sqs.list_queue_tags().queue_url(url).send().await {
        Ok(t) => t.tags().and_then(|tags| tags.get(JOB_TAG)).is_some_and(|j| j.parse::<JobId>() == Ok(job)),
        Err(_) => false,
    }
}

/// Deletes the queues at `inboxes` that still exist and are inboxes of the job named beside
/// each ([`is_inbox_of`]), and their subscriptions to `topic_arn`. Answers how many were
/// left behind (and are now gone).
pub async fn sweep_inboxes(
    clients: &AwsClients,
    topic_arn: &str,
    inbox_prefix: &str,
    inboxes: &[(String, JobId)],
) -> usize {
    let mut left = vec![];
    for (url, job) in inboxes {
        // A worker that left cleanly deleted its inbox: the lookup fails and there is nothing to do.
        let Ok(arn) = crate::fabric::queue_arn(clients, url).await else { continue };
        if is_inbox_of(clients, url, inbox_prefix, *job).await {
            left.push((url.clone(), arn));
        } else {
            tracing::warn!(queue = %url, %job, "not an inbox of this job: left alone");
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
