//! `nonce-worker`'s configuration, read from environment variables (the Fargate container's
//! interface). Every variable, its default and its meaning:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NONCE_JOB_ID` | required | the job this worker serves (16 hex digits) |
//! | `NONCE_WORKER_ID` | `ecs-<task id>` on ECS (from `ECS_CONTAINER_METADATA_URI_V4`), else `w-<pid>-<random>` | this worker's name, unique within the job |
//! | `NONCE_TRANSPORT` | `stdio` | `stdio`: commands on stdin, events on stdout, one base64 message a line; `aws`: SQS and SNS |
//! | `NONCE_AWS_PREFIX` | required for `aws` | resource prefix: the inbox queue is `<prefix>-inbox-<worker id>` |
//! | `NONCE_EVENTS_QUEUE_URL` | required for `aws` | the events queue's URL |
//! | `NONCE_CONTROL_TOPIC_ARN` | required for `aws` | the control topic's ARN |
//! | `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials | the SDK's standard chain | read by the AWS SDK (`aws` only) |
//! | `NONCE_THREADS` | CPUs available | hashing threads |
//! | `NONCE_HEARTBEAT_MS` | `1000` | heartbeat interval |
//! | `NONCE_ORPHAN_TIMEOUT_S` | `30` | exit when the coordinator is silent this long |
//! | `NONCE_KERNEL` | fastest supported | `avx512`, `shani`, `avx2` or `portable` |
//! | `NONCE_LOG` | `warn` | log filter (logs go to stderr) |
//! | `NONCE_AWS_CALL_LOG` | unset | a file to append this process's AWS request counts to at exit (one JSON line; tools and tests) |

/// Every variable `nonce-worker` reads (the AWS SDK reads `AWS_*` besides).
pub const VARIABLES: &[&str] = &[
    "NONCE_JOB_ID",
    "NONCE_WORKER_ID",
    "NONCE_TRANSPORT",
    "NONCE_AWS_PREFIX",
    "NONCE_EVENTS_QUEUE_URL",
    "NONCE_CONTROL_TOPIC_ARN",
    "NONCE_THREADS",
    "NONCE_HEARTBEAT_MS",
    "NONCE_ORPHAN_TIMEOUT_S",
    "NONCE_KERNEL",
    "NONCE_LOG",
    "NONCE_AWS_CALL_LOG",
    "ECS_CONTAINER_METADATA_URI_V4",
];

/// Without these a worker does not start: the job, and for a Fargate task the aws transport.
pub const REQUIRED: &[&str] = &[
    "NONCE_JOB_ID",
    "NONCE_TRANSPORT",
    "NONCE_AWS_PREFIX",
    "NONCE_EVENTS_QUEUE_URL",
    "NONCE_CONTROL_TOPIC_ARN",
];

use crate::kernel::Backend;
use crate::WorkerConfig;
use protocol::{JobId, WorkerId};
use std::time::Duration;

/// How the worker reaches its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEnv {
    Stdio,
    Aws { prefix: String, events_url: String, topic_arn: String },
}

/// Reads the worker's configuration from `get` (the process environment in production).
/// The inbox of an `aws` worker is only known once its queue exists: the caller fills it in.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<(WorkerConfig, TransportEnv), String> {
    let job: JobId = get("NONCE_JOB_ID")
        .ok_or("NONCE_JOB_ID is required (the job id, 16 hex digits)")?
        .parse()
        .map_err(|e| format!("NONCE_JOB_ID: {e}"))?;
    let id = get("NONCE_WORKER_ID").unwrap_or_else(|| {
        // Unique across machines too: every Fargate task is pid 1.
        let salt = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        format!("w-{}-{:08x}", std::process::id(), salt as u32)
    });
    if id.is_empty() || id.len() > 128 {
        return Err("NONCE_WORKER_ID must be 1 to 128 characters".into());
    }
    let required = |name: &str| -> Result<String, String> {
        get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(format!("{name} is required when NONCE_TRANSPORT=aws"))
    };
    let transport = match get("NONCE_TRANSPORT").as_deref().unwrap_or("stdio") {
        "stdio" => TransportEnv::Stdio,
        "aws" => TransportEnv::Aws {
            prefix: required("NONCE_AWS_PREFIX")?,
            events_url: required("NONCE_EVENTS_QUEUE_URL")?,
            topic_arn: required("NONCE_CONTROL_TOPIC_ARN")?,
        },
        other => return Err(format!("NONCE_TRANSPORT={other:?}: expected stdio or aws")),
    };
    let number = |name: &str, default: u64, max: u64| -> Result<u64, String> {
        match get(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(format!("{name}={v:?} must be a whole number from 1 to {max}")),
            },
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let threads = number("NONCE_THREADS", cpus, 1024)? as usize;
    let heartbeat = Duration::from_millis(number("NONCE_HEARTBEAT_MS", 1000, 600_000)?);
    let orphan_timeout = Duration::from_secs(number("NONCE_ORPHAN_TIMEOUT_S", 30, 86_400)?);
    let backend = match get("NONCE_KERNEL") {
        None => Backend::detect(),
        Some(name) => {
            let b = Backend::from_name(&name)
                .ok_or(format!("NONCE_KERNEL={name:?}: expected avx512, shani, avx2 or portable"))?;
            if !b.is_supported() {
                return Err(format!("NONCE_KERNEL={name}: this CPU does not support it"));
            }
            b
        }
    };
    let inbox = match &transport {
        TransportEnv::Stdio => format!("stdio://{id}"),
        TransportEnv::Aws { .. } => String::new(),
    };
    Ok((
        WorkerConfig { id: WorkerId(id), job, inbox, threads, heartbeat, orphan_timeout, backend },
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<(WorkerConfig, TransportEnv), String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_env(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_errors() {
        let (cfg, t) = with(&[("NONCE_JOB_ID", "00000000000000aa")]).expect("valid");
        assert_eq!((cfg.job, t), (JobId(0xaa), TransportEnv::Stdio));
        let aws = [
            ("NONCE_JOB_ID", "1"),
            ("NONCE_TRANSPORT", "aws"),
            ("NONCE_AWS_PREFIX", "nc"),
            ("NONCE_EVENTS_QUEUE_URL", "http://q"),
            ("NONCE_CONTROL_TOPIC_ARN", "arn:aws:sns:r:1:nc-control"),
        ];
        assert!(matches!(with(&aws).expect("valid").1, TransportEnv::Aws { .. }));
        let err = with(&aws[..4]).expect_err("topic needed");
        assert!(err.contains("NONCE_CONTROL_TOPIC_ARN"), "{err}");
        assert!(with(&[]).expect_err("job id needed").contains("NONCE_JOB_ID"));
        assert!(with(&[("NONCE_JOB_ID", "xyz")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_THREADS", "0")])
            .expect_err("bad")
            .contains("NONCE_THREADS"));
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_HEARTBEAT_MS", "-5")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_TRANSPORT", "smoke")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_KERNEL", "gpu")]).is_err());
    }
}
