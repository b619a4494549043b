//! The measured hash rate the planner plans with: saved by `noncectl bench`, else measured
//! briefly on first use, kept per kernel backend and per binary in
//! `~/.cache/nonce-cloud/calibration.json` (a rebuilt or upgraded binary may hash at another
//! rate: its kernel changed, so the old figure would mislead the planner).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use worker_actor::Backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    backend: String,
    per_thread: f64,
    /// Which binary measured it ([`this_binary`]); files from before it was recorded have none.
    #[serde(default)]
    binary: String,
}

impl Saved {
    /// Whether this figure stands for `backend` as hashed by `binary`.
    fn applies_to(&self, backend: Backend, binary: &str) -> bool {
        self.backend == backend.name()
            && !binary.is_empty()
            && self.binary == binary
            && self.per_thread.is_finite()
            && self.per_thread > 0.0
    }
}

/// The running executable's size and modification time: changes with every build or upgrade.
/// Empty when unknown, and then nothing saved is trusted.
fn this_binary() -> String {
    let meta = std::env::current_exe().and_then(std::fs::metadata);
    match meta.as_ref().map(|m| (m.len(), m.modified())) {
        Ok((len, Ok(modified))) => {
            let secs = modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            format!("{len}-{secs}")
        }
        _ => String::new(),
    }
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
    let saved = Saved { backend: backend.name().into(), per_thread, binary: this_binary() };
    if let Ok(text) = serde_json::to_string(&saved) {
        let _ = std::fs::write(p, text);
    }
}

/// Nonces per second of one hashing thread on this machine: saved, or measured now (0.3 s).
pub fn per_thread_rate(backend: Backend) -> f64 {
    let saved = std::fs::read_to_string(path())
        .ok()
        .and_then(|t| serde_json::from_str::<Saved>(&t).ok())
        .filter(|s| s.applies_to(backend, &this_binary()));
    if let Some(s) = saved {
        return s.per_thread;
    }
    let r = worker_actor::bench::run(backend, 1, Duration::from_millis(300));
    save(backend, r.rate);
    r.rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(backend: &str, per_thread: f64, binary: &str) -> Saved {
        Saved { backend: backend.into(), per_thread, binary: binary.into() }
    }

    #[test]
    fn a_figure_applies_only_to_its_backend_and_binary() {
        let b = Backend::Portable;
        assert!(saved("portable", 1e6, "123-456").applies_to(b, "123-456"));
        assert!(!saved("portable", 1e6, "123-456").applies_to(b, "123-457"), "rebuilt binary");
        assert!(!saved("avx2", 1e6, "123-456").applies_to(b, "123-456"), "other backend");
        assert!(!saved("portable", 0.0, "123-456").applies_to(b, "123-456"));
        assert!(!saved("portable", f64::NAN, "123-456").applies_to(b, "123-456"));
        assert!(!saved("portable", 1e6, "").applies_to(b, ""), "unknown binary");
        let old: Saved =
            serde_json::from_str(r#"{"backend":"portable","per_thread":1e6}"#).expect("old file");
        assert!(!old.applies_to(b, "123-456"), "a file from before binaries were recorded");
    }

    #[test]
    fn this_binary_is_known_and_stable() {
        let id = this_binary();
        assert!(!id.is_empty());
        assert_eq!(id, this_binary());
    }
}
