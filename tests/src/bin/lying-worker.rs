//! `lying-worker`: a `nonce-worker` that lies, for the hostile-worker tests only (it is in the
//! test crate: never in `nonce-worker`, never in a release image). It is started by the
//! `process` launcher in place of `nonce-worker` (`NONCE_WORKER_BIN`), so it holds real
//! credentials, as an insider or a faulty host would. The first worker of a job (`w0-…`) lies;
//! every other one passes its events through untouched and is an honest `nonce-worker`.
//!
//! `NONCE_LIE=skip-half`: claims every segment but reports only the shares (and golden
//! nonces) of its lower half, as a worker that skipped half of every range would.
//! `NONCE_LIE=drop:N`: a miscomputing core: loses one in N of the shares and golden nonces it
//! finds (chosen by a hash of the nonce).

#![forbid(unsafe_code)]

use protocol::auth::WorkerKey;
use protocol::{EventBody, SealedEvent, ShardId};
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use worker_actor::aws;
use worker_actor::env_config::{self, TransportEnv};
use worker_actor::EventSink;

#[derive(Debug, Clone, Copy)]
enum Lie {
    SkipHalf,
    Drop(u64),
}

impl Lie {
    fn from_env() -> Result<Lie, String> {
        match std::env::var("NONCE_LIE").as_deref() {
            Ok("skip-half") => Ok(Lie::SkipHalf),
            Ok(other) => other
                .strip_prefix("drop:")
                .and_then(|n| n.parse().ok())
                .filter(|&n: &u64| n >= 2)
                .map(Lie::Drop)
                .ok_or(format!("NONCE_LIE={other:?}: expected skip-half or drop:N (N >= 2)")),
            Err(_) => Err("NONCE_LIE is required (skip-half or drop:N)".into()),
        }
    }
}

/// Rewrites the worker's events as the lie wants and seals them again with the worker's key.
struct Liar {
    inner: Arc<dyn EventSink>,
    key: WorkerKey,
    lie: Lie,
    /// Per shard, the shares it has admitted to: golden nonces outside them are hidden too.
    kept: Mutex<BTreeMap<ShardId, BTreeSet<u64>>>,
}

impl Liar {
    fn keeps(&self, nonce: u64, from: u128, to: u128) -> bool {
        match self.lie {
            Lie::SkipHalf => u128::from(nonce) < from + (to - from) / 2,
            Lie::Drop(n) => !(nonce.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32).is_multiple_of(n),
        }
    }

    fn segment(&self, shard: ShardId, from: u128, to: u128, shares: &mut Vec<u64>, found: &mut Vec<u64>) {
        shares.retain(|&n| self.keeps(n, from, to));
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let set = kept.entry(shard).or_default();
        set.extend(shares.iter().copied());
        found.retain(|n| set.contains(n));
    }
}

impl EventSink for Liar {
    fn send(&self, sealed: SealedEvent) {
        let SealedEvent { seq, mut event, .. } = sealed;
        match &mut event.body {
            // Golden nonces go out only inside the segments that admit them.
            EventBody::Found { .. } => return,
            EventBody::Heartbeat { shards, .. } => {
                for p in shards.iter_mut() {
                    self.segment(p.shard, p.from, p.watermark, &mut p.shares, &mut p.found);
                }
            }
            EventBody::ShardDone { shard, from, end, shares, found, .. } => {
                self.segment(*shard, *from, *end, shares, found);
            }
            EventBody::Hello { .. } | EventBody::ShrinkAck { .. } | EventBody::Bye { .. } => {}
        }
        self.inner.send(self.key.seal_event(seq, event));
    }
}

fn main() -> ExitCode {
    let (cfg, transport) = match env_config::from_env(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lying-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let lie = match Lie::from_env() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lying-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let TransportEnv::Aws(ends) = transport else {
        eprintln!("lying-worker: only NONCE_TRANSPORT=aws");
        return ExitCode::from(2);
    };
    let lies = cfg.id.0.starts_with("w0-");
    let key = cfg.key.clone();
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clients = aws_transport::AwsClients::from_env().await?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        aws::serve_through(cfg, &clients, &ends, stop, move |inner| {
            if lies {
                Arc::new(Liar { inner, key, lie, kept: Mutex::default() })
            } else {
                inner
            }
        })
        .await
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lying-worker: {e}");
            ExitCode::from(3)
        }
    }
}
