//! `JournalWriter`: the journal's appends on a thread of their own. A write and its `fsync`
//! take milliseconds (tens on a busy disk); on the daemon's two async threads that would hold
//! up every connection and job behind it. The writer takes records as they come, writes
//! everything that queued up while the last sync ran, and syncs once for the batch: with many
//! jobs persisting at once, one sync serves them all.
//!
//! `append` resolves once its record is durable (a job's start is answered only then);
//! `submit` is for records whose failure is only worth a log line.

use super::journal::{Journal, Record};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most records one sync covers: a bound on a batch's memory and on how long its first
/// record waits for the rest.
const MAX_BATCH: usize = 256;

struct Pending {
    record: Record,
    /// Told the outcome; `None`: logged instead.
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct JournalWriter {
    journal: Arc<Journal>,
    queue: mpsc::Sender<Pending>,
}

impl JournalWriter {
    /// Starts the writer thread for `journal`. It ends when the writer is dropped, after
    /// writing what was queued.
    pub fn start(journal: Journal) -> std::io::Result<JournalWriter> {
        let journal = Arc::new(journal);
        let (queue, incoming) = mpsc::channel::<Pending>();
        let writing = Arc::clone(&journal);
        std::thread::Builder::new().name("journal".into()).spawn(move || {
            while let Ok(first) = incoming.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let records: Vec<Record> = batch.iter().map(|p| p.record.clone()).collect();
                let result = writing.append_all(&records);
                for p in batch {
                    match p.done {
                        Some(done) => {
                            let _ = done.send(result.clone());
                        }
                        None => {
                            if let Err(e) = &result {
                                tracing::error!(error = %e, record = p.record.kind(), "could not journal a record");
                            }
                        }
                    }
                }
            }
        })?;
        Ok(JournalWriter { journal, queue })
    }

    /// Appends `record`; resolves once it is on disk (or could not be written).
    pub async fn append(&self, record: Record) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Pending { record, done: Some(done) })
            .map_err(|_| "the journal writer has stopped".to_string())?;
        outcome.await.map_err(|_| "the journal writer has stopped".to_string())?
    }

    /// Appends `record` without waiting; a failure is logged.
    pub fn submit(&self, record: Record) {
        if self.queue.send(Pending { record, done: None }).is_err() {
            tracing::error!("the journal writer has stopped: a record was not journaled");
        }
    }

    /// The journal itself, for what is read rather than appended.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}
