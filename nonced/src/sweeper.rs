//! The daemon's inbox sweeper: at start and then periodically, removes the inbox queues (and
//! their subscriptions) of workers that died while their coordinator was dead too, which no
//! job-end sweep will ever see. See `aws_transport::sweep::sweep_stale_inboxes` for the rule
//! that keeps live workers' inboxes, a concurrent CLI run's included, out of reach.

use super::methods::DaemonMethods;
use coordinator::transport::aws::AwsContext;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Sweeps now and every `every` until the task is dropped.
pub async fn run(aws: AwsContext, methods: Arc<DaemonMethods>, every: Duration) {
    loop {
        let running: HashSet<_> = methods.running().into_iter().collect();
        let inboxes = aws.fabric.names.inbox_prefix();
        let n = aws_transport::sweep::sweep_stale_inboxes(
            &aws.clients,
            &aws.fabric.topic_arn,
            &inboxes,
            &running,
        )
        .await;
        if n > 0 {
            tracing::info!(inboxes = n, "swept inboxes that dead workers of dead coordinators left");
        }
        tokio::time::sleep(every).await;
    }
}
