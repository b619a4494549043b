//! The measured hash rate the planner plans with: saved by `noncectl bench`, else measured
//! briefly on first use, kept per kernel backend in `~/.cache/nonce-cloud/calibration.json`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use worker_actor::Backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    backend: String,
    per_thread: f64,
}

/// The CLI's cache directory: `$XDG_CACHE_HOME/nonce-cloud`, else `~/.cache/nonce-cloud`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("nonce-cloud")
}

fn path() -> PathBuf {
    cache_dir().join("calibration.json")
}

/// Records a measured per-thread rate.
pub fn save(backend: Backend, per_thread: f64) {
    let p = path();
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let saved = Saved { backend: backend.name().into(), per_thread };
    if let Ok(text) = serde_json::to_string(&saved) {
        let _ = std::fs::write(p, text);
    }
}

/// Nonces per second of one hashing thread on this machine: saved, or measured now (0.3 s).
pub fn per_thread_rate(backend: Backend) -> f64 {
    let saved = std::fs::read_to_string(path())
        .ok()
        .and_then(|t| serde_json::from_str::<Saved>(&t).ok())
        .filter(|s| s.backend == backend.name() && s.per_thread.is_finite() && s.per_thread > 0.0);
    if let Some(s) = saved {
        return s.per_thread;
    }
    let r = worker_actor::bench::run(backend, 1, Duration::from_millis(300));
    save(backend, r.rate);
    r.rate
}
