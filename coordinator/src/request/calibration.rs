//! The measured hash rate the planner plans with: saved by `noncectl bench`, else measured
//! briefly on first use, kept per kernel backend and per binary in `calibration.json` in a
//! directory the program names (`noncectl`: `~/.cache/nonce-cloud`; `nonced`: its state
//! directory). A rebuilt or upgraded binary may hash at another rate: its kernel changed, so
//! the old figure would mislead the planner. The file holds several entries, so programs
//! sharing a directory do not replace each other's figures.

use nonce_kernel::Backend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Entries the file keeps (the newest): a few binaries times a few backends.
const KEPT: usize = 16;

/// The running executable's size and modification time: changes with every build or upgrade.
/// Empty when unknown, and then nothing saved is trusted.
fn this_binary() -> String {
    let meta = std::env::current_exe().and_then(std::fs::metadata);
    match meta.as_ref().map(|m| (m.len(), m.modified())) {
        Ok((len, Ok(modified))) => {
            let nanos = modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            format!("{len}-{nanos}")
        }
        _ => String::new(),
    }
}

/// The entries of the file's text: a list, or the single object older versions wrote; none
/// if it is not readable as either.
fn parse(text: &str) -> Vec<Saved> {
    serde_json::from_str::<Vec<Saved>>(text)
        .or_else(|_| serde_json::from_str::<Saved>(text).map(|one| vec![one]))
        .unwrap_or_default()
}

/// `entries` with `new` in place of any entry for the same backend and binary, newest last,
/// at most [`KEPT`].
fn with_entry(mut entries: Vec<Saved>, new: Saved) -> Vec<Saved> {
    entries.retain(|e| !(e.backend == new.backend && e.binary == new.binary));
    entries.push(new);
    let excess = entries.len().saturating_sub(KEPT);
    entries.drain(..excess);
    entries
}

/// The CLI's cache directory, from the variables the program read: `$XDG_CACHE_HOME/nonce-cloud`,
/// else `$HOME/.cache/nonce-cloud`, else one in the temporary directory.
pub fn cli_cache_dir(xdg_cache_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let base = xdg_cache_home
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| home.filter(|p| !p.as_os_str().is_empty()).map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("nonce-cloud")
}

/// The file's name, in the program's directory.
pub const FILE: &str = "calibration.json";

/// Records a measured per-thread rate in `dir`.
fn save(dir: &Path, backend: Backend, per_thread: f64) {
    let p = dir.join(FILE);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let new = Saved { backend: backend.name().into(), per_thread, binary: this_binary() };
    let entries = with_entry(parse(&std::fs::read_to_string(&p).unwrap_or_default()), new);
    if let Ok(text) = serde_json::to_string(&entries) {
        // Written aside (0600: in a daemon's state directory it is the daemon's alone, like
        // the journal) and renamed, so a reader never sees half a file.
        let tmp = p.with_extension(format!("json.{}", std::process::id()));
        if super::startup::write_private(&tmp, text.as_bytes()).is_ok() && std::fs::rename(&tmp, &p).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// The rate of one hashing thread of `backend` for this binary saved in `dir`, if any (never
/// measures).
pub fn saved_rate(dir: &Path, backend: Backend) -> Option<f64> {
    let binary = this_binary();
    parse(&std::fs::read_to_string(dir.join(FILE)).unwrap_or_default())
        .into_iter()
        .rev()
        .find(|s| s.applies_to(backend, &binary))
        .map(|s| s.per_thread)
}

/// The rate assumed before any measurement: about one AVX-512 or SHA-NI core (50 M nonces/s).
pub const DEFAULT_PER_THREAD: f64 = 50e6;

/// Nonces per second of one hashing thread on this machine: saved in `dir`, or measured now
/// (0.3 s) and saved there.
pub fn per_thread_rate(dir: &Path, backend: Backend) -> f64 {
    if let Some(r) = saved_rate(dir, backend) {
        return r;
    }
    let r = run(backend);
    save_measured(dir, backend, &r);
    r.rate
}

/// Nonces per second of one hashing thread of `backend`, measured now (0.3 s of hashing).
pub fn measure(backend: Backend) -> f64 {
    run(backend).rate
}

/// The calibration run: one thread, 0.3 s.
fn run(backend: Backend) -> nonce_kernel::bench::BenchResult {
    nonce_kernel::bench::run(backend, 1, Duration::from_millis(300))
}

/// Records a bench of `asked`'s per-thread rate in `dir`, unless the backend changed under it
/// (a GPU given up mid-run says the CPU's): such a figure mixes two backends.
pub fn save_measured(dir: &Path, asked: Backend, r: &nonce_kernel::bench::BenchResult) {
    if r.backend == asked && r.threads > 0 {
        save(dir, asked, r.rate / r.threads as f64);
    }
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
    fn entries_of_other_binaries_and_backends_are_kept() {
        let mut entries = parse(r#"{"backend":"avx512","per_thread":4e7}"#);
        assert_eq!(entries.len(), 1, "the single object older versions wrote");
        entries = with_entry(entries, saved("avx512", 6e7, "noncectl"));
        entries = with_entry(entries, saved("avx512", 5.9e7, "nonced"));
        entries = with_entry(entries, saved("shani", 3e7, "noncectl"));
        entries = with_entry(entries, saved("avx512", 6.1e7, "noncectl"));
        let text = serde_json::to_string(&entries).expect("serialize");
        let back = parse(&text);
        let find = |backend: Backend, binary: &str| {
            back.iter().rev().find(|s| s.applies_to(backend, binary)).map(|s| s.per_thread)
        };
        assert_eq!(find(Backend::Avx512, "noncectl"), Some(6.1e7), "replaced, not duplicated");
        assert_eq!(find(Backend::Avx512, "nonced"), Some(5.9e7));
        assert_eq!(back.len(), 4);
        for i in 0..40 {
            entries = with_entry(entries, saved("avx2", 1e7, &format!("build-{i}")));
        }
        assert_eq!(entries.len(), KEPT);
        assert_eq!(entries.last().map(|e| e.binary.as_str()), Some("build-39"));
        assert!(parse("not json").is_empty());
    }

    #[test]
    fn this_binary_is_known_and_stable() {
        let id = this_binary();
        assert!(!id.is_empty());
        assert_eq!(id, this_binary());
    }
}
