//! The AWS emulator (moto in server mode) that `scripts/test` installs and starts. Tests that
//! need it fail loudly when it is missing: they never skip.

use aws_transport::AwsClients;
use std::future::Future;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

/// Region every test uses.
pub const REGION: &str = "us-east-1";

/// One test's view of the emulator: its endpoint and a resource prefix of its own, so tests
/// run in parallel without seeing each other's queues.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub endpoint: String,
    pub prefix: String,
}

impl Emulator {
    /// The running emulator, or a panic that says how to get one.
    pub fn get(test: &str) -> Emulator {
        let endpoint = std::env::var("NONCE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "NONCE_TEST_AWS_ENDPOINT is not set: this test needs the AWS emulator. Run scripts/test \
                 (it installs moto and starts it), or start `moto_server -p PORT` and set \
                 NONCE_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT"
            )
        });
        let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        let reachable = hostport
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
        assert!(reachable, "the AWS emulator at {endpoint} does not answer (NONCE_TEST_AWS_ENDPOINT)");
        let mut prefix = format!("t{}-{test}", std::process::id());
        prefix.truncate(40);
        Emulator { endpoint, prefix }
    }

    /// What a process needs to reach the emulator with the standard credential chain.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("NONCE_WORKER_BIN".into(), super::bin("nonce-worker").display().to_string()),
            ("NONCE_LOG".into(), "error".into()),
        ]
    }

    /// `noncectl` with the emulator's environment.
    pub fn noncectl(&self) -> Command {
        let mut c = Command::new(super::bin("noncectl"));
        c.envs(self.env());
        c
    }

    /// The flags that put a search on the aws transport under this test's prefix.
    pub fn aws_flags(&self) -> Vec<String> {
        ["--transport", "aws", "--aws-prefix", &self.prefix, "--aws-bootstrap"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs `f` with SDK clients for the emulator.
    pub fn with_clients<T, F: Future<Output = T>>(&self, f: impl FnOnce(AwsClients) -> F) -> T {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let clients = AwsClients::for_emulator(&self.endpoint, REGION).await.expect("emulator clients");
            f(clients).await
        })
    }

    /// The deployment's queues and topic, created if missing (as `--aws-bootstrap` does).
    pub fn fabric(&self) -> aws_transport::Fabric {
        let names = aws_transport::ResourceNames::new(&self.prefix).expect("a valid prefix");
        self.with_clients(|c| async move {
            aws_transport::Fabric::open(&c, names, true).await.expect("bootstrap")
        })
    }

    /// URLs of this test's worker inbox queues that exist now.
    pub fn inboxes(&self) -> Vec<String> {
        let prefix = format!("{}-inbox-", self.prefix);
        self.with_clients(|c| async move {
            let out = c.sqs.list_queues().queue_name_prefix(prefix).send().await.expect("ListQueues");
            out.queue_urls().to_vec()
        })
    }

    /// Worker inbox subscriptions to this test's control topic that exist now.
    pub fn subscriptions(&self) -> usize {
        let suffix = format!(":{}-control", self.prefix);
        let inbox = format!(":{}-inbox-", self.prefix);
        self.with_clients(|c| async move {
            let out = c.sns.list_subscriptions().send().await.expect("ListSubscriptions");
            out.subscriptions()
                .iter()
                .filter(|s| s.topic_arn().is_some_and(|t| t.ends_with(&suffix)))
                .filter(|s| s.endpoint().is_some_and(|e| e.contains(&inbox)))
                .count()
        })
    }

    /// Sends raw bodies to a queue of this deployment.
    pub fn send_bodies(&self, url: &str, bodies: Vec<String>) {
        let url = url.to_string();
        self.with_clients(|c| async move {
            for chunk in bodies.chunks(10) {
                aws_transport::command_sender::send_bodies(&c.sqs, &url, chunk.to_vec()).await.expect("send");
            }
        })
    }

    /// A queue subscribed to the control topic (raw delivery, no filter): it sees every
    /// broadcast when the workers' inboxes do.
    pub fn probe(&self, topic_arn: &str) -> String {
        let (name, topic) = (format!("{}-probe", self.prefix), topic_arn.to_string());
        self.with_clients(|c| async move {
            let url = c.sqs.create_queue().queue_name(&name).send().await.expect("CreateQueue");
            let url = url.queue_url().expect("a URL").to_string();
            let arn = aws_transport::fabric::queue_arn(&c, &url).await.expect("queue ARN");
            c.sns
                .subscribe()
                .topic_arn(topic)
                .protocol("sqs")
                .endpoint(arn)
                .attributes("RawMessageDelivery", "true")
                .send()
                .await
                .expect("Subscribe");
            url
        })
    }

    /// Long-polls `url` until a `Stop` command arrives; answers when it did (`None` after `timeout`).
    pub fn wait_for_stop(&self, url: &str, timeout: Duration) -> Option<std::time::Instant> {
        let url = url.to_string();
        self.with_clients(|c| async move {
            let until = std::time::Instant::now() + timeout;
            while std::time::Instant::now() < until {
                for body in receive(&c, &url).await {
                    let stop = match protocol::codec::decode_text(&body) {
                        Ok(protocol::Message::Command(c)) => {
                            matches!(c.command, protocol::Command::Stop { .. })
                        }
                        Ok(protocol::Message::Broadcast(b)) => {
                            matches!(b.command, protocol::Command::Stop { .. })
                        }
                        _ => false,
                    };
                    if stop {
                        return Some(std::time::Instant::now());
                    }
                }
            }
            None
        })
    }

    /// Takes every body waiting in a queue (short polls until one comes back empty).
    pub fn drain(&self, url: &str) -> Vec<String> {
        let url = url.to_string();
        self.with_clients(|c| async move {
            let mut bodies = vec![];
            loop {
                let got = receive(&c, &url).await;
                if got.is_empty() {
                    return bodies;
                }
                bodies.extend(got);
            }
        })
    }
}

/// One receive of up to 10 bodies, waiting at most a second.
async fn receive(c: &AwsClients, url: &str) -> Vec<String> {
    let out = c
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage");
    out.messages().iter().filter_map(|m| m.body().map(str::to_string)).collect()
}
