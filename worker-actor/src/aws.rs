//! The `aws` transport on the worker's side: events to the SQS events queue through an
//! [`EventSender`], commands from the worker's own inbox queue, and on ECS, the worker's
//! name from the task metadata endpoint.

use crate::actor::{EventSink, ExitReason, Inbox, WorkerActor, WorkerConfig};
use actix::{Actor, Addr};
use aws_transport::{AwsClients, EventSender, ResourceNames, WorkerLink};
use protocol::{codec, Event, Message};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long queued events (the final heartbeat, `Bye`) may take to leave at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an `aws` worker connects (from `NONCE_AWS_PREFIX`, `NONCE_EVENTS_QUEUE_URL`,
/// `NONCE_CONTROL_TOPIC_ARN`, or from the coordinator's own set-up for in-process workers).
#[derive(Debug, Clone)]
pub struct AwsEndpoints {
    pub prefix: String,
    pub events_url: String,
    pub topic_arn: String,
}

/// Runs one worker over SQS and SNS: opens its inbox, runs the actor until it stops (a
/// `Stop`, the orphan timeout, a failure) or `stop` resolves (a signal), lets the last events
/// leave, and deletes the inbox. Answers why the worker stopped.
pub async fn serve(
    mut cfg: WorkerConfig,
    clients: &AwsClients,
    ends: &AwsEndpoints,
    stop: impl std::future::Future<Output = ()>,
) -> Result<ExitReason, String> {
    let started = Instant::now();
    let names = ResourceNames::new(&ends.prefix)?;
    let link_cfg = aws_transport::worker_link::LinkConfig {
        job: cfg.job,
        events_url: ends.events_url.clone(),
        topic_arn: ends.topic_arn.clone(),
        inbox_queue: names.inbox_queue(&cfg.id.0),
    };
    let requests_before = clients.calls.sqs();
    let link = Arc::new(WorkerLink::open(clients, &link_cfg).await?);
    cfg.inbox = link.inbox_url().to_string();
    let worker = cfg.id.clone();
    let (sender, flushed) = EventSender::start(clients.sqs.clone(), ends.events_url.clone());
    let reason = Arc::new(Mutex::new(ExitReason::Stopped));
    let seen = Arc::clone(&reason);
    let actor = WorkerActor::new(cfg, Arc::new(SqsSink(sender)))
        .on_exit(move |r| *seen.lock().unwrap_or_else(|e| e.into_inner()) = r)
        .start();
    let pump = tokio::spawn({
        let (link, actor) = (Arc::clone(&link), actor.clone());
        async move { pump_inbox(&link, actor).await }
    });
    tokio::select! {
        _ = stop => {}
        _ = wait_stopped(actor.clone()) => {}
    }
    actor.do_send(Inbox(protocol::Command::Stop { job: None }));
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
    clients.calls.append_to_call_log("worker", started.elapsed().as_secs_f64());
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
    fn send(&self, event: Event) {
        match codec::encode_text(&Message::Event(event)) {
            Ok(body) => self.0.send(body),
            Err(e) => tracing::error!(error = %e, "cannot encode an event"),
        }
    }
}

/// Long-polls the inbox and hands commands to the actor until the actor stops. Bodies that
/// do not decode are counted and logged, never fatal.
pub async fn pump_inbox(link: &WorkerLink, actor: Addr<WorkerActor>) -> u64 {
    let mut rejected = 0;
    let mut backoff = Duration::from_millis(200);
    while actor.connected() {
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

/// The worker id an ECS task gives itself, `ecs-<task id>`, from the task metadata endpoint
/// v4 (`$ECS_CONTAINER_METADATA_URI_V4/task`, plain HTTP on a link-local address). The
/// `ecs` launcher knows the same id from RunTask's answer, so it can tell which worker a
/// stopped task was.
pub fn ecs_worker_id(metadata_uri: &str) -> Result<String, String> {
    let rest = metadata_uri
        .strip_prefix("http://")
        .ok_or_else(|| format!("ECS_CONTAINER_METADATA_URI_V4={metadata_uri:?}: expected http://"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let path = format!("/{}/task", path.trim_end_matches('/')).replace("//", "/");
    let addr = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let fail = |e: std::io::Error| format!("task metadata at {metadata_uri}: {e}");
    let sock = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .map_err(fail)?
        .next()
        .ok_or_else(|| format!("task metadata: cannot resolve {addr}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(fail)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(fail)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n")
        .map_err(fail)?;
    let mut response = Vec::new();
    stream.take(1 << 20).read_to_end(&mut response).map_err(fail)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("task metadata: not an HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("task metadata: {}", head.lines().next().unwrap_or("no status")));
    }
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("task metadata: not JSON: {e}"))?;
    let arn = json.get("TaskARN").and_then(|v| v.as_str()).ok_or("task metadata: no TaskARN")?;
    Ok(aws_transport::ecs::worker_id_for_task(arn))
}
