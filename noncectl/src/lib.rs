//! `noncectl`: the command-line client. Parses and validates flags, then runs the coordinator
//! in-process (the embedded default) or talks to `nonced` through its socket or over the
//! network (`--endpoint`, [`connection`]). One file per
//! subcommand; the request and report they share with the daemon are in `coordinator::request`.

#![forbid(unsafe_code)]

mod bench;
pub mod client;
pub mod connection;
mod daemon_client;
mod estimate;
mod experiment;
pub mod experiments;
mod puzzle_args;
mod search;
mod table;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use puzzle_args::PuzzleArgs;

/// Exit codes of the user contract (README, "Exit codes").
pub mod exit {
    /// Found (a search, `wait`), or done (every other command).
    pub const FOUND: u8 = 0;
    /// No golden nonce: exhausted or timed out (or `wait` gave up while it runs).
    pub const NONE: u8 = 1;
    /// Bad input: flags checked here, or params the daemon refused.
    pub const USAGE: u8 = 2;
    /// The search failed, or the daemon could not serve the call.
    pub const FAILURE: u8 = 3;
    /// No such job (or not yours).
    pub const NOT_FOUND: u8 = 4;
    /// The daemon refused you: a bad token, or a call your role may not make.
    pub const FORBIDDEN: u8 = 5;
    /// A quota refused the job.
    pub const QUOTA: u8 = 6;
    /// No daemon answered at the socket or endpoint, or the connection broke.
    pub const UNREACHABLE: u8 = 7;
    /// Cancelled (Ctrl-C, `noncectl cancel`).
    pub const CANCELLED: u8 = 130;

    /// A search's end as an exit code (`search`, `wait`).
    pub fn of_outcome(outcome: nonce_api::Outcome) -> u8 {
        use nonce_api::Outcome;
        match outcome {
            Outcome::Found => FOUND,
            Outcome::Exhausted | Outcome::TimedOut => NONE,
            Outcome::Cancelled => CANCELLED,
            Outcome::Failed => FAILURE,
        }
    }
}

/// Flags every command takes, before or after its name.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Talk to a nonced daemon (search and the daemon commands).
    #[command(flatten)]
    pub connection: connection::ConnectionArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

pub use coordinator::request::UsageError;

#[derive(Parser, Debug)]
#[command(
    name = "noncectl",
    version,
    about = "Find golden nonces: double SHA-256 proof of work, spread over workers.",
    after_help = "Exit codes: 0 found (or done), 1 none found / still running, 2 bad input, 3 failure, \
4 no such job, 5 refused (token, role), 6 quota, 7 daemon unreachable, 130 cancelled."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Search a range of nonces for golden ones.
    Search(Box<search::SearchArgs>),
    /// Check one nonce: its digest, leading zero bits and verdict.
    Verify(verify::VerifyArgs),
    /// Measure the hashing kernel on this machine.
    Bench(bench::BenchArgs),
    /// Plan a fleet: workers for a difficulty, a deadline and a confidence.
    Estimate(estimate::EstimateArgs),
    /// Reproduce the coursework report's experiments (CSV and plots).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    #[command(flatten)]
    Daemon(daemon_client::DaemonCommand),
}

/// The hashing backend `NONCE_KERNEL` forces, or the fastest this CPU runs.
pub fn kernel_from_env() -> Result<nonce_kernel::Backend, UsageError> {
    let forced = std::env::var("NONCE_KERNEL").ok();
    nonce_kernel::Backend::choose(forced.as_deref()).map_err(|e| UsageError(format!("NONCE_KERNEL={e}")))
}

/// The `nonce-worker` binary `NONCE_WORKER_BIN` names (the `process` launcher's), if any.
pub fn worker_binary_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os("NONCE_WORKER_BIN").filter(|p| !p.is_empty()).map(std::path::PathBuf::from)
}

/// Where `noncectl` keeps its calibration and start-up history: `$XDG_CACHE_HOME/nonce-cloud`,
/// else `~/.cache/nonce-cloud`.
pub fn cache_dir_from_env() -> std::path::PathBuf {
    coordinator::request::calibration::cli_cache_dir(
        std::env::var_os("XDG_CACHE_HOME").map(Into::into),
        std::env::var_os("HOME").map(Into::into),
    )
}

/// Runs `noncectl` with the process arguments.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        cli.global.connection.given = connection::Given::from_matches(&m);
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let json = cli.global.json;
    coordinator::logging::init(coordinator::logging::Audience::Terminal, "warn", |k| std::env::var(k).ok());
    let code = kernel_from_env().and_then(|kernel| match cli.command {
        Command::Search(args) => search::run(*args, kernel, &cli.global),
        Command::Verify(args) => verify::run(args, json),
        Command::Bench(args) => bench::run(args, kernel, json),
        Command::Estimate(args) => estimate::run(args, kernel, json),
        Command::Experiment(cmd) => experiment::run(cmd, kernel, json),
        Command::Daemon(cmd) => daemon_client::run(cmd, &cli.global),
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(exit::USAGE)
        }
    }
}
