//! The SDK clients, built from the standard chain: credentials from the environment,
//! profile, SSO, ECS task role or instance role; `AWS_REGION`; `AWS_ENDPOINT_URL` (emulators).

use crate::error::AwsError;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts the AWS requests a process makes as they go on the wire (retries included), by
/// service and operation: the bill depends on them (SQS and SNS charge per request), and the
/// least-privilege policies must cover exactly the operations called. One counter is shared
/// by the SQS, SNS and ECS clients of a process.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(Arc<ApiCallsInner>);

#[derive(Debug, Default)]
struct ApiCallsInner {
    sqs: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl ApiCalls {
    /// SQS requests so far (the figure per worker-minute is about).
    pub fn sqs(&self) -> u64 {
        self.0.sqs.load(Ordering::Relaxed)
    }

    /// Requests so far by `Service.Operation` (e.g. `SQS.ReceiveMessage`, `SNS.Publish`).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.0.by_operation.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends one JSON line with this process's counts to `path` (a program's
    /// [`CALL_LOG_VAR`]): how tools and tests collect the counts of worker processes.
    pub fn append_to_call_log(&self, path: &std::path::Path, role: &str, seconds: f64) {
        let line = serde_json::json!({
            "pid": std::process::id(),
            "role": role,
            "seconds": seconds,
            "calls": self.by_operation(),
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the call log");
        }
    }
}

/// Names a file where each process appends its AWS request counts when it ends.
pub const CALL_LOG_VAR: &str = "NONCE_AWS_CALL_LOG";

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "ApiCalls"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service().to_string(), m.name().to_string()),
            None => ("unknown".to_string(), "unknown".to_string()),
        };
        if service.eq_ignore_ascii_case("sqs") {
            self.0.sqs.fetch_add(1, Ordering::Relaxed);
        }
        let mut map = self.0.by_operation.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(format!("{service}.{operation}")).or_default() += 1;
        Ok(())
    }
}

/// SQS, SNS and ECS clients sharing one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// SQS: the events queue and the inboxes.
    pub sqs: aws_sdk_sqs::Client,
    /// SNS: the control topic.
    pub sns: aws_sdk_sns::Client,
    /// ECS: the worker tasks.
    pub ecs: aws_sdk_ecs::Client,
    /// Every request of the three clients, by operation.
    pub calls: ApiCalls,
}

impl AwsClients {
    /// Loads the standard configuration. Fails with a clear message when no region is set,
    /// rather than at the first request.
    pub async fn from_env() -> Result<Self, AwsError> {
        Self::from_loader(aws_config::defaults(aws_config::BehaviorVersion::latest())).await
    }

    /// Clients for an emulator at `endpoint` with fixed test credentials (tests and tools).
    pub async fn for_emulator(endpoint: &str, region: &str) -> Result<Self, AwsError> {
        let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "emulator");
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(creds);
        Self::from_loader(loader).await
    }

    async fn from_loader(loader: aws_config::ConfigLoader) -> Result<Self, AwsError> {
        let cfg = loader.load().await;
        if cfg.region().is_none() {
            return Err(AwsError::NoRegion);
        }
        let calls = ApiCalls::default();
        let sqs_cfg = aws_sdk_sqs::config::Builder::from(&cfg).interceptor(calls.clone()).build();
        let sns_cfg = aws_sdk_sns::config::Builder::from(&cfg).interceptor(calls.clone()).build();
        // StopTask and DescribeTasks: more attempts, the SDK's exponential backoff with
        // jitter (a fleet must not dangle for a throttle). RunTask turns these off: the
        // launcher paces and retries it itself (`ecs::run_task`).
        let ecs_cfg = aws_sdk_ecs::config::Builder::from(&cfg)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(8))
            .interceptor(calls.clone())
            .build();
        Ok(AwsClients {
            sqs: aws_sdk_sqs::Client::from_conf(sqs_cfg),
            sns: aws_sdk_sns::Client::from_conf(sns_cfg),
            ecs: aws_sdk_ecs::Client::from_conf(ecs_cfg),
            calls,
        })
    }
}

/// An SDK error with its service message, not just "service error".
pub fn describe<E: std::error::Error + 'static>(what: &str, err: E) -> String {
    let mut text = format!("{what}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        // The SDK's layers often repeat their cause's words: say each thing once.
        let said = s.to_string();
        if !text.contains(&said) {
            text.push_str(&format!(": {said}"));
        }
        source = s.source();
    }
    text
}
