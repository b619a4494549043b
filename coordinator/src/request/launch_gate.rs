//! The account's launch token buckets, shared by every job of this process: Fargate meters
//! launches per account and Region, so two jobs launching at once draw from one bucket
//! (`launcher::pacing` paces each call through it).

use nonce_core::launch_quota::{LaunchGate, LaunchQuotas};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The account's launch buckets, shared by every job this process launches for.
#[derive(Debug, Clone)]
pub struct SharedGate {
    gate: Arc<Mutex<(LaunchGate, Instant)>>,
    quotas: LaunchQuotas,
}

impl SharedGate {
    /// Full buckets of these quotas (validated by the caller: `LaunchQuotas::validate`).
    pub fn new(quotas: LaunchQuotas) -> Self {
        SharedGate {
            gate: Arc::new(Mutex::new((LaunchGate::new(quotas, Duration::ZERO), Instant::now()))),
            quotas,
        }
    }

    /// The quotas its buckets keep.
    pub fn quotas(&self) -> LaunchQuotas {
        self.quotas
    }

    fn with<R>(&self, f: impl FnOnce(&mut LaunchGate, Duration) -> R) -> R {
        let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let now = g.1.elapsed();
        f(&mut g.0, now)
    }

    /// Waits until both buckets hold a token, and takes them. Cancel-safe: a token is taken
    /// only when this returns.
    pub async fn acquire(&self) {
        loop {
            match self.with(|g, now| g.try_launch(now)) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// A call came back throttled: the account's bucket is emptier than ours.
    pub fn throttled(&self) {
        self.with(|g, now| g.throttled(now));
    }
}
