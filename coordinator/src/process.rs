//! The `process` launcher: real `nonce-worker` processes on this machine, each reached through
//! its stdin/stdout pipes with the wire codec's text form (what SQS would carry). A worker's
//! exit is known at once (its stdout closes) and reported, so its range is re-sharded without
//! waiting for the stall timeout.

use crate::launcher::{Launcher, WorkerGone, WorkerWiring};
use crate::transport::{Transport, WorkerEvent};
use protocol::{codec, Command, Message, WorkerId};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long stopped workers get to leave before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Inboxes of process workers: their stdin pipes.
#[derive(Clone, Default)]
pub struct PipeNetwork {
    inboxes: Arc<Mutex<HashMap<String, ChildStdin>>>,
}

impl std::fmt::Debug for PipeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipeNetwork")
    }
}

impl PipeNetwork {
    fn write(pipe: &mut ChildStdin, command: &Command) {
        if let Ok(text) = codec::encode_text(&Message::Command(command.clone())) {
            // A closed pipe is a dead worker: its exit is reported by the reader thread.
            let _ = writeln!(pipe, "{text}").and_then(|_| pipe.flush());
        }
    }

    /// Closes every pipe: workers read EOF and stop.
    fn close_all(&self) {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Transport for PipeNetwork {
    fn send(&self, inbox: &str, command: Command) {
        if let Some(pipe) = self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(inbox) {
            Self::write(pipe, &command);
        }
    }

    fn broadcast(&self, command: Command) {
        for pipe in self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).values_mut() {
            Self::write(pipe, &command);
        }
    }
}

/// See the module docs.
pub struct ProcessLauncher {
    wiring: WorkerWiring,
    network: PipeNetwork,
    children: Arc<Mutex<Vec<Child>>>,
    started: usize,
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
    pub fn new(wiring: WorkerWiring, network: PipeNetwork) -> Self {
        ProcessLauncher { wiring, network, children: Arc::default(), started: 0 }
    }
}

/// The `nonce-worker` binary: `NONCE_WORKER_BIN`, else beside this executable.
pub fn worker_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("NONCE_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let path = exe.with_file_name("nonce-worker");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} not found (build it, or set NONCE_WORKER_BIN)", path.display()))
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, count: usize) -> Result<(), String> {
        let bin = worker_binary()?;
        let w = self.wiring.clone();
        for _ in 0..count {
            let id = WorkerId(format!("p{}-{}", self.started, w.job));
            self.started += 1;
            let mut child = std::process::Command::new(&bin)
                .env("NONCE_JOB_ID", w.job.to_string())
                .env("NONCE_WORKER_ID", &id.0)
                .env("NONCE_TRANSPORT", "stdio")
                .env("NONCE_THREADS", w.threads.to_string())
                .env("NONCE_HEARTBEAT_MS", w.timings.heartbeat.as_millis().to_string())
                .env("NONCE_ORPHAN_TIMEOUT_S", w.timings.orphan_timeout.as_secs().max(1).to_string())
                .env("NONCE_KERNEL", w.backend.name())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                let _ = child.kill();
                return Err("worker pipes unavailable".into());
            };
            self.network
                .inboxes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(format!("stdio://{id}"), stdin);
            let (events, gone, inbox, network) =
                (w.events.clone(), w.gone.clone(), format!("stdio://{id}"), self.network.clone());
            std::thread::Builder::new()
                .name(format!("pipe-{id}"))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        match codec::decode_text(&line) {
                            Ok(Message::Event(ev)) => events.do_send(WorkerEvent(ev)),
                            Ok(Message::Command(_)) | Err(_) => {
                                tracing::warn!(worker = %id, "undecodable line from a worker, dropped")
                            }
                        }
                    }
                    network.inboxes.lock().unwrap_or_else(|e| e.into_inner()).remove(&inbox);
                    gone.do_send(WorkerGone(id));
                })
                .map_err(|e| format!("cannot start a pipe reader: {e}"))?;
            self.children.lock().unwrap_or_else(|e| e.into_inner()).push(child);
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        // The Stop broadcast went first; closing the pipes is the second word; the third is a kill.
        self.network.close_all();
        let children = Arc::clone(&self.children);
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + STOP_GRACE;
            loop {
                let mut list = children.lock().unwrap_or_else(|e| e.into_inner());
                list.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
                if list.is_empty() {
                    return;
                }
                if std::time::Instant::now() >= deadline {
                    for c in list.iter_mut() {
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
        for c in self.children.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
