//! The `process` launcher: real `nonce-worker` processes on this machine. With the `memory`
//! transport each is reached through its stdin/stdout pipes with the wire codec's text form
//! (what SQS would carry); with `aws` they get the same environment an ECS task would and
//! talk over SQS and SNS. Either way a worker's exit is known at once (its stdout closes, or
//! the watcher sees it) and reported, so its range is re-sharded without waiting for the
//! stall timeout.

use super::{LaunchError, Launcher, WorkerCredentials, WorkerGone, WorkerWiring};
use crate::transport::{PipeNetwork, WorkerEvent};
use protocol::{codec, Message, WorkerId};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long stopped workers get to leave before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How process workers reach their coordinator.
#[derive(Debug)]
enum ProcessRoute {
    Pipes(PipeNetwork),
    /// The `aws` transport: workers get `worker_env` (queue URL, topic ARN, ...).
    Aws(crate::transport::aws::AwsContext),
}

/// See the module docs.
pub struct ProcessLauncher {
    wiring: WorkerWiring,
    route: ProcessRoute,
    children: Arc<Mutex<Vec<(WorkerId, Child)>>>,
    started: usize,
    watching: bool,
}

impl std::fmt::Debug for ProcessLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessLauncher")
            .field("job", &self.wiring.job)
            .field("started", &self.started)
            .finish()
    }
}

impl ProcessLauncher {
    /// A launcher of `nonce-worker` processes that talk over their pipes (`network`).
    pub fn new(wiring: WorkerWiring, network: PipeNetwork) -> Self {
        ProcessLauncher {
            wiring,
            route: ProcessRoute::Pipes(network),
            children: Arc::default(),
            started: 0,
            watching: false,
        }
    }

    /// Workers over the `aws` transport. Like ECS tasks, they live on their own: they are
    /// stopped by the broadcast (SIGTERM and a kill only if they ignore it), and a
    /// coordinator that dies leaves them to be adopted by its next life or to time out.
    pub fn over_aws(wiring: WorkerWiring, ctx: crate::transport::aws::AwsContext) -> Self {
        ProcessLauncher {
            wiring,
            route: ProcessRoute::Aws(ctx),
            children: Arc::default(),
            started: 0,
            watching: false,
        }
    }

    /// Reports aws workers' exits: they have no pipe whose end would tell.
    fn watch(&mut self) -> Result<(), LaunchError> {
        if self.watching {
            return Ok(());
        }
        self.watching = true;
        let children = Arc::downgrade(&self.children);
        let gone = self.wiring.gone.clone();
        std::thread::Builder::new()
            .name(format!("watch-{}", self.wiring.job))
            .spawn(move || {
                while let Some(children) = children.upgrade() {
                    let mut list = children.lock().unwrap_or_else(|e| e.into_inner());
                    list.retain_mut(|(id, c)| match c.try_wait() {
                        Ok(None) => true,
                        _ => {
                            gone.do_send(WorkerGone(id.clone()));
                            false
                        }
                    });
                    drop(list);
                    drop(children);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .map(|_| ())
            .map_err(LaunchError::spawn("a process watcher"))
    }
}

/// The `nonce-worker` binary: `forced` (the program's `NONCE_WORKER_BIN`), else beside this
/// executable.
pub fn worker_binary(forced: Option<&Path>) -> Result<PathBuf, LaunchError> {
    if let Some(p) = forced {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()
        .map_err(|e| LaunchError::NoWorkerBinary(format!("cannot find this executable: {e}")))?;
    let path = exe.with_file_name("nonce-worker");
    if path.exists() {
        Ok(path)
    } else {
        Err(LaunchError::NoWorkerBinary(format!(
            "{} not found (build it, or set NONCE_WORKER_BIN)",
            path.display()
        )))
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, workers: Vec<WorkerCredentials>) -> Result<(), LaunchError> {
        let bin = worker_binary(self.wiring.worker_binary.as_deref())?;
        let w = self.wiring.clone();
        for creds in workers {
            let id = creds.worker.clone();
            self.started += 1;
            let mut cmd = std::process::Command::new(&bin);
            // A process group of its own: Ctrl-C at the terminal reaches the coordinator, which
            // cancels the job and stops its workers, not the workers behind its back.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.env("NONCE_JOB_ID", w.job.to_string())
                .envs(creds.env())
                .env("NONCE_THREADS", w.threads.to_string())
                .env("NONCE_HEARTBEAT_MS", w.timings.heartbeat.as_millis().max(1).to_string())
                .env("NONCE_ORPHAN_TIMEOUT_S", w.timings.orphan_timeout.as_secs().max(1).to_string())
                .env("NONCE_KERNEL", w.backend.name())
                .stderr(Stdio::inherit());
            if let ProcessRoute::Aws(ctx) = &self.route {
                cmd.envs(ctx.worker_env(w.job, &w.timings)).stdin(Stdio::null()).stdout(Stdio::null());
                let child = cmd.spawn().map_err(LaunchError::spawn(bin.display().to_string()))?;
                self.children.lock().unwrap_or_else(|e| e.into_inner()).push((id, child));
                self.watch()?;
                continue;
            }
            let ProcessRoute::Pipes(network) = &self.route else { continue };
            let mut child = cmd
                .env("NONCE_TRANSPORT", "stdio")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(LaunchError::spawn(bin.display().to_string()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                let _ = child.kill();
                return Err(LaunchError::Refused("worker pipes unavailable".into()));
            };
            network.register(format!("stdio://{id}"), stdin);
            let (events, gone, inbox, network) =
                (w.events.clone(), w.gone.clone(), format!("stdio://{id}"), network.clone());
            let child_id = id.clone();
            std::thread::Builder::new()
                .name(format!("pipe-{id}"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        match codec::decode_text(&line) {
                            Ok(Message::Event(ev)) => events.do_send(WorkerEvent(ev)),
                            Ok(Message::Command(_) | Message::Broadcast(_)) | Err(_) => {
                                tracing::warn!(worker = %id, "undecodable line from a worker, dropped")
                            }
                        }
                    }
                    network.unregister(&inbox);
                    gone.do_send(WorkerGone(id));
                })
                .map_err(LaunchError::spawn("a pipe reader"))?;
            self.children.lock().unwrap_or_else(|e| e.into_inner()).push((child_id, child));
        }
        Ok(())
    }

    fn evict(&mut self, worker: &WorkerId) {
        // It was told to stop; a liar need not listen: kill it (its exit is reported as usual).
        let mut list = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for (_, c) in list.iter_mut().filter(|(id, _)| id == worker) {
            let _ = c.kill();
        }
    }

    fn stop_all(&mut self) {
        // The Stop broadcast went first. Pipes: closing them is the second word, a kill the
        // third. aws: the broadcast gets its grace, then SIGTERM, then a kill; the process
        // does not exit before that is done (the guard).
        let (guard, mut terminated) = match &self.route {
            ProcessRoute::Pipes(network) => {
                network.close_all();
                (None, true)
            }
            ProcessRoute::Aws(ctx) => (Some(ctx.cleanup_guard()), false),
        };
        let children = Arc::clone(&self.children);
        std::thread::spawn(move || {
            let _guard = guard;
            let mut deadline = std::time::Instant::now() + STOP_GRACE;
            loop {
                let mut list = children.lock().unwrap_or_else(|e| e.into_inner());
                list.retain_mut(|(_, c)| matches!(c.try_wait(), Ok(None)));
                if list.is_empty() {
                    return;
                }
                if std::time::Instant::now() >= deadline && !terminated {
                    tracing::warn!(left = list.len(), "workers ignored the Stop broadcast: SIGTERM");
                    for (_, c) in list.iter() {
                        terminate(c.id());
                    }
                    terminated = true;
                    deadline = std::time::Instant::now() + STOP_GRACE;
                } else if std::time::Instant::now() >= deadline {
                    for (_, c) in list.iter_mut() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return;
                }
                drop(list);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }
}

impl Drop for ProcessLauncher {
    fn drop(&mut self) {
        if matches!(self.route, ProcessRoute::Aws(_)) {
            return; // independent workers: see `over_aws`
        }
        for (_, c) in self.children.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM (what ECS sends on StopTask), through `kill(1)`: no `unsafe` outside the kernel.
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
