//! The ECS calls the `ecs` launcher makes: RunTask one task a call (each task's override
//! carries that worker's own name and key, which a batch would share), with the SDK's
//! exponential backoff and jitter on throttling; DescribeTasks to notice tasks that stopped;
//! StopTask for every task when the job ends (or for one evicted worker).

use crate::clients::describe;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, KeyValuePair, LaunchType, NetworkConfiguration,
    Tag, TaskOverride,
};

/// DescribeTasks takes at most this many tasks per call.
const DESCRIBE_BATCH: usize = 100;

/// Where and how worker tasks run (CLI flags or the daemon's `[ecs]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsSettings {
    pub cluster: String,
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// The worker container's name in the task definition (overrides name it).
    pub container: String,
    /// Tasks in public subnets need a public IP to reach SQS without a NAT or endpoints.
    pub assign_public_ip: bool,
}

impl EcsSettings {
    /// Complains about what is missing, naming the flag that sets it.
    pub fn check(&self) -> Result<(), String> {
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
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the ecs launcher needs {}", missing.join(", ")))
        }
    }
}

/// One task's RunTask: its environment (a worker's credentials among it: never logged) and tags.
#[derive(Clone)]
pub struct TaskLaunch {
    pub env: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub started_by: String,
}

impl std::fmt::Debug for TaskLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLaunch").field("tags", &self.tags).field("started_by", &self.started_by).finish()
    }
}

/// Starts one task per launch, in order. Answers each one's task ARN or why it did not start;
/// after a failed call the rest are not tried (they fail with the same reason).
pub async fn run_tasks(
    ecs: &aws_sdk_ecs::Client,
    settings: &EcsSettings,
    launches: &[TaskLaunch],
) -> Vec<Result<String, String>> {
    let mut results: Vec<Result<String, String>> = Vec::with_capacity(launches.len());
    for launch in launches {
        let r = match results.last() {
            Some(Err(e)) => Err(e.clone()),
            _ => match run_batch(ecs, settings, 1, launch).await {
                Ok((arns, failure)) => match arns.into_iter().next() {
                    Some(arn) => Ok(arn),
                    None => Err(failure.unwrap_or_else(|| "RunTask started no task".into())),
                },
                Err(e) => Err(e),
            },
        };
        results.push(r);
    }
    let started = results.iter().filter(|r| r.is_ok()).count();
    tracing::info!(started, of = launches.len(), "ecs tasks launched");
    results
}

async fn run_batch(
    ecs: &aws_sdk_ecs::Client,
    s: &EcsSettings,
    n: usize,
    launch: &TaskLaunch,
) -> Result<(Vec<String>, Option<String>), String> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(s.subnets.clone()))
        .set_security_groups(Some(s.security_groups.clone()))
        .assign_public_ip(if s.assign_public_ip { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled })
        .build()
        .map_err(|e| format!("network configuration: {e}"))?;
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
    let out = ecs
        .run_task()
        .cluster(&s.cluster)
        .task_definition(&s.task_definition)
        .launch_type(LaunchType::Fargate)
        .count(n as i32)
        .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        .overrides(overrides)
        .set_tags(Some(tags))
        .started_by(&launch.started_by)
        .send()
        .await
        .map_err(|e| describe("RunTask", e))?;
    let arns = out.tasks().iter().filter_map(|t| t.task_arn().map(str::to_string)).collect();
    let failure = out.failures().first().map(|f| {
        format!("RunTask: {} ({})", f.reason().unwrap_or("unknown"), f.detail().unwrap_or("no detail"))
    });
    Ok((arns, failure))
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
