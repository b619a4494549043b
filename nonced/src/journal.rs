//! The daemon's append-only journal: one JSON line per decision that must survive a crash
//! (a job started, a job finished), each synced to disk before the daemon goes on. On start,
//! the daemon replays it: finished jobs keep their results, unfinished ones are resumed.
//!
//! Running jobs add a progress line every couple of seconds, so the file is compacted: at
//! open when it holds more than twice the lines its jobs need, and while running every
//! [`COMPACT_AFTER_APPENDS`] appends. Compacting rewrites it as each job's start, then its
//! finish or (still running) its last progress, which replays to the same jobs; it is written
//! aside and renamed over the journal, so a crash leaves the old file or the new one, whole.

use protocol::JobId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use coordinator::request::{startup, SearchRequest};
use nonce_core::job::Snapshot;

/// The state directory's mode, and every file's in it: the journal holds every user's
/// requests and results, which are for the daemon's user alone, whatever the umask.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;
/// The daemon's other files in the state directory, made private at open like the journal
/// (an older daemon wrote them with the umask's mode).
const OTHER_STATE_FILES: &[&str] = &[startup::FILE, coordinator::request::calibration::FILE, REJECTED];
/// The journal, in the state directory.
const FILE: &str = "journal.jsonl";
/// Where compaction keeps the lines replay could not read (raw, one a line), rather than
/// drop them: they may be a newer daemon's records, or worth a look.
const REJECTED: &str = "journal.rejected";
/// Appends after which a running daemon compacts the journal: a restart replays at most about
/// this many lines beyond what the jobs need.
pub const COMPACT_AFTER_APPENDS: usize = 10_000;

impl Record {
    /// The record's type, as its line names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Start { .. } => "start",
            Record::Finish { .. } => "finish",
            Record::Progress { .. } => "progress",
            Record::Forget { .. } => "forget",
            Record::Usage { .. } => "usage",
        }
    }
}

/// Reads a field through a `serde_json::Value`. An internally tagged enum buffers its fields,
/// and serde_json's `arbitrary_precision` (the API's exact 2^64 totals) buffers numbers as
/// maps that a float (or a struct holding one) will not read back; a `Value` reads them.
fn via_value<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    serde_json::from_value(v).map_err(serde::de::Error::custom)
}

/// A finished job's result, read [`via_value`]. One this build cannot read as a report (a
/// hand edit, a field of another type, a non-finite rate written as `null`) still finishes
/// its job, as a failed report that says so and keeps what it can read of the outcome and
/// the nonces: skipped, the job would be resumed and run (and paid for) again.
fn finished_result<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<nonce_api::Report>, D::Error> {
    let v = Value::deserialize(d)?;
    match serde_json::from_value::<nonce_api::Report>(v.clone()) {
        Ok(r) => Ok(Box::new(r)),
        Err(e) => {
            tracing::warn!(error = %e, "a journaled result is not a report this daemon reads: kept as failed");
            fn or<T: serde::de::DeserializeOwned>(v: &Value, field: &str) -> Option<T> {
                serde_json::from_value(v[field].clone()).ok()
            }
            let found: Vec<u64> = or(&v, "found").unwrap_or_default();
            let error = format!("the journaled result could not be read ({e}); the job stays finished");
            Ok(Box::new(nonce_api::Report {
                outcome: or(&v, "outcome").unwrap_or(nonce_api::Outcome::Failed),
                nonce: or(&v, "nonce").or(found.first().copied()),
                hash: or(&v, "hash"),
                digest: None,
                leading_zeros: None,
                found,
                best: None,
                searched: or(&v, "searched").unwrap_or(0),
                elapsed_s: 0.0,
                rate: 0.0,
                workers: or(&v, "workers").unwrap_or(0),
                workers_started: None,
                job_id: or(&v, "job_id").unwrap_or_default(),
                mode: or(&v, "mode").unwrap_or_default(),
                stalls: 0,
                reshards: 0,
                interruptions: 0,
                steals: 0,
                ghosts: 0,
                rejected: 0,
                forged: 0,
                replayed: 0,
                verification: nonce_api::VerificationReport::default(),
                error: Some(error),
                transport: None,
            }))
        }
    }
}

/// vCPU-seconds of a usage line: read [`via_value`], and a finite count (a `1e400` line is
/// refused like any other bad line, not counted as an infinite spend).
fn vcpu_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v: f64 = via_value(d)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!("vcpu_seconds {v} is not a finite count")))
    }
}

/// One journal line. Fields with numbers inside are read [`via_value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Start {
        job: String,
        #[serde(deserialize_with = "via_value")]
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
        #[serde(deserialize_with = "finished_result")]
        result: Box<nonce_api::Report>,
        /// When, in Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    /// Ranges known searched and nonces found so far, for resuming after a crash.
    Progress {
        job: String,
        #[serde(deserialize_with = "via_value")]
        snapshot: Snapshot,
    },
    /// A finished job the daemon no longer keeps (it keeps the newest `keep_finished`): it
    /// replays to nothing, and compaction leaves it out. What it spent of its owner's UTC day
    /// still counts against their quota.
    Forget {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        day: u64,
        #[serde(deserialize_with = "vcpu_seconds")]
        vcpu_seconds: f64,
    },
    /// What compaction keeps of forgotten jobs: the vCPU-seconds an owner's forgotten jobs
    /// spent on a UTC day.
    Usage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        day: u64,
        #[serde(deserialize_with = "vcpu_seconds")]
        vcpu_seconds: f64,
    },
}

/// vCPU-seconds of forgotten jobs, by owner and UTC day (days since 1970).
pub type DayUsage = std::collections::BTreeMap<(Option<String>, u64), f64>;

/// Everything the journal replays to: the jobs it remembers, and what forgotten ones spent.
#[derive(Debug, Clone, Default, PartialEq)]
struct Contents {
    jobs: Vec<Remembered>,
    usage: DayUsage,
}

/// A job as the journal remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    pub job: JobId,
    pub request: SearchRequest,
    pub result: Option<nonce_api::Report>,
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
    open: Mutex<Open>,
    /// Where each append's latency goes (the daemon's metrics).
    latency: Option<prometheus_client::metrics::histogram::Histogram>,
    /// Appends between compactions ([`COMPACT_AFTER_APPENDS`]; fewer in tests).
    compact_after: usize,
    /// What forgotten jobs had spent when the journal was opened.
    usage_at_open: DayUsage,
    /// Syncs done (one a batch), for tests of the writer's batching.
    syncs: std::sync::atomic::AtomicU64,
}

/// The open journal file and what it holds, under one lock.
#[derive(Debug)]
struct Open {
    file: File,
    /// What the file replays to, kept so by every append: what compaction writes.
    contents: Contents,
    /// Lines in the file.
    lines: usize,
    /// Appends since the last compaction (or the open).
    appended: usize,
    /// The lines replay skipped, still in the file: compaction keeps them aside.
    rejected: Vec<Vec<u8>>,
}

/// Why the journal could not be used: the daemon cannot start (or a write is not durable).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or folder of the state directory could not be read or written.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done, naming the path.
        action: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The state directory is shared (sticky, like /tmp): refused, not repaired.
    #[error("state dir {0} is a shared directory (sticky, like /tmp): give nonced a directory of its own")]
    SharedDir(std::path::PathBuf),
    /// A record could not be encoded.
    #[error("cannot encode a journal record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An [`JournalError::Io`] for `action`.
fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> JournalError {
    let action = action.into();
    move |source| JournalError::Io { action, source }
}

/// Why replay skipped a line (it stays aside, in `journal.rejected`).
#[derive(Debug, thiserror::Error)]
enum Skipped {
    #[error("not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    #[error("not a journal record: {0}")]
    NotRecord(serde_json::Error),
    #[error("cut short: {0}")]
    CutShort(serde_json::Error),
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("job id {0:?}: not 16 hex digits")]
    BadJobId(String),
    #[error("job {0} has already finished")]
    AlreadyFinished(JobId),
    #[error("job {0} is still running: it cannot be forgotten")]
    StillRunning(JobId),
    #[error("job {0} was never started")]
    NeverStarted(JobId),
}

impl Journal {
    /// Opens (creating) `dir/journal.jsonl`, replays it, and compacts it if it holds more than
    /// twice the lines its jobs need. The directory is made 0700 and its files 0600, new or old.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Remembered>), JournalError> {
        private_dir(dir)?;
        for name in OTHER_STATE_FILES {
            make_private(&dir.join(name))?;
        }
        let path = dir.join(FILE);
        let replayed = replay(&path)?;
        let file = append_to(&path, replayed.torn)?;
        let (jobs, usage_at_open) = (replayed.contents.jobs.clone(), replayed.contents.usage.clone());
        let mut open = Open {
            file,
            contents: replayed.contents,
            lines: replayed.lines,
            appended: 0,
            rejected: replayed.rejected,
        };
        if open.lines > 2 * needed_lines(&open.contents) {
            open.compact(&path);
        }
        let journal = Journal {
            path,
            open: Mutex::new(open),
            latency: None,
            compact_after: COMPACT_AFTER_APPENDS,
            usage_at_open,
            syncs: Default::default(),
        };
        Ok((journal, jobs))
    }

    /// What the jobs forgotten before this open had spent, by owner and day.
    pub fn forgotten_usage(&self) -> &DayUsage {
        &self.usage_at_open
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and syncs one record; every [`COMPACT_AFTER_APPENDS`] appends, compacts.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends `records` in order and syncs once for all of them (the [`writer`] batches
    /// what arrived while the last sync ran); every [`COMPACT_AFTER_APPENDS`] appends,
    /// compacts. On an error none of them is known durable.
    ///
    /// [`writer`]: super::journal_writer
    pub fn append_all(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut lines = Vec::new();
        for record in records {
            lines.extend(serde_json::to_vec(record)?);
            lines.push(b'\n');
        }
        let started = std::time::Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Where this batch starts: a failed write is cut back to it, so the next batch does
        // not follow half a line (a torn batch would hide the record after it on replay).
        let before = open.file.stream_position();
        let written = open.file.write_all(&lines).and_then(|_| open.file.sync_data());
        if written.is_err() {
            if let Ok(at) = before {
                if let Err(e) = open.file.set_len(at) {
                    tracing::warn!(error = %e, "cannot cut a failed journal write back");
                }
            }
        }
        let written = written.map_err(io(format!("write journal {}", self.path.display())));
        if let Some(h) = &self.latency {
            h.observe(started.elapsed().as_secs_f64());
        }
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        written?;
        for record in records {
            open.lines += 1;
            open.appended += 1;
            if let Err(why) = apply(&mut open.contents, record.clone()) {
                tracing::debug!(why = %why, "journaled a record that changes no job");
            }
        }
        if open.appended >= self.compact_after {
            open.compact(&self.path);
        }
        Ok(())
    }

    /// Writes synced so far (each covers one batch of appends).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Observes every append's latency in `h`.
    pub fn observe_latency(&mut self, h: prometheus_client::metrics::histogram::Histogram) {
        self.latency = Some(h);
    }
}

impl Open {
    /// Compacts the journal at `path` (this file), if that shortens it. A failure is logged
    /// and the old file kept (it is still whole, and still appended to); the next try comes
    /// [`COMPACT_AFTER_APPENDS`] appends later.
    fn compact(&mut self, path: &Path) {
        self.appended = 0;
        let needed = needed_lines(&self.contents);
        if self.lines <= needed {
            return;
        }
        match compact(path, &self.contents, &self.rejected) {
            Ok(file) => {
                tracing::info!(journal = %path.display(), before = self.lines, after = needed, "journal compacted");
                self.file = file;
                self.lines = needed;
                self.rejected.clear();
            }
            Err(e) => tracing::warn!(error = %e, "could not compact the journal; appending to it as it is"),
        }
    }
}

/// Creates `dir` (and any missing parent) mode 0700, or makes an existing one 0700. A sticky
/// directory (like /tmp) is shared by design: refused rather than closed to everyone else.
fn private_dir(dir: &Path) -> Result<(), JournalError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .map_err(io(format!("create state dir {}", dir.display())))?;
    let mode =
        std::fs::metadata(dir).map_err(io(format!("read state dir {}", dir.display())))?.permissions().mode()
            & 0o7777;
    if mode & 0o1000 != 0 {
        return Err(JournalError::SharedDir(dir.to_path_buf()));
    }
    if mode != PRIVATE_DIR {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR))
            .map_err(io(format!("make state dir {} private (mode 0700)", dir.display())))?;
        tracing::info!(dir = %dir.display(), was = %format!("{mode:04o}"), "state dir made private (0700)");
    }
    Ok(())
}

/// Makes the file at `path`, if there is one, mode 0600: a umask narrows a new file's mode
/// but never sets it, and an older daemon left its files as the umask made them.
fn make_private(path: &Path) -> Result<(), JournalError> {
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    };
    if mode != PRIVATE_FILE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE))
            .map_err(io(format!("make {} private (mode 0600)", path.display())))?;
    }
    Ok(())
}

/// Opens the journal at `path` (creating it, 0600) to append to it. After a torn write, the
/// next record starts on a line of its own.
fn append_to(path: &Path, torn: bool) -> Result<File, JournalError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_FILE)
        .open(path)
        .map_err(io(format!("open journal {}", path.display())))?;
    make_private(path)?;
    if torn {
        file.write_all(b"\n").map_err(io(format!("write journal {}", path.display())))?;
    }
    Ok(file)
}

/// Lines a compacted journal holds: a start for each job, and a finish or progress; a usage
/// line for each owner and day that can still count.
fn needed_lines(c: &Contents) -> usize {
    let jobs: usize =
        c.jobs.iter().map(|j| 1 + usize::from(j.result.is_some() || j.progress.is_some())).sum();
    jobs + usage_records(&c.usage).len()
}

/// The usage lines compaction writes: today's and yesterday's (UTC; older days can no longer
/// count against a quota).
fn usage_records(usage: &DayUsage) -> Vec<Record> {
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        / 86_400;
    usage
        .iter()
        .filter(|((_, day), _)| *day + 1 >= today)
        .map(|((owner, day), &vcpu_seconds)| Record::Usage { owner: owner.clone(), day: *day, vcpu_seconds })
        .collect()
}

/// The records that replay to `job`: its start, then its finish or (still running) its last
/// progress.
fn records_of(job: &Remembered) -> Vec<Record> {
    let id = job.job.to_string();
    let mut records = vec![Record::Start {
        job: id.clone(),
        request: Box::new(job.request.clone()),
        owner: job.owner.clone(),
        at: job.started_at,
        secret: job.secret.clone(),
    }];
    match (&job.result, &job.progress) {
        (Some(result), _) => {
            records.push(Record::Finish { job: id, result: Box::new(result.clone()), at: job.finished_at })
        }
        (None, Some(snapshot)) => records.push(Record::Progress { job: id, snapshot: snapshot.clone() }),
        (None, None) => {}
    }
    records
}

/// Rewrites the journal at `path` as the records that replay to `jobs`, after keeping the
/// `rejected` lines still in it aside (in `journal.rejected`). Returns the new journal, open
/// for appending; on an error the old one is in place, whole.
fn compact(path: &Path, contents: &Contents, rejected: &[Vec<u8>]) -> Result<File, JournalError> {
    keep_rejected(&path.with_file_name(REJECTED), rejected)?;
    rewrite(path, contents)
}

/// Appends `lines` to the file at `path` (0600), synced, so compaction loses none of them.
fn keep_rejected(path: &Path, lines: &[Vec<u8>]) -> Result<(), JournalError> {
    if lines.is_empty() {
        return Ok(());
    }
    let action = format!("keep unreadable journal lines in {}", path.display());
    let failed = |e: std::io::Error| JournalError::Io { action: action.clone(), source: e };
    let file = OpenOptions::new().create(true).append(true).mode(PRIVATE_FILE).open(path).map_err(failed)?;
    make_private(path)?;
    let mut out = BufWriter::new(&file);
    for line in lines {
        out.write_all(line).and_then(|()| out.write_all(b"\n")).map_err(failed)?;
    }
    out.flush().map_err(failed)?;
    file.sync_data().map_err(failed)
}

/// Writes the records that replay to `jobs` to a private file beside `path`, syncs it,
/// renames it over `path` and syncs the directory: a crash at any point leaves the old
/// journal or the new one, each whole. Returns the new journal, open for appending.
fn rewrite(path: &Path, contents: &Contents) -> Result<File, JournalError> {
    let tmp = path.with_extension("jsonl.compacting");
    let written = write_records(&tmp, contents)
        .and_then(|file| std::fs::rename(&tmp, path).map(|()| file))
        .map_err(io(format!("compact journal {} (via {})", path.display(), tmp.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let file = written?;
    // The rename is durable once the directory is; if syncing it fails, a crash may bring the
    // old journal back, which replays to the same jobs.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the state dir after compacting");
    }
    Ok(file)
}

/// Writes the records of `contents` to a new file at `tmp` (0600; a leftover from a crash is
/// replaced), synced, and returns it open for appending.
fn write_records(tmp: &Path, contents: &Contents) -> std::io::Result<File> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = OpenOptions::new().create_new(true).append(true).mode(PRIVATE_FILE).open(tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))?;
    let mut out = BufWriter::new(&file);
    for record in usage_records(&contents.usage).into_iter().chain(contents.jobs.iter().flat_map(records_of))
    {
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    file.sync_all()?;
    Ok(file)
}

/// What replaying a journal file found.
#[derive(Debug, Default)]
struct Replayed {
    contents: Contents,
    /// Lines in the file, blank and unreadable ones included.
    lines: usize,
    /// The lines that were skipped, as they were (without their newline).
    rejected: Vec<Vec<u8>>,
    /// Whether the last line lacks its newline (a crash mid-write).
    torn: bool,
}

/// Replays the journal at `path` (none yet: no jobs). The file is read as bytes, one record a
/// line: a line that is not UTF-8, not JSON or not a record that applies (a torn write, a
/// disk's garbage) is skipped with a warning naming it, and every other line still counts,
/// so one bad line never hides the jobs after it nor stops the daemon. A read error is an
/// error: going on would forget the rest of the file.
fn replay(path: &Path) -> Result<Replayed, JournalError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(io(format!("read journal {}", path.display()))(e)),
    };
    let mut reader = BufReader::new(f);
    let mut replayed = Replayed::default();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io(format!("read journal {} at line {n}", path.display())))?;
        if read == 0 {
            break;
        }
        replayed.lines = n;
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        replayed.torn = body.len() == line.len();
        if body.trim_ascii().is_empty() {
            continue;
        }
        if let Err(why) = decode(body).and_then(|record| apply(&mut replayed.contents, record)) {
            tracing::warn!(journal = %path.display(), line = n, why = %why, "skipping a journal line");
            replayed.rejected.push(body.to_vec());
        }
    }
    Ok(replayed)
}

/// One line as a record, or why it is not one.
fn decode(line: &[u8]) -> Result<Record, Skipped> {
    let text = std::str::from_utf8(line)?;
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Skipped::NotRecord(e),
        serde_json::error::Category::Eof => Skipped::CutShort(e),
        _ => Skipped::NotJson(e),
    })
}

/// What `record` does to the jobs remembered so far, in journal order: a start (re)starts its
/// job at the end of the list, progress and a finish update theirs. A finished job's progress
/// is dropped: its result says everything, and it is never resumed. `Err` says why the record
/// changed nothing.
fn apply(contents: &mut Contents, record: Record) -> Result<(), Skipped> {
    let jobs = &mut contents.jobs;
    match record {
        Record::Start { job, request, owner, at, secret } => {
            let id = job_id(&job)?;
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
        Record::Progress { job, snapshot } => {
            let j = find(jobs, &job)?;
            if j.result.is_some() {
                return Err(Skipped::AlreadyFinished(j.job));
            }
            j.progress = Some(snapshot);
        }
        Record::Finish { job, result, at } => {
            let j = find(jobs, &job)?;
            j.result = Some(*result);
            j.finished_at = at;
            j.progress = None;
        }
        Record::Forget { job, owner, day, vcpu_seconds } => {
            let id = find(jobs, &job)?.job;
            if jobs.iter().any(|j| j.job == id && j.result.is_none()) {
                return Err(Skipped::StillRunning(id));
            }
            jobs.retain(|j| j.job != id);
            *contents.usage.entry((owner, day)).or_default() += vcpu_seconds.max(0.0);
        }
        Record::Usage { owner, day, vcpu_seconds } => {
            *contents.usage.entry((owner, day)).or_default() += vcpu_seconds.max(0.0);
        }
    }
    Ok(())
}

/// The remembered job `job` names.
fn find<'a>(jobs: &'a mut [Remembered], job: &str) -> Result<&'a mut Remembered, Skipped> {
    let id = job_id(job)?;
    jobs.iter_mut().find(|j| j.job == id).ok_or(Skipped::NeverStarted(id))
}

fn job_id(text: &str) -> Result<JobId, Skipped> {
    text.parse().map_err(|_| Skipped::BadJobId(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report that ended as `outcome` after `elapsed_s` seconds, 2^64 nonces searched (the
    /// exact big integer the journal must keep).
    pub(crate) fn report(outcome: nonce_api::Outcome, elapsed_s: f64) -> nonce_api::Report {
        nonce_api::Report {
            outcome,
            nonce: Some(30_074_393),
            hash: None,
            digest: None,
            leading_zeros: None,
            found: vec![30_074_393],
            best: None,
            searched: 1 << 64,
            elapsed_s,
            rate: 1.5,
            workers: 2,
            workers_started: Some(2),
            job_id: "0000000000000001".into(),
            mode: "first".into(),
            stalls: 1,
            reshards: 2,
            interruptions: 0,
            steals: 3,
            ghosts: 0,
            rejected: 0,
            forged: 0,
            replayed: 0,
            verification: nonce_api::VerificationReport {
                share_bits: 20,
                shares_verified: 4,
                shares_expected: 4.5,
                spot_checks: 0,
                spot_checked_nonces: 0,
                spot_check_mismatches: 0,
                spot_checks_pending: 0,
                suspects: vec![],
                caught_if_skipped: vec![],
                false_alarm_per_job: 1e-9,
                bound: None,
            },
            error: None,
            transport: None,
        }
    }

    /// Every kind of line reads back as written, floats inside included (the API's exact big
    /// integers made serde_json buffer numbers in a way tagged enums' floats did not survive).
    #[test]
    fn every_record_kind_reads_back_with_its_floats() {
        let request = SearchRequest {
            block: Some("x".into()),
            difficulty: Some(3),
            confidence: Some(0.9),
            spot_check: Some(0.25),
            ..Default::default()
        };
        let records = [
            Record::Start {
                job: JobId(1).to_string(),
                request: Box::new(request),
                owner: None,
                at: Some(9),
                secret: None,
            },
            Record::Finish {
                job: JobId(1).to_string(),
                result: Box::new(report(nonce_api::Outcome::Found, 1.5)),
                at: Some(10),
            },
            Record::Progress { job: JobId(1).to_string(), snapshot: Snapshot::default() },
            Record::Forget {
                job: JobId(1).to_string(),
                owner: Some("bob".into()),
                day: 20_000,
                vcpu_seconds: 2.5,
            },
            Record::Usage { owner: None, day: 20_000, vcpu_seconds: 0.125 },
        ];
        for bad in [
            r#"{"type":"forget","job":"0000000000000001","day":1,"vcpu_seconds":1e400}"#,
            r#"{"type":"usage","day":1,"vcpu_seconds":-1}"#,
        ] {
            assert!(serde_json::from_str::<Record>(bad).is_err(), "{bad}");
        }
        for r in records {
            let line = serde_json::to_string(&r).expect("encodes");
            let back: Record = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(back, r);
        }
    }

    /// A fresh journal in its own directory, behind a writer.
    fn writer_in(name: &str) -> (PathBuf, super::super::journal_writer::JournalWriter) {
        let dir = test_dir(name);
        let (j, _) = Journal::open(&dir).expect("opens");
        (dir, super::super::journal_writer::JournalWriter::start(j).expect("starts"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_writer_batches_what_queued_during_a_sync_and_keeps_the_order() {
        let (dir, writer) = writer_in("writer");
        // A slow disk: the file is held while 50 records queue up behind the first.
        let held = writer.journal().open.lock().expect("lock");
        writer.submit(start(1, "alice"));
        for id in 2..=51 {
            writer.submit(start(id, "alice"));
        }
        drop(held);
        writer.append(start(52, "alice")).await.expect("durable");
        // The first alone, the 50 queued behind it at once, the last alone or with them.
        assert!(writer.journal().syncs() <= 3, "{} syncs for 52 records", writer.journal().syncs());
        // Durable once answered, in the order given: a second open replays all of them.
        let (_, jobs) = Journal::open(&dir).expect("reopens");
        let ids: Vec<u64> = jobs.iter().map(|r| r.job.0).collect();
        assert_eq!(ids, (1..=52).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A stalled disk: records that need not wait are dropped past the queue's bound instead
    /// of growing memory without end, and `flush` (the daemon's last step) returns only once
    /// what was queued is on disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_disk_bounds_the_queue_and_flush_waits_for_it() {
        let (dir, writer) = writer_in("stall");
        let submitted = 20_000u64;
        {
            let _held = writer.journal().open.lock().expect("lock");
            for id in 1..=submitted {
                writer.submit(start(id, "alice"));
            }
        }
        writer.flush().await;
        let kept = writer.journal().open.lock().expect("lock").contents.jobs.len() as u64;
        assert!(kept > 0, "the records queued before the stall are written");
        assert!(kept <= 4096 + 256 + 1, "{kept} of {submitted} records were held in memory");
        // What was written is durable once flush returns: a second open replays exactly it.
        let (_, jobs) = Journal::open(&dir).expect("reopens");
        assert_eq!(jobs.len() as u64, kept);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A result journaled before the report had its verification counters (daemons of
    /// 2026-11-24 to 2026-12-01) still marks its job finished: skipped, the job would run again.
    #[test]
    fn a_result_from_before_the_verification_counters_still_finishes_its_job() {
        let dir = std::env::temp_dir().join(format!("nonced-journal-old-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (j, _) = Journal::open(&dir).expect("opens");
        let req = SearchRequest { block: Some("x".into()), difficulty: Some(3), ..Default::default() };
        j.append(&Record::Start {
            job: JobId(1).to_string(),
            request: Box::new(req),
            owner: None,
            at: None,
            secret: None,
        })
        .expect("write");
        drop(j);
        let mut line = serde_json::to_value(Record::Finish {
            job: JobId(1).to_string(),
            result: Box::new(report(nonce_api::Outcome::Found, 1.0)),
            at: None,
        })
        .expect("a record serializes");
        let result = line["result"].as_object_mut().expect("an object");
        for old_absent in ["forged", "replayed", "verification"] {
            assert!(result.remove(old_absent).is_some(), "{old_absent} is in today's report");
        }
        let mut f = OpenOptions::new().append(true).open(dir.join("journal.jsonl")).expect("open");
        writeln!(f, "{line}").expect("write");
        let (_, jobs) = Journal::open(&dir).expect("reopens");
        let result = jobs[0].result.as_ref().expect("the job is finished, not resumed");
        assert_eq!((result.outcome, result.nonce), (nonce_api::Outcome::Found, Some(30_074_393)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A result that is JSON but no report this build reads (a non-finite rate written as
    /// `null`, a hand edit) still finishes its job, with what could be read of it.
    #[test]
    fn an_unreadable_result_still_finishes_its_job_and_says_so() {
        let dir = std::env::temp_dir().join(format!("nonced-journal-bad-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (j, _) = Journal::open(&dir).expect("opens");
        let req = SearchRequest { block: Some("x".into()), difficulty: Some(3), ..Default::default() };
        j.append(&Record::Start {
            job: JobId(1).to_string(),
            request: Box::new(req),
            owner: None,
            at: None,
            secret: None,
        })
        .expect("write");
        drop(j);
        let mut line = serde_json::to_value(Record::Finish {
            job: JobId(1).to_string(),
            result: Box::new(report(nonce_api::Outcome::Found, 1.0)),
            at: None,
        })
        .expect("a record serializes");
        line["result"]["rate"] = Value::Null;
        line["result"]["searched"] = serde_json::json!(-1);
        let mut f = OpenOptions::new().append(true).open(dir.join("journal.jsonl")).expect("open");
        writeln!(f, "{line}").expect("write");
        let (_, jobs) = Journal::open(&dir).expect("reopens");
        let result = jobs[0].result.as_ref().expect("the job is finished, not resumed");
        assert_eq!((result.outcome, result.nonce), (nonce_api::Outcome::Found, Some(30_074_393)));
        assert!(result.error.as_deref().is_some_and(|e| e.contains("could not be read")), "{result:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
            result: Box::new(report(nonce_api::Outcome::Found, 1.0)),
            at: None,
        })
        .expect("write");
        drop(j);
        let mut f = OpenOptions::new().append(true).open(dir.join("journal.jsonl")).expect("open");
        f.write_all(b"{\"type\":\"fin").expect("torn write");
        let (j, jobs) = Journal::open(&dir).expect("reopens");
        assert_eq!(jobs.len(), 2);
        j.append(&Record::Finish {
            job: JobId(2).to_string(),
            result: Box::new(report(nonce_api::Outcome::Exhausted, 1.0)),
            at: Some(9),
        })
        .expect("write");
        drop(j);
        let (j, after) = Journal::open(&dir).expect("reopens");
        assert!(after[1].result.is_some(), "a record after a torn line is read");
        // Progress up to the very end of a 64-bit space survives the round trip; a finished
        // job's progress is dropped (it is never resumed).
        let snapshot =
            Snapshot { done: vec![protocol::NonceRange::new(5, 1u128 << 64)], found: vec![u64::MAX] };
        j.append(&Record::Start {
            job: JobId(3).to_string(),
            request: Box::new(req.clone()),
            owner: None,
            at: None,
            secret: None,
        })
        .expect("write");
        for id in [1, 3] {
            j.append(&Record::Progress { job: JobId(id).to_string(), snapshot: snapshot.clone() })
                .expect("write");
        }
        drop(j);
        let (_, again) = Journal::open(&dir).expect("reopens");
        assert_eq!(again[2].progress.as_ref(), Some(&snapshot));
        assert_eq!(again[0].progress, None, "job 1 had finished");
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

    /// A fresh, empty directory for one test.
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nonced-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        dir
    }

    fn start(id: u64, owner: &str) -> Record {
        let request =
            SearchRequest { block: Some("Grüße".into()), difficulty: Some(3), ..Default::default() };
        Record::Start {
            job: JobId(id).to_string(),
            request: Box::new(request),
            owner: Some(owner.into()),
            at: Some(id),
            secret: Some(format!("{id:064x}")),
        }
    }

    fn snapshot(end: u128) -> Snapshot {
        Snapshot { done: vec![protocol::NonceRange::new(0, end)], found: vec![] }
    }

    fn progress(id: u64, end: u128) -> Record {
        Record::Progress { job: JobId(id).to_string(), snapshot: snapshot(end) }
    }

    fn finish(id: u64) -> Record {
        Record::Finish {
            job: JobId(id).to_string(),
            result: Box::new(report(nonce_api::Outcome::Found, 1.0)),
            at: Some(99),
        }
    }

    fn line(record: &Record) -> Vec<u8> {
        serde_json::to_vec(record).expect("serializes")
    }

    /// Writes `lines` to `dir`'s journal, each ended by a newline.
    fn write_lines(dir: &Path, lines: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        std::fs::write(dir.join("journal.jsonl"), bytes).expect("write journal");
    }

    /// Job 1 finished (kept with its result, never resumed), job 2 running with progress.
    fn assert_one_finished_one_running(jobs: &[Remembered]) {
        let ids: Vec<JobId> = jobs.iter().map(|j| j.job).collect();
        assert_eq!(ids, vec![JobId(1), JobId(2)]);
        assert_eq!(jobs[0].result, Some(report(nonce_api::Outcome::Found, 1.0)), "job 1 keeps its result");
        assert_eq!(jobs[0].finished_at, Some(99));
        assert_eq!(jobs[1].result, None, "job 2 is resumed");
        assert_eq!(jobs[1].owner.as_deref(), Some("bob"));
        assert_eq!(jobs[1].progress.as_ref().map(|p| p.done[0].end), Some(500));
    }

    /// The permission bits of `path` in octal (setuid, setgid and sticky included).
    fn mode(path: &Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        format!("{:04o}", std::fs::metadata(path).expect("exists").permissions().mode() & 0o7777)
    }

    #[test]
    fn a_forgotten_job_replays_to_nothing_but_its_spend_and_compaction_drops_it() {
        let dir = test_dir("forget");
        let today = unix_now_days();
        let forget = |id: u64, v: f64| Record::Forget {
            job: JobId(id).to_string(),
            owner: Some("bob".into()),
            day: today,
            vcpu_seconds: v,
        };
        let (j, _) = Journal::open(&dir).expect("opens");
        for r in [start(1, "bob"), finish(1), start(2, "bob"), finish(2), start(3, "bob")] {
            j.append(&r).expect("write");
        }
        j.append(&forget(1, 2.5)).expect("write");
        j.append(&forget(2, 1.0)).expect("write");
        // A running job cannot be forgotten: the record changes nothing.
        j.append(&forget(3, 9.0)).expect("write");
        drop(j);
        let (j, jobs) = Journal::open(&dir).expect("reopens");
        assert_eq!(jobs.iter().map(|r| r.job).collect::<Vec<_>>(), vec![JobId(3)], "only the running job");
        assert_eq!(j.forgotten_usage().get(&(Some("bob".into()), today)), Some(&3.5));
        // Compacted (reopen compacts a journal twice as long as it needs): the forgotten
        // jobs' lines are gone, their spend kept in one line.
        let text = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal");
        assert_eq!(text.lines().count(), 2, "a usage line and job 3's start:\n{text}");
        drop(j);
        let (j, jobs) = Journal::open(&dir).expect("reopens again");
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            j.forgotten_usage().get(&(Some("bob".into()), today)),
            Some(&3.5),
            "kept across compaction"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn unix_now_days() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400
    }

    #[test]
    fn a_new_state_dir_and_its_files_are_private_whatever_the_umask() {
        // The umask cannot be changed in a threaded test; under the usual 022 a plain create
        // gives 0755 and 0644, so exact modes show they were set, not inherited.
        let parent = test_dir("private-new");
        let dir = parent.join("state");
        let (j, _) = Journal::open(&dir).expect("opens");
        j.append(&start(1, "alice")).expect("write");
        assert_eq!(mode(&dir), "0700", "state dir");
        assert_eq!(mode(&dir.join("journal.jsonl")), "0600", "journal");
        let _ = std::fs::remove_dir_all(&parent);
    }

    #[test]
    fn open_makes_an_existing_state_dir_and_its_files_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = test_dir("private-old");
        write_lines(&dir, &[line(&start(1, "alice"))]);
        let startups = dir.join(coordinator::request::startup::FILE);
        std::fs::write(&startups, "{}").expect("write startups");
        for (path, m) in [(&dir, 0o755), (&dir.join("journal.jsonl"), 0o644), (&startups, 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        let (_, jobs) = Journal::open(&dir).expect("opens");
        assert_eq!(jobs.len(), 1, "the journal is still read");
        assert_eq!(mode(&dir), "0700", "state dir");
        assert_eq!(mode(&dir.join("journal.jsonl")), "0600", "journal");
        assert_eq!(mode(&startups), "0600", "start-up history");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn lines_in(path: &Path) -> usize {
        std::fs::read(path).expect("read").split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()
    }

    /// What the journal should remember of a job written with [`start`], [`progress`] and
    /// [`finish`].
    fn remembered(id: u64, progress: Option<u128>, finished: bool) -> Remembered {
        let Record::Start { request, owner, at, secret, .. } = start(id, "alice") else { unreachable!() };
        Remembered {
            job: JobId(id),
            request: *request,
            result: finished.then(|| report(nonce_api::Outcome::Found, 1.0)),
            progress: progress.map(snapshot),
            owner,
            started_at: at,
            finished_at: finished.then_some(99),
            secret,
        }
    }

    #[test]
    fn open_compacts_to_the_records_needed_and_replays_the_same_jobs() {
        let dir = test_dir("compact-open");
        let mut lines: Vec<Vec<u8>> = (1..=4).map(|id| line(&start(id, "alice"))).collect();
        for end in 1..=300 {
            lines.extend((1..=3).map(|id| line(&progress(id, end))));
        }
        lines.push(line(&finish(2)));
        lines.push(b"\xffgarbage".to_vec());
        lines.extend([line(&progress(1, 1000)), line(&progress(3, 2000)), line(&finish(3))]);
        write_lines(&dir, &lines);
        let (j, jobs) = Journal::open(&dir).expect("opens");
        let path = dir.join("journal.jsonl");
        assert_eq!(lines_in(&path), 7, "start and progress of 1, start and finish of 2 and 3, start of 4");
        // Job 1 resumes from its last progress, 2 and 3 keep their results, 4 starts afresh.
        let mut expected = vec![
            remembered(1, Some(1000), false),
            remembered(2, None, true),
            remembered(3, None, true),
            remembered(4, None, false),
        ];
        assert_eq!(jobs, expected);
        assert_eq!(mode(&path), "0600", "the compacted journal is private too");
        let rejected = std::fs::read(dir.join("journal.rejected")).expect("unreadable lines are kept aside");
        assert_eq!(rejected, b"\xffgarbage\n");
        j.append(&progress(4, 7)).expect("appends after compaction");
        drop(j);
        let (_, again) = Journal::open(&dir).expect("reopens");
        expected[3] = remembered(4, Some(7), false);
        assert_eq!(again, expected, "the compacted journal replays to the same jobs, appends included");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_running_journal_compacts_every_so_many_appends() {
        let dir = test_dir("compact-running");
        // Two lines, one needed: too few to compact at open.
        write_lines(&dir, &[line(&start(1, "alice")), b"\xffjunk".to_vec()]);
        let (mut j, _) = Journal::open(&dir).expect("opens");
        j.compact_after = 100;
        j.append(&start(2, "alice")).expect("write");
        for end in 1..=75 {
            for id in [1, 2] {
                j.append(&progress(id, end)).expect("write");
            }
        }
        j.append(&finish(2)).expect("write");
        // 152 appends: the 100th left two starts and two progress lines, then 52 more came.
        let path = dir.join("journal.jsonl");
        assert_eq!(lines_in(&path), 4 + 52);
        assert_eq!(mode(&path), "0600");
        let rejected = std::fs::read(dir.join("journal.rejected")).expect("unreadable lines are kept aside");
        assert_eq!(rejected, b"\xffjunk\n");
        drop(j);
        let (_, jobs) = Journal::open(&dir).expect("reopens");
        assert_eq!(jobs, vec![remembered(1, Some(75), false), remembered(2, None, true)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn invalid_utf8_in_the_middle_hides_no_later_record() {
        let dir = test_dir("utf8");
        let garbage = b"{\"type\":\"finish\",\"job\":\"\xff\xfe\x80\"}".to_vec();
        write_lines(
            &dir,
            &[
                line(&start(1, "alice")),
                line(&start(2, "bob")),
                garbage,
                line(&finish(1)),
                line(&progress(2, 500)),
            ],
        );
        let (_, jobs) = Journal::open(&dir).expect("opens");
        assert_one_finished_one_running(&jobs);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_cut_in_the_middle_hides_no_later_record() {
        let dir = test_dir("cut");
        // A crash tore job 2's start mid-character ("ü" is two bytes), then a later daemon went on.
        let whole = line(&start(2, "bob"));
        let u = whole.windows(2).position(|w| w == "ü".as_bytes()).expect("has ü");
        let cut = whole[..u + 1].to_vec();
        write_lines(
            &dir,
            &[
                line(&start(1, "alice")),
                cut,
                line(&start(2, "bob")),
                line(&finish(1)),
                line(&progress(2, 500)),
            ],
        );
        let (_, jobs) = Journal::open(&dir).expect("opens");
        assert_one_finished_one_running(&jobs);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_between_records_hides_no_later_record() {
        let dir = test_dir("garbage");
        let garbage: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 0],
            vec![0xde, 0xad, 0xbe, 0xef],
            b"[1,2,3]".to_vec(),
            br#"{"type":"rename","job":"0000000000000001"}"#.to_vec(),
            br#"{"type":"start","job":"not a job id","request":{}}"#.to_vec(),
            line(&progress(7, 1)),
            Vec::new(),
            b"   ".to_vec(),
        ];
        let mut lines = vec![line(&start(1, "alice"))];
        lines.extend(garbage.iter().cloned());
        lines.push(line(&start(2, "bob")));
        lines.extend(garbage.iter().cloned());
        lines.push(line(&finish(1)));
        lines.push(line(&progress(2, 500)));
        write_lines(&dir, &lines);
        let (_, jobs) = Journal::open(&dir).expect("opens");
        assert_one_finished_one_running(&jobs);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
