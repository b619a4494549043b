//! The `aws` transport on the worker's side: events to the SQS events queue through an
//! [`EventSender`], commands from the worker's own inbox queue.

use crate::actor::{EventSink, ExitReason, LocalStop, Shutdown, WorkerActor, WorkerConfig};
use actix::{Actor, Addr};
use aws_transport::{AwsClients, EventSender, ResourceNames, WorkerLink};
use protocol::{codec, Message, SealedEvent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long queued events (the final heartbeat, `Bye`) may take to leave at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an `aws` worker connects (from `NONCE_AWS_PREFIX`, `NONCE_EVENTS_QUEUE_URL`,
/// `NONCE_CONTROL_TOPIC_ARN`, or from the coordinator's own set-up for in-process workers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEndpoints {
    /// The deployment's resource prefix (names the worker's inbox).
    pub prefix: String,
    /// The events queue workers send to.
    pub events_url: String,
    /// The control topic the worker's inbox subscribes to.
    pub topic_arn: String,
    /// A file to append this worker's AWS request counts to when it ends
    /// (`NONCE_AWS_CALL_LOG`: tools and tests collect them so).
    pub call_log: Option<std::path::PathBuf>,
}

/// Runs one worker over SQS and SNS: opens its inbox, runs the actor until it stops (a
/// `Stop`, the orphan timeout, a failure) or `stop` resolves (a signal), lets the last events
/// leave, and deletes the inbox. Answers why the worker stopped.
pub async fn serve(
    cfg: WorkerConfig,
    clients: &AwsClients,
    ends: &AwsEndpoints,
    stop: impl std::future::Future<Output = ()>,
) -> Result<ExitReason, aws_transport::AwsError> {
    serve_through(cfg, clients, ends, stop, |sink| sink).await
}

/// As [`serve`], with the worker's events passing through `through` on their way to the
/// events queue (the tests' lying worker rewrites them there; `serve` passes them as they are).
pub async fn serve_through(
    mut cfg: WorkerConfig,
    clients: &AwsClients,
    ends: &AwsEndpoints,
    stop: impl std::future::Future<Output = ()>,
    through: impl FnOnce(Arc<dyn EventSink>) -> Arc<dyn EventSink>,
) -> Result<ExitReason, aws_transport::AwsError> {
    let started = Instant::now();
    let names = ResourceNames::new(&ends.prefix)?;
    let link_cfg = aws_transport::worker_link::LinkConfig {
        job: cfg.job,
        events_url: ends.events_url.clone(),
        topic_arn: ends.topic_arn.clone(),
        inbox_queue: names.inbox_queue(&cfg.id.0),
        orphan_timeout: cfg.orphan_timeout,
    };
    let touch_every = (cfg.orphan_timeout / 3).max(Duration::from_secs(1));
    let requests_before = clients.calls.sqs();
    let link = Arc::new(WorkerLink::open(clients, &link_cfg).await?);
    cfg.inbox = link.inbox_url().to_string();
    let worker = cfg.id.clone();
    let (sender, flushed) = EventSender::start(clients.sqs.clone(), ends.events_url.clone());
    let reason = Arc::new(Mutex::new(ExitReason::Stopped));
    let seen = Arc::clone(&reason);
    let actor = WorkerActor::new(cfg, through(Arc::new(SqsSink(sender))))
        .on_exit(move |r| *seen.lock().unwrap_or_else(|e| e.into_inner()) = r)
        .start();
    let pump = tokio::spawn({
        let (link, actor) = (Arc::clone(&link), actor.clone());
        async move { pump_inbox(&link, actor, touch_every).await }
    });
    let signalled = tokio::select! {
        _ = stop => true,
        _ = wait_stopped(actor.clone()) => false,
    };
    actor.do_send(LocalStop(if signalled { Shutdown::Terminated } else { Shutdown::Stopped }));
    // The actor's `stopped` joins the hashing threads and says Bye.
    wait_stopped(actor).await;
    pump.abort();
    // The actor and its searches are gone, and with them every handle on the sender. The
    // last events (Bye) and the inbox's removal are independent: both at once.
    let flush = async {
        if tokio::time::timeout(FLUSH_TIMEOUT, flushed).await.is_err() {
            tracing::warn!(%worker, "the last events did not leave in time");
        }
    };
    tokio::join!(flush, link.close());
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let requests = clients.calls.sqs() - requests_before;
    tracing::info!(
        %worker,
        sqs_requests = requests,
        minutes = format!("{minutes:.2}"),
        per_minute = format!("{:.2}", requests as f64 / minutes.max(1e-9)),
        "worker done"
    );
    if let Some(path) = &ends.call_log {
        clients.calls.append_to_call_log(path, "worker", started.elapsed().as_secs_f64());
    }
    let r = *reason.lock().unwrap_or_else(|e| e.into_inner());
    Ok(r)
}

/// Resolves once the actor has stopped.
pub async fn wait_stopped(actor: Addr<WorkerActor>) {
    while actor.connected() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends events to the events queue (batched by the sender's task).
#[derive(Debug)]
pub struct SqsSink(pub EventSender);

impl EventSink for SqsSink {
    fn send(&self, event: SealedEvent) {
        match codec::encode_text(&Message::Event(event)) {
            Ok(body) => self.0.send(body),
            Err(e) => tracing::error!(error = %e, "cannot encode an event"),
        }
    }
}

/// Long-polls the inbox and hands commands to the actor until the actor stops. Bodies that
/// do not decode are counted and logged, never fatal.
pub async fn pump_inbox(link: &WorkerLink, actor: Addr<WorkerActor>, touch_every: Duration) -> u64 {
    let mut rejected = 0;
    let mut backoff = Duration::from_millis(200);
    let mut touched = Instant::now();
    while actor.connected() {
        // The inbox's alive tag: what tells the daemon's sweep that this worker still runs.
        if touched.elapsed() >= touch_every {
            touched = Instant::now();
            link.touch().await;
        }
        match link.receive().await {
            Ok(bodies) => {
                backoff = Duration::from_millis(200);
                for body in bodies {
                    if !crate::actor::deliver_text(&actor, &body) {
                        rejected += 1;
                    }
                }
            }
            Err(e) => {
                // The orphan timeout ends the worker if SQS stays out of reach.
                tracing::warn!(error = %e, "inbox unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    rejected
}
