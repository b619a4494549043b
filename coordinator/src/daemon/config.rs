//! `nonced`'s configuration: a TOML file (see `infra/nonced.example.toml`), then environment,
//! then flags, each overriding the one before.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What to do with running jobs on SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnShutdown {
    /// Leave them in the journal; the next start resumes them.
    #[default]
    Keep,
    /// Cancel them and record the cancellation.
    Cancel,
}

/// Limits that keep one user or one mistake from taking the whole machine or account.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub max_workers_per_job: usize,
    pub max_concurrent_jobs: usize,
    /// Workers across all running jobs.
    pub max_fleet: usize,
    /// Worker threads x seconds one job may use; a job with no --max-time gets a deadline from it.
    pub max_vcpu_seconds_per_job: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_workers_per_job: 64,
            max_concurrent_jobs: 4,
            max_fleet: 256,
            max_vcpu_seconds_per_job: 7.0 * 86400.0,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// When set, the socket is mode 0660 and owned by this group; otherwise 0600.
    pub socket_group: Option<String>,
    pub on_shutdown: OnShutdown,
    pub transport: String,
    pub launcher: String,
    pub quotas: Quotas,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: None,
            state_dir: None,
            socket_group: None,
            on_shutdown: OnShutdown::Keep,
            transport: "memory".into(),
            launcher: "threads".into(),
            quotas: Quotas::default(),
        }
    }
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let cfg: DaemonConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses settings this build cannot honour, with the reason.
    pub fn check(&self) -> Result<(), String> {
        if self.transport != "memory" || self.launcher != "threads" {
            return Err(format!(
                "transport {:?} with launcher {:?} is not available in this build (only memory + threads)",
                self.transport, self.launcher
            ));
        }
        let q = &self.quotas;
        if q.max_workers_per_job == 0 || q.max_concurrent_jobs == 0 || q.max_fleet == 0 {
            return Err("quotas must be at least 1".into());
        }
        if !(q.max_vcpu_seconds_per_job.is_finite() && q.max_vcpu_seconds_per_job > 0.0) {
            return Err("quotas.max_vcpu_seconds_per_job must be a positive number".into());
        }
        Ok(())
    }

    /// The socket path: flag/env/config, else systemd's RuntimeDirectory, else a per-user /tmp path.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
            return PathBuf::from(dir).join("nonced.sock");
        }
        std::env::temp_dir().join(format!("nonced-{}", user_id())).join("nonced.sock")
    }

    /// The state directory: flag/env/config, else systemd's StateDirectory, else ~/.local/state.
    pub fn state_path(&self) -> PathBuf {
        if let Some(p) = &self.state_dir {
            return p.clone();
        }
        if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
        home.join(".local/state/nonced")
    }
}

/// This process's user id, read without `unsafe` from /proc.
pub fn user_id() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/nonced.example.toml");
        let cfg = DaemonConfig::load(&path).expect("the example is valid");
        assert_eq!(cfg.quotas.max_concurrent_jobs, 4);
        assert_eq!(cfg.on_shutdown, OnShutdown::Keep);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<DaemonConfig>("sokcet = '/x'").is_err());
        let cfg: DaemonConfig = toml::from_str("transport = 'carrier-pigeon'").expect("parses");
        assert!(cfg.check().is_err());
        let cfg: DaemonConfig = toml::from_str("[quotas]\nmax_fleet = 0").expect("parses");
        assert!(cfg.check().is_err());
    }
}
