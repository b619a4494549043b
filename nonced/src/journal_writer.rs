//! `JournalWriter`: the journal's appends on a thread of their own. A write and its `fsync`
//! take milliseconds (tens on a busy disk); on the daemon's two async threads that would hold
//! up every connection and job behind it. The writer takes records as they come, writes
//! everything that queued up while the last sync ran, and syncs once for the batch: with many
//! jobs persisting at once, one sync serves them all.
//!
//! `append` resolves once its record is durable (a job's start is answered only then);
//! `submit` is for records whose loss is only worth a log line (a progress snapshot, which
//! the next one replaces); `flush` waits for everything queued before it, so the daemon
//! exits only once its journal is written. The queue is bounded: with the disk stalled,
//! `append` waits for room and `submit` drops (and says so) rather than growing memory.

use super::journal::{Journal, JournalError, Record};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most records one sync covers: a bound on a batch's memory and on how long its first
/// record waits for the rest.
const MAX_BATCH: usize = 256;

/// Records queued at most: a stalled disk holds this many (a few MiB of snapshots), no more.
const QUEUE: usize = 4096;

/// Why a record is not known to be on disk.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The write or its sync failed (the batch was cut back off the file).
    #[error("{0}")]
    Failed(Arc<JournalError>),
    /// The writer thread is gone.
    #[error("the journal writer has stopped")]
    Stopped,
}

enum Item {
    Record {
        record: Record,
        /// Told the outcome; `None`: logged instead.
        done: Option<oneshot::Sender<Result<(), WriteError>>>,
    },
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// See the module docs.
#[derive(Debug)]
pub struct JournalWriter {
    journal: Arc<Journal>,
    queue: mpsc::Sender<Item>,
    /// Records `submit` dropped on a full queue (logged on the first, then every 1,000th).
    dropped: std::sync::atomic::AtomicU64,
}

impl JournalWriter {
    /// Starts the writer thread for `journal`. It ends when the writer is dropped, after
    /// writing what was queued.
    pub fn start(journal: Journal) -> std::io::Result<JournalWriter> {
        let journal = Arc::new(journal);
        let (queue, mut incoming) = mpsc::channel::<Item>(QUEUE);
        let writing = Arc::clone(&journal);
        std::thread::Builder::new().name("journal".into()).spawn(move || {
            while let Some(first) = incoming.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                write_batch(&writing, batch);
            }
        })?;
        Ok(JournalWriter { journal, queue, dropped: Default::default() })
    }

    /// Appends `record`; resolves once it is on disk (or could not be written).
    pub async fn append(&self, record: Record) -> Result<(), WriteError> {
        let (done, outcome) = oneshot::channel();
        self.queue.send(Item::Record { record, done: Some(done) }).await.map_err(|_| WriteError::Stopped)?;
        outcome.await.map_err(|_| WriteError::Stopped)?
    }

    /// Appends `record` without waiting; a failure, or a full queue, is logged.
    pub fn submit(&self, record: Record) {
        let kind = record.kind();
        match self.queue.try_send(Item::Record { record, done: None }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(
                        record = kind,
                        queued = QUEUE,
                        dropped = n + 1,
                        "the journal is behind (a stalled disk?): records dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(record = kind, "the journal writer has stopped: a record was not journaled")
            }
        }
    }

    /// Resolves once every record queued before this call is written (or failed).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// The journal itself, for what is read rather than appended.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// Writes a batch's records with one sync, then answers its waiters in order.
fn write_batch(journal: &Journal, batch: Vec<Item>) {
    let records: Vec<Record> = batch
        .iter()
        .filter_map(|item| match item {
            Item::Record { record, .. } => Some(record.clone()),
            Item::Flush(_) => None,
        })
        .collect();
    let result = if records.is_empty() {
        Ok(())
    } else {
        journal.append_all(&records).map_err(|e| WriteError::Failed(Arc::new(e)))
    };
    for item in batch {
        match item {
            Item::Record { done: Some(done), .. } => {
                let _ = done.send(result.clone());
            }
            Item::Record { record, done: None } => {
                if let Err(e) = &result {
                    tracing::error!(error = %e, record = record.kind(), "could not journal a record");
                }
            }
            Item::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
