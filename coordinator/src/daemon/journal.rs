//! The daemon's append-only journal: one JSON line per decision that must survive a crash
//! (a job started, a job finished), each synced to disk before the daemon goes on. On start,
//! the daemon replays it: finished jobs keep their results, unfinished ones are resumed.

use protocol::JobId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::request::SearchRequest;
use nonce_core::job::Snapshot;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Start {
        job: String,
        request: Box<SearchRequest>,
        /// The user who started it (absent in journals written before users existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// When, in Unix seconds (per-user daily usage counts from it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
        /// The job's secret (hex), so a restarted daemon still verifies the workers it adopts.
        /// Why the journal is 0600.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    Finish {
        job: String,
        result: Value,
        /// When, in Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    /// Ranges known searched and nonces found so far, for resuming after a crash.
    Progress { job: String, snapshot: Snapshot },
}

/// A job as the journal remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    pub job: JobId,
    pub request: SearchRequest,
    pub result: Option<Value>,
    pub progress: Option<Snapshot>,
    pub owner: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The job's secret, hex (absent in journals written before messages were sealed).
    pub secret: Option<String>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// Where each append's latency goes (the daemon's metrics).
    latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Journal {
    /// Opens (creating) `dir/journal.jsonl` and replays it.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Remembered>), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create state dir {}: {e}", dir.display()))?;
        let path = dir.join("journal.jsonl");
        let mut jobs: Vec<Remembered> = Vec::new();
        if let Ok(f) = File::open(&path) {
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let Ok(line) = line else { break };
                // A torn last line (crash mid-write) is skipped; anything else malformed too,
                // with a warning, so one bad line never stops the daemon.
                let record: Record = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(line = n + 1, error = %e, "skipping an unreadable journal line");
                        continue;
                    }
                };
                match record {
                    Record::Start { job, request, owner, at, secret } => {
                        if let Ok(id) = job.parse::<JobId>() {
                            jobs.retain(|j| j.job != id);
                            jobs.push(Remembered {
                                job: id,
                                request: *request,
                                result: None,
                                progress: None,
                                owner,
                                started_at: at,
                                finished_at: None,
                                secret,
                            });
                        }
                    }
                    Record::Progress { job, snapshot } => {
                        if let Some(j) =
                            job.parse::<JobId>().ok().and_then(|id| jobs.iter_mut().find(|j| j.job == id))
                        {
                            j.progress = Some(snapshot);
                        }
                    }
                    Record::Finish { job, result, at } => {
                        if let Some(j) =
                            job.parse::<JobId>().ok().and_then(|id| jobs.iter_mut().find(|j| j.job == id))
                        {
                            j.result = Some(result);
                            j.finished_at = at;
                        }
                    }
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open journal {}: {e}", path.display()))?;
        // After a torn write, start the next record on a line of its own.
        let torn = std::fs::read(&path).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));
        if torn {
            file.write_all(b"\n").map_err(|e| format!("journal write failed: {e}"))?;
        }
        Ok((Journal { path, file: Mutex::new(file), latency: None }, jobs))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and syncs one record.
    pub fn append(&self, record: &Record) -> Result<(), String> {
        let mut line = serde_json::to_string(record).map_err(|e| e.to_string())?;
        line.push('\n');
        let started = std::time::Instant::now();
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let written = f
            .write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("journal write failed: {e}"));
        if let Some(h) = &self.latency {
            h.observe(started.elapsed().as_secs_f64());
        }
        written
    }

    /// Observes every append's latency in `h`.
    pub fn observe_latency(&mut self, h: prometheus_client::metrics::histogram::Histogram) {
        self.latency = Some(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_starts_and_finishes_and_survives_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("nonced-journal-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (j, jobs) = Journal::open(&dir).expect("opens");
        assert!(jobs.is_empty());
        let req = SearchRequest { block: Some("x".into()), difficulty: Some(3), ..Default::default() };
        j.append(&Record::Start {
            job: JobId(1).to_string(),
            request: Box::new(req.clone()),
            owner: None,
            at: None,
            secret: Some("ab".repeat(32)),
        })
        .expect("write");
        j.append(&Record::Start {
            job: JobId(2).to_string(),
            request: Box::new(req.clone()),
            owner: Some("alice".into()),
            at: Some(7),
            secret: None,
        })
        .expect("write");
        j.append(&Record::Finish {
            job: JobId(1).to_string(),
            result: serde_json::json!({"outcome":"found"}),
            at: None,
        })
        .expect("write");
        drop(j);
        let mut f = OpenOptions::new().append(true).open(dir.join("journal.jsonl")).expect("open");
        f.write_all(b"{\"type\":\"fin").expect("torn write");
        let (j, jobs) = Journal::open(&dir).expect("reopens");
        assert_eq!(jobs.len(), 2);
        j.append(&Record::Finish { job: JobId(2).to_string(), result: serde_json::json!({}), at: Some(9) })
            .expect("write");
        drop(j);
        let (j, after) = Journal::open(&dir).expect("reopens");
        assert!(after[1].result.is_some(), "a record after a torn line is read");
        // Progress up to the very end of a 64-bit space survives the round trip.
        let snapshot =
            Snapshot { done: vec![protocol::NonceRange::new(5, 1u128 << 64)], found: vec![u64::MAX] };
        j.append(&Record::Progress { job: JobId(1).to_string(), snapshot: snapshot.clone() }).expect("write");
        drop(j);
        let (_, again) = Journal::open(&dir).expect("reopens");
        assert_eq!(again[0].progress.as_ref(), Some(&snapshot));
        assert!(jobs[0].result.is_some());
        assert_eq!(
            jobs[1],
            Remembered {
                job: JobId(2),
                request: req,
                result: None,
                progress: None,
                owner: Some("alice".into()),
                started_at: Some(7),
                finished_at: None,
                secret: None,
            }
        );
        assert_eq!(again[0].secret.as_deref(), Some("ab".repeat(32).as_str()), "the secret survives");
        assert_eq!(after[1].finished_at, Some(9), "finish times are kept for daily usage");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
