//! `Fabric`: the shared resources of one deployment (events queue, its DLQ, the control
//! topic), found by name or, with bootstrap, created. Production creates them with Terraform
//! and only looks them up; emulators and dev accounts can bootstrap.

use crate::clients::{describe, AwsClients};
use crate::error::AwsError;
use crate::names::ResourceNames;
use aws_sdk_sqs::types::QueueAttributeName;

/// A failing event is retried this many times before the redrive policy dead-letters it.
pub const MAX_RECEIVES: u32 = 5;

/// The deployment's shared resources.
#[derive(Debug, Clone)]
pub struct Fabric {
    /// The names it was found by.
    pub names: ResourceNames,
    /// The events queue's URL.
    pub events_url: String,
    /// Its dead-letter queue's URL.
    pub dlq_url: String,
    /// The control topic's ARN.
    pub topic_arn: String,
}

impl Fabric {
    /// Finds the resources named by `names`; with `bootstrap`, creates any that are missing
    /// (idempotent: CreateQueue and CreateTopic return existing ones).
    pub async fn open(clients: &AwsClients, names: ResourceNames, bootstrap: bool) -> Result<Self, AwsError> {
        let (events_url, dlq_url, topic_arn) = if bootstrap {
            let dlq_url = create_queue(clients, &names.dead_letter_queue(), vec![]).await?;
            let dlq_arn = queue_arn(clients, &dlq_url).await?;
            let redrive =
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES});
            let events_url = create_queue(
                clients,
                &names.events_queue(),
                vec![
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                    (QueueAttributeName::VisibilityTimeout, "30".into()),
                ],
            )
            .await?;
            let topic = clients
                .sns
                .create_topic()
                .name(names.control_topic())
                .send()
                .await
                .map_err(|e| AwsError::Call(describe("CreateTopic", e)))?;
            let topic_arn = topic
                .topic_arn()
                .ok_or(AwsError::Incomplete { operation: "CreateTopic", missing: "topic ARN" })?
                .to_string();
            (events_url, dlq_url, topic_arn)
        } else {
            let events_url = queue_url(clients, &names.events_queue()).await?;
            let dlq_url = queue_url(clients, &names.dead_letter_queue()).await?;
            let topic_arn = find_topic(clients, &names.control_topic()).await?;
            (events_url, dlq_url, topic_arn)
        };
        Ok(Fabric { names, events_url, dlq_url, topic_arn })
    }
}

async fn create_queue(
    clients: &AwsClients,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, AwsError> {
    let mut req = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true");
    for (k, v) in attributes {
        req = req.attributes(k, v);
    }
    let out = req.send().await.map_err(|e| AwsError::Call(describe(&format!("CreateQueue {name}"), e)))?;
    Ok(out.queue_url().ok_or(AwsError::Incomplete { operation: "CreateQueue", missing: "URL" })?.to_string())
}

async fn queue_url(clients: &AwsClients, name: &str) -> Result<String, AwsError> {
    let out = clients.sqs.get_queue_url().queue_name(name).send().await.map_err(|e| {
        // "Not found" only when SQS said so: a refused connection or a bad credential is not
        // fixed by deploying.
        if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) {
            AwsError::NotFound { kind: "queue", name: name.to_string() }
        } else {
            AwsError::Call(describe(&format!("GetQueueUrl {name}"), e))
        }
    })?;
    Ok(out.queue_url().ok_or(AwsError::Incomplete { operation: "GetQueueUrl", missing: "URL" })?.to_string())
}

/// The ARN of a queue.
pub async fn queue_arn(clients: &AwsClients, url: &str) -> Result<String, AwsError> {
    let out = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::Call(describe("GetQueueAttributes", e)))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or(AwsError::Incomplete { operation: "GetQueueAttributes", missing: "QueueArn" })
}

async fn find_topic(clients: &AwsClients, name: &str) -> Result<String, AwsError> {
    let suffix = format!(":{name}");
    let mut pages = clients.sns.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::Call(describe("ListTopics", e)))?;
        for t in page.topics() {
            if let Some(arn) = t.topic_arn().filter(|a| a.ends_with(&suffix)) {
                return Ok(arn.to_string());
            }
        }
    }
    Err(AwsError::NotFound { kind: "SNS topic", name: name.to_string() })
}
