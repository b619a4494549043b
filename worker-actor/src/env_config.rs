//! `nonce-worker`'s configuration, read from environment variables (the Fargate container's
//! interface). Every variable, its default and its meaning:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NONCE_JOB_ID` | required | the job this worker serves (16 hex digits) |
//! | `NONCE_WORKER_ID` | required | this worker's name, chosen by the coordinator that launched it |
//! | `NONCE_WORKER_KEY` | required | this worker's key (64 hex digits): seals its events, opens the commands to its inbox. A secret: never logged |
//! | `NONCE_BROADCAST_KEY` | required | the job's broadcast public key (64 hex digits): opens `Stop` and `KeepAlive` on the topic |
//! | `NONCE_TRANSPORT` | `stdio` | `stdio`: commands on stdin, events on stdout, one base64 message a line; `aws`: SQS and SNS |
//! | `NONCE_AWS_PREFIX` | required for `aws` | resource prefix: the inbox queue is `<prefix>-inbox-<worker id>` |
//! | `NONCE_EVENTS_QUEUE_URL` | required for `aws` | the events queue's URL |
//! | `NONCE_CONTROL_TOPIC_ARN` | required for `aws` | the control topic's ARN |
//! | `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials | the SDK's standard chain | read by the AWS SDK (`aws` only) |
//! | `NONCE_THREADS` | CPUs available | hashing threads |
//! | `NONCE_HEARTBEAT_MS` | `1000` | heartbeat interval |
//! | `NONCE_ORPHAN_TIMEOUT_S` | `30` | exit when the coordinator is silent this long |
//! | `NONCE_KERNEL` | a hardware GPU if one opens (in a build with the `gpu` feature), else the fastest CPU backend | `gpu`, `avx512`, `shani`, `avx2` or `portable`; with `gpu`, thread 0 feeds the GPU and the other `NONCE_THREADS - 1` hash on the fastest CPU backend |
//! | `NONCE_LOG` | `warn` | log filter (logs go to stderr) |
//! | `NONCE_AWS_CALL_LOG` | unset | a file to append this process's AWS request counts to at exit (one JSON line; tools and tests) |

/// Every variable `nonce-worker` reads (the AWS SDK reads `AWS_*` besides).
pub const VARIABLES: &[&str] = &[
    "NONCE_JOB_ID",
    "NONCE_WORKER_ID",
    "NONCE_WORKER_KEY",
    "NONCE_BROADCAST_KEY",
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
];

/// Without these a worker does not start: the job, and for a Fargate task the aws transport.
pub const REQUIRED: &[&str] = &[
    "NONCE_JOB_ID",
    "NONCE_WORKER_ID",
    "NONCE_WORKER_KEY",
    "NONCE_BROADCAST_KEY",
    "NONCE_TRANSPORT",
    "NONCE_AWS_PREFIX",
    "NONCE_EVENTS_QUEUE_URL",
    "NONCE_CONTROL_TOPIC_ARN",
];

use crate::aws::AwsEndpoints;
use crate::WorkerConfig;
use nonce_kernel::Backend;
use protocol::auth::{BroadcastVerifier, WorkerKey};
use protocol::{JobId, WorkerId};
use std::time::Duration;

/// How the worker reaches its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEnv {
    /// Base64 text lines on stdin/stdout (the `process` launcher's pipes).
    Stdio,
    /// The events queue and its own inbox (SQS and SNS).
    Aws(AwsEndpoints),
}

/// Why the environment does not describe a worker. A key's value never appears in one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A variable the worker cannot run without.
    #[error("{var} is required ({what})")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it holds, or when it is needed.
        what: &'static str,
    },
    /// A variable whose value cannot work.
    #[error("{var}: {why}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Why, with the value when it is not a secret.
        why: String,
    },
}

/// Reads the worker's configuration from `get` (the process environment in production).
/// The inbox of an `aws` worker is only known once its queue exists: the caller fills it in.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<(WorkerConfig, TransportEnv), EnvError> {
    let need = |var: &'static str, what: &'static str| get(var).ok_or(EnvError::Missing { var, what });
    let invalid = |var: &'static str, why: String| EnvError::Invalid { var, why };
    let job: JobId = need("NONCE_JOB_ID", "the job id, 16 hex digits")?
        .parse()
        .map_err(|e: String| invalid("NONCE_JOB_ID", e))?;
    // The coordinator names its workers and derives each one's key from the name: a worker
    // cannot pick its own.
    let id = need("NONCE_WORKER_ID", "the coordinator names its workers")?;
    if id.is_empty() || id.len() > 128 {
        return Err(invalid("NONCE_WORKER_ID", "must be 1 to 128 characters".into()));
    }
    let key = need("NONCE_WORKER_KEY", "the worker's key, given by the coordinator at launch")?;
    let key =
        WorkerKey::from_hex(&key).map_err(|_| invalid("NONCE_WORKER_KEY", "must be 64 hex digits".into()))?;
    let broadcast = need("NONCE_BROADCAST_KEY", "the job's broadcast key, given at launch")?;
    let broadcast = BroadcastVerifier::from_hex(&broadcast).map_err(|_| {
        invalid("NONCE_BROADCAST_KEY", "must be an Ed25519 public key in 64 hex digits".into())
    })?;
    let required = |var: &'static str| {
        get(var)
            .filter(|v| !v.trim().is_empty())
            .ok_or(EnvError::Missing { var, what: "when NONCE_TRANSPORT=aws" })
    };
    let transport = match get("NONCE_TRANSPORT").as_deref().unwrap_or("stdio") {
        "stdio" => TransportEnv::Stdio,
        "aws" => TransportEnv::Aws(AwsEndpoints {
            prefix: required("NONCE_AWS_PREFIX")?,
            events_url: required("NONCE_EVENTS_QUEUE_URL")?,
            topic_arn: required("NONCE_CONTROL_TOPIC_ARN")?,
            call_log: get("NONCE_AWS_CALL_LOG")
                .filter(|v| !v.trim().is_empty())
                .map(std::path::PathBuf::from),
        }),
        other => return Err(invalid("NONCE_TRANSPORT", format!("{other:?}: expected stdio or aws"))),
    };
    let number = |var: &'static str, default: u64, max: u64| match get(var) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(invalid(var, format!("{v:?} must be a whole number from 1 to {max}"))),
        },
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let threads = number("NONCE_THREADS", cpus, 1024)? as usize;
    let heartbeat = Duration::from_millis(number("NONCE_HEARTBEAT_MS", 1000, 600_000)?);
    let orphan_timeout = Duration::from_secs(number("NONCE_ORPHAN_TIMEOUT_S", 30, 86_400)?);
    let backend = match get("NONCE_KERNEL").filter(|k| !k.trim().is_empty()) {
        // A worker on a GPU instance uses its GPU unasked.
        None => Backend::detect_with_gpu(),
        Some(k) => Backend::choose(Some(&k)).map_err(|e| invalid("NONCE_KERNEL", e.to_string()))?,
    };
    let inbox = match &transport {
        TransportEnv::Stdio => format!("stdio://{id}"),
        TransportEnv::Aws(_) => String::new(),
    };
    Ok((
        WorkerConfig {
            id: WorkerId(id),
            job,
            inbox,
            threads,
            heartbeat,
            orphan_timeout,
            backend,
            key,
            broadcast,
        },
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<(WorkerConfig, TransportEnv), String> {
        let secret = protocol::auth::JobSecret::from_bytes([5; 32]);
        let mut m: HashMap<String, String> = HashMap::new();
        m.insert("NONCE_WORKER_ID".into(), "w0".into());
        m.insert("NONCE_WORKER_KEY".into(), secret.worker_key(JobId(1), &WorkerId("w0".into())).to_hex());
        m.insert("NONCE_BROADCAST_KEY".into(), secret.broadcast_signer(JobId(1)).verifier().to_hex());
        m.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        from_env(|k| m.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_required_and_never_echoed() {
        let bad = "zz".repeat(32);
        let err = with(&[("NONCE_JOB_ID", "1"), ("NONCE_WORKER_KEY", &bad)]).expect_err("bad key");
        assert!(err.contains("NONCE_WORKER_KEY") && !err.contains(&bad), "{err}");
        let err = with(&[("NONCE_JOB_ID", "1"), ("NONCE_BROADCAST_KEY", "00")]).expect_err("bad key");
        assert!(err.contains("NONCE_BROADCAST_KEY"), "{err}");
        let m: HashMap<String, String> = [("NONCE_JOB_ID", "1"), ("NONCE_WORKER_ID", "w0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(from_env(|k| m.get(k).cloned())
            .expect_err("no key")
            .to_string()
            .contains("NONCE_WORKER_KEY"));
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
        let TransportEnv::Aws(ends) = with(&aws).expect("valid").1 else { panic!("aws") };
        assert_eq!((ends.prefix.as_str(), ends.call_log), ("nc", None));
        // The call log is configuration like the rest, read here and passed in.
        let logged = [aws.as_slice(), &[("NONCE_AWS_CALL_LOG", "/tmp/calls.jsonl")]].concat();
        let TransportEnv::Aws(ends) = with(&logged).expect("valid").1 else { panic!("aws") };
        assert_eq!(ends.call_log, Some(std::path::PathBuf::from("/tmp/calls.jsonl")));
        let err = with(&aws[..4]).expect_err("topic needed");
        assert!(err.contains("NONCE_CONTROL_TOPIC_ARN"), "{err}");
        assert!(with(&[]).expect_err("job id needed").contains("NONCE_JOB_ID"));
        assert!(with(&[("NONCE_JOB_ID", "xyz")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_THREADS", "0")])
            .expect_err("bad")
            .contains("NONCE_THREADS"));
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_HEARTBEAT_MS", "-5")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_TRANSPORT", "smoke")]).is_err());
        assert!(with(&[("NONCE_JOB_ID", "1"), ("NONCE_KERNEL", "tpu")]).is_err());
    }
}
