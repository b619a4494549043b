//! `nonce-worker`: one worker process (the Fargate container's entry point), configured by
//! environment variables (see `worker_actor::env_config`). Exits when told to stop, when its
//! coordinator goes silent past the orphan timeout or closes its pipe, or on SIGTERM.

use actix::prelude::*;
use std::process::ExitCode;
use std::sync::Arc;
use worker_actor::{env_config, stdio, ExitReason, Inbox, WorkerActor};

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NONCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let (cfg, _transport) = match env_config::from_env(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nonce-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    });
    let reason = Arc::new(std::sync::Mutex::new(ExitReason::Stopped));
    let seen = Arc::clone(&reason);
    system.block_on(async move {
        let actor = WorkerActor::new(cfg, Arc::new(stdio::StdoutSink::default()))
            .on_exit(move |r| {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = r;
                System::current().stop();
            })
            .start();
        let pump = actor.clone();
        // A plain thread, not spawn_blocking: the runtime would wait for a blocked stdin read.
        let (closed_tx, stdin_closed) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = closed_tx.send(stdio::pump_stdin(pump));
        });
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("nonce-worker: cannot watch SIGTERM: {e}");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = stdin_closed => tracing::info!("the coordinator closed the pipe: stopping"),
            _ = wait_stopped(actor.clone()) => {}
        }
        actor.do_send(Inbox(protocol::Command::Stop { job: None }));
        // The actor's `stopped` joins the hashing threads and says Bye, then ends the system.
        wait_stopped(actor).await;
    });
    let r = *reason.lock().unwrap_or_else(|e| e.into_inner());
    match r {
        ExitReason::Stopped => ExitCode::SUCCESS,
        ExitReason::Orphaned => ExitCode::from(4),
        ExitReason::Failed => ExitCode::from(3),
    }
}

async fn wait_stopped(actor: Addr<WorkerActor>) {
    while actor.connected() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
