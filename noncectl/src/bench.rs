//! `noncectl bench`: the kernel's hash rate on this machine, and its ratio to single-stream
//! SHA-256 measured in the same run.

use super::{exit, UsageError};
use clap::Args;
use coordinator::request::report::human_rate;
use nonce_kernel::bench;
use nonce_kernel::Backend;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Hashing threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// How long to hash for (a duration: 5, 5s, 1m; at most 1h).
    #[arg(long, value_name = "DUR", default_value = "5s")]
    seconds: String,
    /// Backend: gpu, avx512, shani, avx2 or portable (default: the fastest this machine has;
    /// gpu needs a build with the `gpu` feature and a Vulkan adapter).
    #[arg(long)]
    backend: Option<String>,
    /// Hash a Bitcoin 80-byte header (the genesis block's, nonce little-endian, key from the
    /// reversed hash) instead of the default puzzle (COMSM0010cloud, be32).
    #[arg(long)]
    header: bool,
}

/// `kernel`: the program's backend (`NONCE_KERNEL` or the fastest); `--backend` beats it.
pub fn run(args: BenchArgs, kernel: Backend, json: bool) -> Result<u8, UsageError> {
    let threads = args.threads.unwrap_or_else(coordinator::request::cpus);
    if threads == 0 || threads > 1024 {
        return Err(UsageError(format!("--threads must be 1..=1024, not {threads}")));
    }
    let seconds = coordinator::request::parse_duration_flag("seconds", &args.seconds)?;
    if seconds > Duration::from_secs(3600) {
        return Err(UsageError(format!("--seconds: at most an hour, not {:?}", args.seconds)));
    }
    let backend = match &args.backend {
        None => kernel,
        Some(name) => Backend::choose(Some(name)).map_err(|e| UsageError(format!("--backend {e}")))?,
    };
    let which = if args.header { bench::BenchPuzzle::Header } else { bench::BenchPuzzle::Coursework };
    let r = bench::run_puzzle(which, backend, threads, seconds);
    let ratio = r.ratio_to_single_stream();
    // The planner plans with this machine's measured per-thread rate (of the default puzzle).
    if !args.header {
        coordinator::request::calibration::save_measured(&crate::cache_dir_from_env(), backend, &r);
    }
    if json {
        let obj = serde_json::json!({
            "rate": r.rate.round(),
            "per_thread": r.per_thread.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "threads": r.threads,
            "backend": r.backend.name(),
            "adapter": r.adapter,
            "puzzle": r.puzzle.name(),
            "single_stream_compressions": r.single_stream_compressions.round(),
            "single_stream_nonce_limit": (r.single_stream_compressions / 2.0).round(),
            "ratio_to_single_stream": (ratio * 1000.0).round() / 1000.0,
        });
        coordinator::outln!("{obj}");
    } else {
        coordinator::outln!("backend            {}", r.backend.name());
        if let Some(adapter) = &r.adapter {
            coordinator::outln!("adapter            {adapter}");
        }
        coordinator::outln!("puzzle             {}", r.puzzle.name());
        coordinator::outln!("threads            {}", r.threads);
        coordinator::outln!("total              {}", human_rate(r.rate));
        for (i, t) in r.per_thread.iter().enumerate() {
            coordinator::outln!("  thread {i:<3}       {}", human_rate(*t));
        }
        coordinator::outln!(
            "single stream      {:.2} M compressions/s = {} nonces at 2 per nonce",
            r.single_stream_compressions / 1e6,
            human_rate(r.single_stream_compressions / 2.0)
        );
        coordinator::outln!("per thread / single-stream limit = {ratio:.3}");
    }
    Ok(exit::FOUND)
}
