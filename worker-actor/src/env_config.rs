//! `nonce-worker`'s configuration, read from environment variables (the Fargate container's
//! interface). Every variable, its default and its meaning:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NONCE_JOB_ID` | required | the job this worker serves (16 hex digits) |
//! | `NONCE_WORKER_ID` | `w-<pid>` | this worker's name, unique within the job |
//! | `NONCE_TRANSPORT` | `stdio` | `stdio`: commands on stdin, events on stdout, one base64 message a line |
//! | `NONCE_THREADS` | CPUs available | hashing threads |
//! | `NONCE_HEARTBEAT_MS` | `1000` | heartbeat interval |
//! | `NONCE_ORPHAN_TIMEOUT_S` | `30` | exit when the coordinator is silent this long |
//! | `NONCE_KERNEL` | fastest supported | `shani`, `avx2` or `portable` |
//! | `NONCE_LOG` | `warn` | log filter (logs go to stderr) |

use crate::kernel::Backend;
use crate::WorkerConfig;
use protocol::{JobId, WorkerId};
use std::time::Duration;

/// Reads the worker's configuration from `get` (the process environment in production).
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<(WorkerConfig, String), String> {
    let job: JobId = get("NONCE_JOB_ID")
        .ok_or("NONCE_JOB_ID is required (the job id, 16 hex digits)")?
        .parse()
        .map_err(|e| format!("NONCE_JOB_ID: {e}"))?;
    let id = get("NONCE_WORKER_ID").unwrap_or_else(|| format!("w-{}", std::process::id()));
    if id.is_empty() || id.len() > 128 {
        return Err("NONCE_WORKER_ID must be 1 to 128 characters".into());
    }
    let transport = get("NONCE_TRANSPORT").unwrap_or_else(|| "stdio".into());
    if transport != "stdio" {
        return Err(format!("NONCE_TRANSPORT={transport:?} is not available in this build (stdio)"));
    }
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
                .ok_or(format!("NONCE_KERNEL={name:?}: expected shani, avx2 or portable"))?;
            if !b.is_supported() {
                return Err(format!("NONCE_KERNEL={name}: this CPU does not support it"));
            }
            b
        }
    };
    let inbox = format!("stdio://{id}");
    Ok((
        WorkerConfig { id: WorkerId(id), job, inbox, threads, heartbeat, orphan_timeout, backend },
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<(WorkerConfig, String), String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_env(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_errors() {
        let (cfg, t) = with(&[("NONCE_JOB_ID", "00000000000000aa")]).expect("valid");
        assert_eq!((cfg.job, t.as_str()), (JobId(0xaa), "stdio"));
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
