//! The ECS shim (`tests/emulator/ecs_shim.py`) as the tests drive it: it registers a task
//! definition on the emulator, runs each task's `nonce-worker` as a real process, and (with
//! `--front`) stands in front of the emulator's ECS API as Fargate's quotas and faults.
//! It prints its settings first and its report when its stdin closes.

use super::emulator::Emulator;
use super::{bin, s};
use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running shim.
pub struct EcsShim {
    proc: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Its first line: `cluster`, `task_definition`, `subnets`, `security_groups` and, with
    /// `--front`, `ecs_endpoint`.
    pub settings: Value,
}

impl EcsShim {
    /// Starts the shim against `em` with `extra` arguments (`--front`, `--quota`, ...).
    pub fn start(em: &Emulator, extra: &[&str]) -> EcsShim {
        let python = std::env::var("NONCE_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("NONCE_TEST_PYTHON is not set: the ECS shim needs the emulator's Python (scripts/test sets it)")
        });
        let mut proc = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/ecs_shim.py"))
            .args(["--endpoint", &em.endpoint, "--cluster", &format!("{}-cluster", em.prefix)])
            .args(["--worker-bin", &bin("nonce-worker").display().to_string()])
            .args(extra)
            .envs(em.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the ECS shim starts");
        let mut lines = BufReader::new(proc.stdout.take().expect("shim stdout")).lines();
        let settings: Value = serde_json::from_str(&lines.next().expect("settings line").expect("readable"))
            .expect("settings JSON");
        EcsShim { proc, lines, settings }
    }

    /// The `ecs` launcher's flags for the shim's cluster, task definition and network.
    pub fn ecs_flags(&self) -> Vec<String> {
        let join = |k: &str| {
            self.settings[k]
                .as_array()
                .expect(k)
                .iter()
                .map(|v| s(v).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            "--ecs-cluster".into(),
            s(&self.settings["cluster"]).into(),
            "--ecs-task-definition".into(),
            s(&self.settings["task_definition"]).into(),
            "--ecs-subnets".into(),
            join("subnets"),
            "--ecs-security-groups".into(),
            join("security_groups"),
        ]
    }

    /// Ends the shim and answers its report: the tasks it ran and, with `--front`, the calls.
    pub fn report(mut self) -> Value {
        drop(self.proc.stdin.take()); // the shim reports and ends
        let report = serde_json::from_str(&self.lines.next().expect("report line").expect("readable"))
            .expect("report JSON");
        let _ = self.proc.wait();
        report
    }
}
