//! The SDK clients, built from the standard chain: credentials from the environment,
//! profile, SSO, ECS task role or instance role; `AWS_REGION`; `AWS_ENDPOINT_URL` (emulators).

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts SQS requests as they go on the wire (retries included), to report the
/// requests per worker-minute that the bill depends on.
#[derive(Debug, Clone, Default)]
pub struct SqsCounter(Arc<AtomicU64>);

impl SqsCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for SqsCounter {
    fn name(&self) -> &'static str {
        "SqsCounter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// SQS, SNS and ECS clients sharing one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub sqs_requests: SqsCounter,
}

impl AwsClients {
    /// Loads the standard configuration. Fails with a clear message when no region is set,
    /// rather than at the first request.
    pub async fn from_env() -> Result<Self, String> {
        Self::from_loader(aws_config::defaults(aws_config::BehaviorVersion::latest())).await
    }

    /// Clients for an emulator at `endpoint` with fixed test credentials (tests and tools).
    pub async fn for_emulator(endpoint: &str, region: &str) -> Result<Self, String> {
        let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "emulator");
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(creds);
        Self::from_loader(loader).await
    }

    async fn from_loader(loader: aws_config::ConfigLoader) -> Result<Self, String> {
        let cfg = loader.load().await;
        if cfg.region().is_none() {
            return Err("no AWS region: set AWS_REGION (or a profile's region)".into());
        }
        let sqs_requests = SqsCounter::default();
        let sqs_cfg = aws_sdk_sqs::config::Builder::from(&cfg).interceptor(sqs_requests.clone()).build();
        // ECS throttles RunTask hard: more attempts, the SDK's exponential backoff with jitter.
        let ecs_cfg = aws_sdk_ecs::config::Builder::from(&cfg)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(8))
            .build();
        Ok(AwsClients {
            sqs: aws_sdk_sqs::Client::from_conf(sqs_cfg),
            sns: aws_sdk_sns::Client::new(&cfg),
            ecs: aws_sdk_ecs::Client::from_conf(ecs_cfg),
            sqs_requests,
        })
    }
}

/// An SDK error with its service message, not just "service error".
pub fn describe<E: std::error::Error + 'static>(what: &str, err: E) -> String {
    let mut text = format!("{what}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
