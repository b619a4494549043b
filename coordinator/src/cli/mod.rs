//! `noncectl`: the command-line client. Parses and validates flags, then runs the coordinator
//! in-process (the embedded default) or talks to `nonced` through its socket or over the
//! network (`--endpoint`, [`connection`]). One file per
//! subcommand; the request and report they share with the daemon are in `crate::request`.

mod bench;
mod connection;
mod daemon_client;
mod estimate;
mod experiment;
mod puzzle_args;
mod search;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use puzzle_args::PuzzleArgs;

/// Exit codes of the user contract.
pub mod exit {
    pub const FOUND: u8 = 0;
    pub const NONE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const FAILURE: u8 = 3;
    pub const CANCELLED: u8 = 130;
}

pub use crate::request::UsageError;

#[derive(Parser, Debug)]
#[command(
    name = "noncectl",
    version,
    about = "Find golden nonces: double SHA-256 proof of work, spread over workers."
)]
struct Cli {
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

/// Runs `noncectl` with the process arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    crate::logging::init(crate::logging::Audience::Terminal, "warn");
    let code = match cli.command {
        Command::Search(args) => search::run(*args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Estimate(args) => estimate::run(args),
        Command::Experiment(cmd) => experiment::run(cmd),
        Command::Daemon(cmd) => daemon_client::run(cmd),
    };
    match code {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(exit::USAGE)
        }
    }
}
