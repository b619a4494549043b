//! What the tests need to speak for workers as a real one would: the job's secret, each
//! worker's key and sequence numbers, and the ids the job launched.
#![allow(dead_code)]

use nonce_core::job::{Input, Output};
use protocol::auth::JobSecret;
use protocol::{Event, EventBody, JobId, WorkerId};
use std::collections::HashMap;

/// The secret every test job is configured with.
pub fn secret() -> JobSecret {
    JobSecret::from_bytes([42; 32])
}

/// Seals events in the names of a job's workers, numbering each worker's events.
#[derive(Debug, Default)]
pub struct Voices {
    seqs: HashMap<WorkerId, u64>,
}

impl Voices {
    pub fn say(&mut self, job: JobId, worker: &WorkerId, body: EventBody) -> Input {
        let seq = self.seqs.entry(worker.clone()).or_default();
        *seq += 1;
        let key = secret().worker_key(job, worker);
        Input::Event(key.seal_event(*seq, Event { job, worker: worker.clone(), body }))
    }

    /// A Hello with the worker's own in-memory inbox.
    pub fn hello(&mut self, job: JobId, worker: &WorkerId) -> Input {
        self.say(job, worker, EventBody::Hello { inbox: format!("mem://{worker}"), cpus: 1 })
    }
}

/// The workers an output list launches.
pub fn launched(out: &[Output]) -> Vec<WorkerId> {
    out.iter()
        .flat_map(|o| if let Output::Launch { workers } = o { workers.clone() } else { vec![] })
        .collect()
}
