//! The ECS calls the `ecs` launcher makes: RunTask one task a call (each task's override
//! carries that worker's own name and key, which a batch would share), each outcome told
//! apart (started, throttled, no capacity, failed) for the launcher's pacing and retries; DescribeTasks to notice tasks that stopped;
//! StopTask for every task when the job ends (or for one evicted worker).

use crate::clients::describe;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride, KeyValuePair,
    LaunchType, NetworkConfiguration, Tag, TaskOverride,
};

/// DescribeTasks takes at most this many tasks per call.
const DESCRIBE_BATCH: usize = 100;

/// Where and how worker tasks run (CLI flags or the daemon's `[ecs]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsSettings {
    /// The ECS cluster the tasks run in.
    pub cluster: String,
    /// The worker task definition (family or ARN).
    pub task_definition: String,
    /// Subnets of the tasks' network interfaces.
    pub subnets: Vec<String>,
    /// Security groups of the tasks' network interfaces.
    pub security_groups: Vec<String>,
    /// The worker container's name in the task definition (overrides name it).
    pub container: String,
    /// Tasks in public subnets need a public IP to reach SQS without a NAT or endpoints.
    pub assign_public_ip: bool,
    /// GPU workers (`--capacity gpu`): their task definition (EC2 launch type, one GPU,
    /// `bridge` network: a task shares its instance's interface) and the capacity provider of
    /// the GPU instances (an Auto Scaling group on ECS's GPU-optimized AMI). `None`: this
    /// deployment has no GPU capacity.
    pub gpu: Option<GpuCapacity>,
}

/// Where GPU worker tasks run: Fargate has no GPUs, so they are EC2 tasks on a capacity
/// provider that scales GPU instances (infra/terraform/gpu.tf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuCapacity {
    /// The GPU worker task definition (family or ARN).
    pub task_definition: String,
    /// The ECS capacity provider whose Auto Scaling group holds the GPU instances.
    pub capacity_provider: String,
}

impl GpuCapacity {
    /// The capacity two optional settings name: present when either is given (half a pair is
    /// refused by [`EcsSettings::check`], naming the missing one).
    pub fn from_settings(task_definition: Option<&str>, capacity_provider: Option<&str>) -> Option<Self> {
        (task_definition.is_some() || capacity_provider.is_some()).then(|| GpuCapacity {
            task_definition: task_definition.unwrap_or_default().to_string(),
            capacity_provider: capacity_provider.unwrap_or_default().to_string(),
        })
    }
}

impl EcsSettings {
    /// Complains about what is missing, naming the flag that sets it.
    pub fn check(&self) -> Result<(), crate::AwsError> {
        let missing: Vec<&str> = [
            (self.cluster.is_empty(), "--ecs-cluster"),
            (self.task_definition.is_empty(), "--ecs-task-definition"),
            (self.subnets.is_empty(), "--ecs-subnets"),
            (self.security_groups.is_empty(), "--ecs-security-groups"),
            (self.container.is_empty(), "--ecs-container"),
        ]
        .into_iter()
        .filter_map(|(m, flag)| m.then_some(flag))
        .collect();
        if !missing.is_empty() {
            return Err(crate::AwsError::Invalid(format!("the ecs launcher needs {}", missing.join(", "))));
        }
        match &self.gpu {
            Some(g) if g.task_definition.is_empty() || g.capacity_provider.is_empty() => {
                Err(crate::AwsError::Invalid(
                    "GPU capacity needs both --ecs-gpu-task-definition and --ecs-gpu-capacity-provider"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One task's RunTask: its environment (a worker's credentials among it: never logged) and tags.
#[derive(Clone)]
pub struct TaskLaunch {
    /// The worker's environment (its job, id, key and timings).
    pub env: Vec<(String, String)>,
    /// Tags naming the task's job and deployment prefix (what the sweep and IAM conditions read).
    pub tags: Vec<(String, String)>,
    /// `startedBy` (`nonce-cloud/JOB`): how the job's tasks are listed and stopped.
    pub started_by: String,
}

impl std::fmt::Debug for TaskLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLaunch").field("tags", &self.tags).field("started_by", &self.started_by).finish()
    }
}

/// Which capacity a task runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// On-demand Fargate (`FARGATE`).
    Fargate,
    /// Spare capacity at a discount, interrupted with a SIGTERM two minutes ahead
    /// (`FARGATE_SPOT`: the cluster must list it among its capacity providers).
    FargateSpot,
    /// An EC2 GPU instance of the settings' GPU capacity provider, with the GPU task
    /// definition.
    Gpu,
}

impl Provider {
    /// The capacity's name in logs (for Fargate, the capacity provider's name in ECS).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Fargate => "FARGATE",
            Provider::FargateSpot => "FARGATE_SPOT",
            Provider::Gpu => "GPU",
        }
    }
}

/// What one RunTask call came to, told apart by what the launcher does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The task's ARN.
    Started(String),
    /// The account's request rate was exceeded: wait for the bucket and retry.
    Throttled(String),
    /// The call did not get an answer (a timeout, a dropped connection, a 5xx): retry.
    Transient(String),
    /// Fargate had no capacity for it now ("Capacity is unavailable at this time"): retry
    /// later, for a while.
    NoCapacity(String),
    /// Anything else (a missing task definition, denied permissions): retrying would not help.
    Failed(String),
}

/// Error codes ECS answers when a caller exceeds its rate.
const THROTTLING_CODES: &[&str] =
    &["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"];

/// Starts one task (each task's override carries its own worker's name and key, which a
/// batch would share).
pub async fn run_task(
    ecs: &aws_sdk_ecs::Client,
    s: &EcsSettings,
    launch: &TaskLaunch,
    provider: Provider,
) -> RunOutcome {
    use aws_sdk_ecs::error::ProvideErrorMetadata;
    let env = launch.env.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect();
    let overrides = TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder().name(&s.container).set_environment(Some(env)).build(),
        )
        .build();
    let mut tags = vec![];
    for (k, v) in &launch.tags {
        tags.push(Tag::builder().key(k).value(v).build());
    }
    let task_definition = match (provider, &s.gpu) {
        (Provider::Gpu, Some(g)) => &g.task_definition,
        (Provider::Gpu, None) => {
            return RunOutcome::Failed("a GPU worker, but this deployment names no GPU capacity".into())
        }
        (Provider::Fargate | Provider::FargateSpot, _) => &s.task_definition,
    };
    let call = ecs
        .run_task()
        .cluster(&s.cluster)
        .task_definition(task_definition)
        .count(1)
        .overrides(overrides)
        .set_tags(Some(tags))
        .started_by(&launch.started_by);
    // A launch type and a capacity provider strategy exclude each other; on-demand keeps the
    // launch type, so clusters without capacity providers still work.
    let strategy =
        |name: &str| CapacityProviderStrategyItem::builder().capacity_provider(name).weight(1).build();
    let call = match provider {
        Provider::Fargate => call.launch_type(LaunchType::Fargate),
        Provider::FargateSpot => match strategy(provider.name()) {
            Ok(item) => call.capacity_provider_strategy(item),
            Err(e) => return RunOutcome::Failed(format!("capacity provider strategy: {e}")),
        },
        // The GPU task's network is its instance's (`bridge`): no awsvpc configuration, which
        // ECS refuses for that network mode.
        Provider::Gpu => match s.gpu.as_ref().map(|g| strategy(&g.capacity_provider)) {
            Some(Ok(item)) => call.capacity_provider_strategy(item),
            Some(Err(e)) => return RunOutcome::Failed(format!("capacity provider strategy: {e}")),
            None => return RunOutcome::Failed("no GPU capacity provider".into()),
        },
    };
    let call = if provider == Provider::Gpu {
        call
    } else {
        let vpc = match AwsVpcConfiguration::builder()
            .set_subnets(Some(s.subnets.clone()))
            .set_security_groups(Some(s.security_groups.clone()))
            .assign_public_ip(if s.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
        {
            Ok(v) => v,
            Err(e) => return RunOutcome::Failed(format!("network configuration: {e}")),
        };
        call.network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
    };
    // No retries inside the SDK: a retry it sent would bypass the launcher's pacing (and
    // spend a token of the account's bucket the launcher does not know of). The launcher
    // retries throttles and transient failures itself, through its gate.
    let once =
        aws_sdk_ecs::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled());
    let out = match call.customize().config_override(once).send().await {
        Ok(out) => out,
        Err(e) => {
            use aws_sdk_ecs::error::SdkError;
            let throttled = e.code().is_some_and(|c| THROTTLING_CODES.contains(&c));
            let server = e.raw_response().is_some_and(|r| r.status().is_server_error());
            let transient = matches!(
                e,
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
            );
            let text = describe("RunTask", e);
            return if throttled {
                RunOutcome::Throttled(text)
            } else if transient || server {
                RunOutcome::Transient(text)
            } else {
                RunOutcome::Failed(text)
            };
        }
    };
    if let Some(arn) = out.tasks().iter().find_map(|t| t.task_arn()) {
        return RunOutcome::Started(arn.to_string());
    }
    let Some(f) = out.failures().first() else {
        return RunOutcome::Failed("RunTask started no task and said nothing why".into());
    };
    let reason = f.reason().unwrap_or("unknown");
    let text = format!("RunTask: {reason} ({})", f.detail().unwrap_or("no detail"));
    // Fargate's wording for a pool with nothing free; RESOURCE:* are EC2 capacity's.
    if reason.contains("Capacity is unavailable") || reason.starts_with("RESOURCE:") {
        RunOutcome::NoCapacity(text)
    } else {
        RunOutcome::Failed(text)
    }
}

/// The tasks among `arns` that have stopped or are stopping, with the reason ECS gives.
pub async fn stopped_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut stopped = vec![];
    for chunk in arns.chunks(DESCRIBE_BATCH) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| describe("DescribeTasks", e))?;
        for t in out.tasks() {
            let down = |s: Option<&str>| s == Some("STOPPED") || s == Some("DEPROVISIONING");
            if down(t.last_status()) || down(t.desired_status()) {
                let reason = t.stopped_reason().unwrap_or("stopped").to_string();
                stopped.push((t.task_arn().unwrap_or_default().to_string(), reason));
            }
        }
        // A task ECS no longer knows is gone too.
        for f in out.failures() {
            if f.reason() == Some("MISSING") {
                stopped.push((f.arn().unwrap_or_default().to_string(), "missing".into()));
            }
        }
    }
    Ok(stopped)
}

/// Stops every task in `arns`, a few calls at a time. Answers how many calls failed.
pub async fn stop_tasks(ecs: &aws_sdk_ecs::Client, cluster: &str, arns: &[String], reason: &str) -> usize {
    let mut failed = 0;
    for chunk in arns.chunks(8) {
        let calls = chunk.iter().map(|arn| ecs.stop_task().cluster(cluster).task(arn).reason(reason).send());
        for r in futures_join_all(calls).await {
            if let Err(e) = r {
                failed += 1;
                tracing::warn!(error = %describe("StopTask", e), "a task was not stopped");
            }
        }
    }
    failed
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}
