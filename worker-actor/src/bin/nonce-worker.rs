//! `nonce-worker`: one worker process (the Fargate container's entry point), configured by
//! environment variables (see `worker_actor::env_config`). Exits when told to stop, when its
//! coordinator goes silent past the orphan timeout (or closes its pipe), or on SIGTERM, which
//! is what ECS StopTask sends. Over `aws` it creates its inbox queue at start and deletes it
//! (and its subscription) on the way out.
//!
//! Exit codes: 0 stopped, 2 bad configuration, 3 failed (hashing or AWS set-up), 4 orphaned.

#![forbid(unsafe_code)]

use actix::prelude::*;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use worker_actor::aws::{self, wait_stopped};
use worker_actor::env_config::{self, TransportEnv};
use worker_actor::{stdio, ExitReason, LocalStop, Shutdown, WorkerActor, WorkerConfig};

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NONCE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,aws_config=error,aws_smithy_runtime=error")
    });
    // Colour only at a terminal and without NO_COLOR (no-color.org): ECS logs and pipes get text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
    let (cfg, transport) = match env_config::from_env(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nonce-worker: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!("{}", worker_actor::search::hashing_on(cfg.backend, cfg.threads));
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    });
    let result = match transport {
        TransportEnv::Stdio => Ok(system.block_on(run_stdio(cfg))),
        TransportEnv::Aws(ends) => system.block_on(async move {
            let clients = aws_transport::AwsClients::from_env().await?;
            aws::serve(cfg, &clients, &ends, signals()).await
        }),
    };
    match result {
        Ok(ExitReason::Stopped | ExitReason::Terminated) => ExitCode::SUCCESS,
        Ok(ExitReason::Orphaned) => ExitCode::from(4),
        Ok(ExitReason::Failed) => ExitCode::from(3),
        Err(e) => {
            eprintln!("nonce-worker: {e}");
            ExitCode::from(3)
        }
    }
}

async fn run_stdio(cfg: WorkerConfig) -> ExitReason {
    let reason = Arc::new(Mutex::new(ExitReason::Stopped));
    let seen = Arc::clone(&reason);
    let actor = WorkerActor::new(cfg, Arc::new(stdio::StdoutSink::default()))
        .on_exit(move |r| *seen.lock().unwrap_or_else(|e| e.into_inner()) = r)
        .start();
    let pump = actor.clone();
    // A plain thread, not spawn_blocking: the runtime would wait for a blocked stdin read.
    let (closed_tx, stdin_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = closed_tx.send(stdio::pump_stdin(pump));
    });
    let why = tokio::select! {
        _ = signals() => Shutdown::Terminated,
        _ = stdin_closed => {
            tracing::info!("the coordinator closed the pipe: stopping");
            Shutdown::Stopped
        }
        _ = wait_stopped(actor.clone()) => Shutdown::Stopped,
    };
    actor.do_send(LocalStop(why));
    wait_stopped(actor).await;
    let r = *reason.lock().unwrap_or_else(|e| e.into_inner());
    r
}

/// Resolves on SIGTERM (ECS StopTask) or SIGINT.
async fn signals() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        },
        Err(e) => {
            eprintln!("nonce-worker: cannot watch SIGTERM ({e}); stopping");
        }
    }
}
