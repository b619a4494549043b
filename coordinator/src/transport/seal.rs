//! `Seal`: the coordinator's half of [`protocol::auth`] for one job. The job decides what to
//! send; this seals it on the way out (each worker's commands with that worker's key,
//! broadcasts signed with the job's key, numbered in this coordinator life's stream), and
//! hands each new worker its credentials for the launch channel.

use protocol::auth::{BroadcastSigner, BroadcastVerifier, JobSecret, WorkerKey};
use protocol::{Command, JobId, SealedCommand, SignedBroadcast, WorkerId};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a worker is given at launch, and nothing else: its name, its key, the job's
/// broadcast public key. Never logged (`Debug` hides the key).
#[derive(Clone, Debug)]
pub struct WorkerCredentials {
    /// Its name.
    pub worker: WorkerId,
    /// Its key, which seals its events and opens its commands.
    pub key: WorkerKey,
    /// The job's broadcast public key.
    pub broadcast: BroadcastVerifier,
}

/// The variables a `nonce-worker` reads its credentials from.
pub const CREDENTIAL_VARIABLES: [&str; 3] = ["NONCE_WORKER_ID", "NONCE_WORKER_KEY", "NONCE_BROADCAST_KEY"];

impl WorkerCredentials {
    /// The credentials as environment variables ([`CREDENTIAL_VARIABLES`], in that order).
    pub fn env(&self) -> Vec<(String, String)> {
        let values = [self.worker.0.clone(), self.key.to_hex(), self.broadcast.to_hex()];
        CREDENTIAL_VARIABLES.iter().map(|k| k.to_string()).zip(values).collect()
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Seal {
    job: JobId,
    secret: JobSecret,
    signer: BroadcastSigner,
    /// This coordinator life: workers keep a replay window per stream.
    stream: u64,
    next_direct: u64,
    next_broadcast: u64,
    keys: HashMap<WorkerId, WorkerKey>,
}

impl Seal {
    /// The seals of `job` (its secret) for the coordinator's life `stream`.
    pub fn new(job: JobId, secret: JobSecret, stream: u64) -> Self {
        let signer = secret.broadcast_signer(job);
        Seal { job, secret, signer, stream, next_direct: 0, next_broadcast: 0, keys: HashMap::new() }
    }

    fn key(&mut self, worker: &WorkerId) -> &WorkerKey {
        let (secret, job) = (&self.secret, self.job);
        self.keys.entry(worker.clone()).or_insert_with(|| secret.worker_key(job, worker))
    }

    /// A command for `worker`'s inbox.
    pub fn command(&mut self, worker: &WorkerId, command: Command) -> SealedCommand {
        self.next_direct += 1;
        let (stream, seq) = (self.stream, self.next_direct);
        self.key(worker).seal_command(stream, seq, command)
    }

    /// A command for every worker of the job.
    pub fn broadcast(&mut self, command: Command) -> SignedBroadcast {
        self.next_broadcast += 1;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.signer.sign(self.stream, self.next_broadcast, now_ms, command)
    }

    /// What a new worker is launched with.
    pub fn credentials(&mut self, worker: &WorkerId) -> WorkerCredentials {
        let key = self.key(worker).clone();
        WorkerCredentials { worker: worker.clone(), key, broadcast: self.signer.verifier() }
    }

    /// Forgets a worker's key (it is gone: nothing more is sent to it).
    pub fn forget(&mut self, worker: &WorkerId) {
        self.keys.remove(worker);
    }
}
