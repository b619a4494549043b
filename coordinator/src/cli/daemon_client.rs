//! `noncectl status|jobs|cancel|workers|wait`: talk to `nonced`.

use super::connection::ConnectionArgs;
use super::{exit, UsageError};
use crate::actors::system;
use crate::daemon::client::{CallError, DaemonClient};
use crate::request::report;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// How to reach the daemon; every daemon subcommand takes these.
#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// A job's progress (or result), or the daemon's own state with no job.
    Status {
        job_id: Option<String>,
        #[command(flatten)]
        conn: DaemonArgs,
    },
    /// Every job the daemon knows.
    Jobs {
        #[command(flatten)]
        conn: DaemonArgs,
    },
    /// Cancel a job.
    Cancel {
        job_id: String,
        #[command(flatten)]
        conn: DaemonArgs,
    },
    /// Workers of running jobs (or of one).
    Workers {
        job_id: Option<String>,
        #[command(flatten)]
        conn: DaemonArgs,
    },
    /// Wait for a job to end and print its result (exit code as for search).
    Wait {
        job_id: String,
        /// Give up waiting after this long (a duration: 90, 30s, 1h; at most 1h; 0: do not
        /// wait). Exit 1 if still running.
        #[arg(long, value_name = "DUR", default_value = "1h")]
        timeout: String,
        #[command(flatten)]
        conn: DaemonArgs,
    },
}

impl DaemonCommand {
    fn conn(&self) -> &DaemonArgs {
        match self {
            DaemonCommand::Status { conn, .. }
            | DaemonCommand::Jobs { conn }
            | DaemonCommand::Cancel { conn, .. }
            | DaemonCommand::Workers { conn, .. }
            | DaemonCommand::Wait { conn, .. } => conn,
        }
    }
}

pub fn run(cmd: DaemonCommand) -> Result<u8, UsageError> {
    let args = cmd.conn().clone();
    let target = args.connection.target()?.ok_or_else(|| {
        UsageError(
            "this command talks to nonced: give --socket PATH (or NONCE_SOCKET), or --endpoint URL with a token"
                .into(),
        )
    })?;
    if let DaemonCommand::Wait { timeout, .. } = &cmd {
        let t = crate::request::parse_duration_flag_or_zero("timeout", timeout)?;
        if t > std::time::Duration::from_secs(3600) {
            return Err(UsageError(format!("--timeout: at most an hour, not {timeout:?}")));
        }
    }
    let json_out = args.json;
    let result = system().block_on(async move {
        let mut c = DaemonClient::connect(&target).await?;
        match cmd {
            DaemonCommand::Status { job_id: None, .. } => {
                c.call("daemon.info", json!({})).await.map(|v| (v, None))
            }
            DaemonCommand::Status { job_id: Some(j), .. } => {
                c.call("search.status", json!({ "job_id": j })).await.map(|v| (v, None))
            }
            DaemonCommand::Jobs { .. } => c.call("search.list", json!({})).await.map(|v| (v, None)),
            DaemonCommand::Cancel { job_id, .. } => {
                c.call("search.cancel", json!({ "job_id": job_id })).await.map(|v| (v, None))
            }
            DaemonCommand::Workers { job_id, .. } => {
                let p = job_id.map_or(json!({}), |j| json!({ "job_id": j }));
                c.call("workers.list", p).await.map(|v| (v, None))
            }
            DaemonCommand::Wait { job_id, timeout, .. } => {
                let timeout = crate::request::parse_duration_flag_or_zero("timeout", &timeout)
                    .map_or(3600.0, |d| d.as_secs_f64());
                let v = c.call("search.wait", json!({ "job_id": job_id, "timeout_s": timeout })).await?;
                let code = if v["finished"] == json!(true) { None } else { Some(exit::NONE) };
                Ok((v, code))
            }
        }
    });
    match result {
        Ok((v, code)) => {
            let finished_result = (v["finished"] == json!(true)).then(|| v["result"].clone());
            match (&finished_result, json_out) {
                (Some(r), false) => crate::outln!("{}", report::text(r)),
                (Some(r), true) => crate::outln!("{r}"),
                (None, _) => crate::outln!("{}", if json_out { v.to_string() } else { pretty(&v) }),
            }
            Ok(code.unwrap_or_else(|| match finished_result.as_ref().and_then(|r| r["outcome"].as_str()) {
                Some("found") | None => exit::FOUND,
                Some("exhausted" | "timed_out") => exit::NONE,
                Some("cancelled") => exit::CANCELLED,
                Some(_) => exit::FAILURE,
            }))
        }
        Err(CallError::Rpc(e)) if e.code == crate::daemon::rpc::JOB_NOT_FOUND => {
            eprintln!("error: {}", e.message);
            Ok(exit::NONE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::FAILURE)
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}
