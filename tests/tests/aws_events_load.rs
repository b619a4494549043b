//! The events path under a large fleet: a thousand simulated workers' heartbeats sent to the
//! events queue of the AWS emulator for a fixed time, as fast as it takes them (the emulator,
//! not the router, is the bottleneck here), routed by the real `EventRouter` with the pollers
//! it runs for that fleet. Every heartbeat must arrive (none lost), and every receipt must be
//! deleted (none comes back).

mod common;
use aws_transport::{pollers_for, AwsClients, EventRouter};
use common::emulator::{Emulator, REGION};
use protocol::{codec, Event, EventBody, JobId, Message, WorkerId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 1_000;
/// How long the senders send.
const SENDING: Duration = Duration::from_secs(15);
/// Concurrent senders, as many workers' SDK clients would be.
const SENDERS: usize = 8;

#[test]
fn the_event_router_keeps_up_with_a_large_fleet_and_loses_nothing() {
    let em = Emulator::get("load");
    let fabric = em.fabric();
    let job = JobId(0x10ad);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let clients = AwsClients::for_emulator(&em.endpoint, REGION).await.expect("emulator clients");
        let router = EventRouter::start(&clients, &fabric, pollers_for(WORKERS));
        assert_eq!(router.pollers(), 5, "one poller per 250 workers, and one more");
        let seen: Arc<Mutex<HashSet<(String, u64)>>> = Arc::default();
        let into = Arc::clone(&seen);
        router.register(
            job,
            Box::new(move |sealed: protocol::SealedEvent| {
                let ev = sealed.event;
                if let EventBody::Heartbeat { rate, .. } = ev.body {
                    into.lock().unwrap_or_else(|e| e.into_inner()).insert((ev.worker.0, rate as u64));
                }
            }),
        );
        // Sender `s` sends the heartbeats numbered s, s + SENDERS, ...: heartbeat n is worker
        // n % WORKERS's round n / WORKERS. Batches of 10, as the SDK allows.
        let started = Instant::now();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (sqs, url) = (clients.sqs.clone(), fabric.events_url.clone());
                tokio::spawn(async move {
                    let mut n = s;
                    let mut sent = 0usize;
                    while started.elapsed() < SENDING {
                        let batch: Vec<String> = (0..10)
                            .map(|i| {
                                let k = n + i * SENDERS;
                                let worker = WorkerId(format!("sim-{}", k % WORKERS));
                                let key = protocol::auth::JobSecret::from_bytes([1; 32]).worker_key(job, &worker);
                                let ev = Event {
                                    job,
                                    worker,
                                    body: EventBody::Heartbeat { shards: vec![], rate: (k / WORKERS) as f64, best: None },
                                };
                                codec::encode_text(&Message::Event(key.seal_event(k as u64 + 1, ev))).expect("encodes")
                            })
                            .collect();
                        aws_transport::command_sender::send_bodies(&sqs, &url, batch).await.expect("send");
                        n += 10 * SENDERS;
                        sent += 10;
                    }
                    sent
                })
            })
            .collect();
        let mut total = 0;
        for s in senders {
            total += s.await.expect("sender");
        }
        let sent_in = started.elapsed();
        while seen.lock().unwrap_or_else(|e| e.into_inner()).len() < total && started.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let routed_in = started.elapsed();
        let got = seen.lock().unwrap_or_else(|e| e.into_inner()).len();
        eprintln!(
            "{total} heartbeats of {WORKERS} simulated workers: sent in {sent_in:?} ({:.0}/s), all routed in {routed_in:?} ({:.0}/s), {} pollers",
            total as f64 / sent_in.as_secs_f64(),
            total as f64 / routed_in.as_secs_f64(),
            router.pollers()
        );
        assert_eq!(got, total, "every heartbeat of every simulated worker arrives");
        let stats = router.stats();
        assert_eq!(stats.ghosts, 0, "{stats:?}");
        assert!(stats.delivered >= total as u64, "{stats:?}");
        // Every receipt is deleted (full batches at once, a partial one within DELETE_DELAY):
        // nothing waits in the queue or comes back when the visibility timeout ends.
        let until = Instant::now() + aws_transport::event_router::DELETE_DELAY + Duration::from_secs(15);
        loop {
            let attrs = clients
                .sqs
                .get_queue_attributes()
                .queue_url(&fabric.events_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .expect("GetQueueAttributes");
            let n = |k: aws_sdk_sqs::types::QueueAttributeName| {
                attrs.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX)
            };
            let (visible, in_flight) = (
                n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
                n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            );
            if visible == 0 && in_flight == 0 {
                break;
            }
            assert!(Instant::now() < until, "{visible} events wait and {in_flight} are received but not deleted");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
