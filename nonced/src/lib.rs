//! `nonced`: the coordinator daemon. Holds the coordinator (and, with AWS, the credentials),
//! serves JSON-RPC 2.0 on a Unix socket, journals its jobs, and tells systemd how it is.
//!
//! Split as listeners ([`socket`], the Unix socket; [`http`], JSON-RPC over HTTP and WebSocket
//! with bearer tokens; both share one method table), protocol ([`rpc`]), methods
//! ([`methods`]), who is calling ([`users`]), state ([`journal`]) and settings ([`config`]);
//! `noncectl`'s `client` is the other end. Shutdown is a signal turned into one orderly
//! sequence in [`run`]. The runtime (actors, transports, launchers, the request model) is the
//! `coordinator` crate's; this crate is the program around it.

#![forbid(unsafe_code)]

pub mod config;
pub mod connections;
pub mod http;
pub mod journal;
pub mod journal_writer;
pub mod methods;
pub mod metrics;
pub mod rpc;
pub mod socket;
pub mod sweeper;
pub mod users;

use actix::prelude::*;
use clap::Parser;
use config::{DaemonConfig, OnShutdown};
use coordinator::actors::{Coordinator, ListJobs};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long the exit waits for the journal's last records: a sync takes milliseconds, and the
/// listeners' 3 s, the cancel's 5 s, this and the AWS settle's 10 s stay inside systemd's
/// `TimeoutStopSec=20s`.
const JOURNAL_FLUSH_LIMIT: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(
    name = "nonced",
    version,
    about = "The nonce-cloud coordinator daemon (JSON-RPC 2.0 on a Unix socket, and over HTTPS/WebSocket with [http] listen)."
)]
struct Args {
    /// TOML configuration file (see infra/nonced.example.toml). Default: under systemd,
    /// $CONFIGURATION_DIRECTORY/nonced.toml (ConfigurationDirectory=nonced: /etc/nonced).
    #[arg(long, env = "NONCE_CONFIG")]
    config: Option<PathBuf>,
    /// Control socket path.
    #[arg(long, env = "NONCE_SOCKET")]
    socket: Option<PathBuf>,
    /// Directory for the job journal.
    #[arg(long = "state-dir", env = "NONCE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Ask a running daemon whether it is healthy (exit 0) or not (exit 1), then exit:
    /// the container health check.
    #[arg(long = "health-check")]
    health_check: bool,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

#[derive(clap::Subcommand, Debug)]
enum DaemonCommand {
    /// Manage users' bearer tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(clap::Subcommand, Debug)]
enum TokenAction {
    /// Prints a fresh random token for NAME, once, and the `[[users]]` table to add to the
    /// config (which holds only the token's SHA-256).
    New {
        /// The user's name (1-64 of A-Z a-z 0-9 . _ - @).
        name: String,
        /// `user` (their own jobs) or `admin` (every job, daemon.info).
        #[arg(long, default_value = "user")]
        role: String,
    },
}

/// `nonced token new NAME`: the token goes to the user, its hash to the config.
fn new_token(name: &str, role: &str) -> ExitCode {
    let role_value = match role {
        "user" => users::Role::User,
        "admin" => users::Role::Admin,
        other => {
            eprintln!("error: --role {other:?}: expected user or admin");
            return ExitCode::from(2);
        }
    };
    let (token, hash) = users::new_token();
    let entry = users::UserEntry {
        name: name.to_string(),
        role: role_value,
        token_sha256: Some(hash.clone()),
        uid: None,
        quotas: None,
    };
    if let Err(e) = users::Users::new(&[entry], 0) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    coordinator::outln!(
        "token for {name} (shown once; give it to the user, e.g. in a file for --token-file):"
    );
    coordinator::outln!("{token}");
    coordinator::outln!();
    coordinator::outln!("add to nonced.toml:");
    coordinator::outln!("[[users]]\nname = {name:?}\nrole = {role:?}\ntoken_sha256 = \"{hash}\"");
    ExitCode::SUCCESS
}

/// Runs `nonced` with the process arguments.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(DaemonCommand::Token { action: TokenAction::New { name, role } }) = &args.command {
        return new_token(name, role);
    }
    coordinator::logging::init(coordinator::logging::Audience::Service, "info", |k| std::env::var(k).ok());
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let system = coordinator::actors::system();
    let health_check_only = args.health_check;
    let result = if health_check_only {
        system.block_on(health_check(config.socket_path())).map_err(DaemonError::from)
    } else {
        // A SIGHUP reads the configuration again the same way: file, then env, then flags.
        system.block_on(run(config, Box::new(move || load_config(&args))))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A health check is a one-shot command: its answer is one line on stderr. A daemon that
        // stops says so on stderr (a terminal, systemd) and in its log (JSON to CloudWatch).
        Err(e) if health_check_only => {
            eprintln!("unhealthy: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if !std::io::stderr().is_terminal() {
                tracing::error!(error = %e, "nonced stopped");
            }
            ExitCode::from(3)
        }
    }
}

/// The configuration: the file (`--config`, else systemd's `CONFIGURATION_DIRECTORY`), then
/// the environment, then the flags, each overriding the one before.
fn load_config(args: &Args) -> Result<DaemonConfig, config::ConfigError> {
    let config_path = args.config.clone().or_else(|| {
        std::env::var_os("CONFIGURATION_DIRECTORY")
            .map(|d| PathBuf::from(d).join("nonced.toml"))
            .filter(|p| p.exists())
    });
    let mut config = match &config_path {
        Some(path) => DaemonConfig::load(path)?,
        None => DaemonConfig::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if args.socket.is_some() {
        config.socket = args.socket.clone();
    }
    if args.state_dir.is_some() {
        config.state_dir = args.state_dir.clone();
    }
    config.check()?;
    Ok(config)
}

/// Why `nonced` could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory or its journal cannot be used.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The AWS transport could not be set up (credentials, the deployment, a setting).
    #[error("aws: {0}")]
    Aws(#[from] aws_transport::AwsError),
    /// The hashing backend asked for cannot run here.
    #[error("kernel: {0}")]
    Kernel(#[from] nonce_kernel::BackendError),
    /// A part of the daemon did not start: the configuration's check, a listener, the AWS
    /// clients, the kernel, a signal handler.
    #[error("{0}")]
    Start(String),
}

impl From<String> for DaemonError {
    fn from(why: String) -> Self {
        DaemonError::Start(why)
    }
}

/// Reads the configuration again (on SIGHUP).
pub type Reload = Box<dyn Fn() -> Result<DaemonConfig, config::ConfigError> + Send + Sync>;

async fn health_check(socket: PathBuf) -> Result<(), String> {
    use nonce_api::client::{socket::SocketClient, Daemon};
    let mut c = SocketClient::connect(&socket).await.map_err(|e| e.to_string())?;
    let info = tokio::time::timeout(Duration::from_secs(5), c.info())
        .await
        .map_err(|_| "the daemon did not answer within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    coordinator::outln!("{}", serde_json::to_value(&info).unwrap_or_default());
    Ok(())
}

/// Starts everything, serves until SIGTERM or SIGINT, then shuts down in order.
pub async fn run(config: DaemonConfig, reload: Reload) -> Result<(), DaemonError> {
    config.check()?;
    let socket = config.socket_path();
    let state = config.state_path();
    let (journal, remembered) = journal::Journal::open(&state)?;
    let aws = match config.aws_settings() {
        Some(settings) => Some(coordinator::transport::aws::AwsContext::connect(settings).await?),
        None => None,
    };
    let coordinator = Coordinator::with_aws(aws.clone()).start();
    let on_shutdown = config.on_shutdown;
    let listener = socket::bind(&socket, config.socket_group.as_deref()).await?;
    // `kernel` (NONCE_KERNEL): the hashing backend of this daemon's workers.
    let kernel = nonce_kernel::Backend::choose(config.kernel.as_deref())?;
    let call_log = config.aws_call_log.clone();
    let methods = methods::DaemonMethods::new(coordinator.clone(), config, journal, aws.clone(), kernel)
        .map_err(|e| format!("cannot start the journal writer: {e}"))?;
    methods.restore(remembered).await;
    tokio::spawn({
        let methods = Arc::clone(&methods);
        async move { methods.calibrate().await }
    });
    let bound = methods::Bound { methods: Arc::clone(&methods), socket: socket.display().to_string() };
    let users =
        Arc::new(users::LiveUsers::new(users::Users::new(&methods.config().users, users::own_uid())?));
    let http = http::Listener::bind(&methods.config().http).await?;
    let certs = http.as_ref().and_then(|l| l.certificates());
    // Always: without a handler SIGHUP's default action would end the daemon.
    let reloading =
        Some(tokio::spawn(reload_on_sighup(reload, Arc::clone(&methods), Arc::clone(&users), certs)));
    let http_addr = http.as_ref().and_then(|l| l.local_addr());
    let bound = Arc::new(bound);
    // Shutdown is said once, here; both listeners and each of their connections watch it.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let http_serving = http.map(|l| {
        let table = http::module::Table(Arc::clone(&bound));
        let users = Arc::clone(&users);
        let source: Arc<dyn http::MetricsSource> = Arc::clone(&methods) as Arc<dyn http::MetricsSource>;
        let stopping = stopping.clone();
        tokio::spawn(async move {
            if let Err(e) = l.serve(table, users, source, stopping, socket::SHUTDOWN_GRACE).await {
                tracing::error!(error = %e, "the network listener stopped");
            }
        })
    });

    let serving = tokio::spawn(socket::serve(listener, bound as Arc<dyn rpc::Methods>, users, stopping));
    match http_addr {
        Some(addr) => {
            tracing::info!(socket = %socket.display(), http = %addr, state = %state.display(), "nonced ready")
        }
        None => tracing::info!(socket = %socket.display(), state = %state.display(), "nonced ready"),
    }
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("serving")]);
    let watchdog = tokio::spawn(watchdog(coordinator.clone()));
    let emf = methods.config().metrics.emf.then(|| {
        let every = Duration::from_secs(methods.config().metrics.emf_every_s);
        tokio::spawn(metrics_lines(Arc::clone(&methods), every))
    });
    let sweeping = aws.clone().map(|a| {
        let every = Duration::from_secs(methods.config().aws.as_ref().map_or(300, |t| t.sweep_every_s));
        tokio::spawn(sweeper::run(a, Arc::clone(&methods), every))
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("stopping")]);
    // No new connections; the calls in flight finish (or are told the daemon is stopping).
    let _ = stop.send(true);
    let grace = socket::SHUTDOWN_GRACE + Duration::from_secs(1);
    if tokio::time::timeout(grace, serving).await.is_err() {
        tracing::warn!("socket connections still open after the grace: closing them");
    }
    if let Some(http) = http_serving {
        if tokio::time::timeout(grace, http).await.is_err() {
            tracing::warn!("the network listener did not stop within the grace");
        }
    }
    watchdog.abort();
    for task in [reloading, emf].into_iter().flatten() {
        task.abort();
    }
    if let Some(s) = sweeping {
        s.abort();
    }
    let _ = std::fs::remove_file(&socket);
    match on_shutdown {
        OnShutdown::Cancel => methods.cancel_all(Duration::from_secs(5)).await,
        OnShutdown::Keep => {
            let n = methods.running().len();
            if n > 0 {
                tracing::info!(jobs = n, "leaving running jobs in the journal for the next start");
            }
        }
    }
    methods.exiting();
    // Everything queued to the journal is on disk before the process ends, unless the disk
    // has stalled: then the exit is not held past a systemd stop timeout's worth of waiting.
    if tokio::time::timeout(JOURNAL_FLUSH_LIMIT, methods.flush_journal()).await.is_err() {
        tracing::error!(
            waited_s = JOURNAL_FLUSH_LIMIT.as_secs(),
            "the journal could not be written before exit (a stalled disk?): its last records may be lost"
        );
    }
    if let Some(aws) = aws {
        aws.settle(Duration::from_secs(10)).await;
        // NONCE_AWS_CALL_LOG: what this daemon called, for the least-privilege test.
        if let Some(path) = &call_log {
            aws.clients.calls.append_to_call_log(path, "daemon", methods.uptime().as_secs_f64());
        }
    }
    Ok(())
}

/// Prints one CloudWatch Embedded Metric Format line every `every` (stdout: the awslogs
/// driver turns it into metrics).
async fn metrics_lines(methods: Arc<methods::DaemonMethods>, every: Duration) {
    let prefix = methods.config().aws.as_ref().map_or_else(|| "local".to_string(), |a| a.prefix.clone());
    let mut before = methods.reading().await;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = methods.reading().await;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Err(e) =
            coordinator::output::write_line(format_args!("{}", metrics::emf(&now, &before, ms, &prefix)))
        {
            tracing::warn!(error = %e, "cannot write a metrics line to stdout");
        }
        before = now;
    }
}

impl http::MetricsSource for methods::DaemonMethods {
    fn exposition(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
        Box::pin(async move { metrics::render(self.metrics(), &self.reading().await) })
    }
}

/// On every SIGHUP, reads the configuration again and applies what can change under running
/// jobs and open connections: users and their tokens (a token taken out stops working at
/// once), quotas, `keep_finished`, and the TLS certificate and key (re-read from their files).
/// Whatever else changed is logged as needing a restart and kept as it was. A configuration
/// that does not load changes nothing.
async fn reload_on_sighup(
    reload: Reload,
    methods: Arc<methods::DaemonMethods>,
    users: Arc<users::LiveUsers>,
    certs: Option<Arc<http::tls::Certificates>>,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: nothing will be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        notify(&[sd_notify::NotifyState::Reloading]);
        reload_once(&reload, &methods, &users, certs.as_deref());
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

fn reload_once(
    reload: &Reload,
    methods: &methods::DaemonMethods,
    users: &users::LiveUsers,
    certs: Option<&http::tls::Certificates>,
) {
    let new = match reload() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration does not load; nothing changed");
            return;
        }
    };
    let table = match users::Users::new(&new.users, users::own_uid()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the users do not check; nothing changed");
            return;
        }
    };
    let old = methods.config();
    let (reloaded, restart) = config::reload_split(&old, &new);
    let (added, removed) = users.replace(table);
    methods.replace_config(reloaded);
    if let Some(certs) = certs {
        match certs.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; the old one stays"),
        }
    }
    tracing::info!(users_added = ?added, users_removed = ?removed,
        changed = ?config::reloadable_changes(&old, &new), "SIGHUP: configuration reloaded");
    if !restart.is_empty() {
        tracing::warn!(settings = ?restart, "SIGHUP: these settings changed but need a restart; they are kept as they were");
    }
}

/// Pings systemd's watchdog at half its interval, but only while the coordinator actor
/// answers: a wedged arbiter must not look healthy.
async fn watchdog(coordinator: Addr<Coordinator>) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_micros(usec / 2));
    loop {
        every.tick().await;
        if tokio::time::timeout(Duration::from_micros(usec / 4), coordinator.send(ListJobs)).await.is_ok() {
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }
}

fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
