//! What an operator's Prometheus scrapes (`/metrics`, text exposition format) and what
//! CloudWatch receives as Embedded Metric Format log lines (no PutMetricData calls, no IAM):
//! jobs by state, nonces searched, hash rates per job and per worker, workers by health,
//! supervision counters, AWS requests by operation, RPC requests and errors by method, and
//! journal write latency.
//!
//! Two kinds of value: those recorded as they happen ([`Metrics`]: RPC calls, journal
//! writes) and those read from the daemon's state at scrape time ([`Reading`], gathered by
//! the methods): nothing about a job is counted twice. Label sets stay bounded: a method
//! label takes only the method table's names, per-job and per-worker series exist only while
//! the job runs (bounded by the quotas), and no nonce or token is ever a label.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// A series' labels, built per scrape (so a series exists only while what it describes does).
type Labels = Vec<(String, String)>;
/// Hash rates are fractional nonces per second.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Values recorded as they happen, because no state holds them afterwards: RPC calls (the
/// method table counts each) and journal write latencies (the journal observes each).
#[derive(Debug)]
pub struct Metrics {
    rpc_requests: Family<Labels, Counter>,
    rpc_errors: Family<Labels, Counter>,
    journal_write: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            rpc_requests: Family::default(),
            rpc_errors: Family::default(),
            // 50 us .. ~1.6 s: an fsync on local disk to a slow EFS write.
            journal_write: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        }
    }
}

impl Metrics {
    /// One JSON-RPC call to `method` (the caller passes a name of its method table, or
    /// "other": the label set stays bounded), and its error code if it failed.
    pub fn rpc(&self, method: &str, error: Option<i64>) {
        self.rpc_requests.get_or_create(&vec![("method".into(), method.into())]).inc();
        if let Some(code) = error {
            self.rpc_errors
                .get_or_create(&vec![("method".into(), method.into()), ("code".into(), code.to_string())])
                .inc();
        }
    }

    /// The journal's write latency, observed by the journal itself.
    pub fn journal_write(&self) -> Histogram {
        self.journal_write.clone()
    }
}

/// One running job as a scrape sees it: the source of the per-job and per-worker series,
/// which therefore vanish with the job.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub job: String,
    pub rate: f64,
    /// (worker, health, rate)
    pub workers: Vec<(String, &'static str, f64)>,
}

/// The daemon's state at one moment, as the metrics need it: read from the jobs table and the
/// supervisors at scrape time (and each EMF line), so nothing about a job is counted twice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Jobs by state: running, or the outcome of finished ones.
    pub jobs: BTreeMap<String, u64>,
    pub running: Vec<RunningJob>,
    /// Sums over every job known (finished and running).
    pub searched: f64,
    pub stalls: u64,
    pub reshards: u64,
    pub interruptions: u64,
    pub steals: u64,
    /// The jobs' own ghosts, plus (aws) the events router's since the daemon started.
    pub ghosts: u64,
    pub rejected: u64,
    /// The aws transport's, since the daemon started.
    pub undecodable: u64,
    pub events: u64,
    pub aws_requests: BTreeMap<String, u64>,
}

impl Reading {
    /// Adds one finished job's result (its outcome, nonces and supervision counters).
    pub fn add_finished(&mut self, result: &nonce_api::Report) {
        *self.jobs.entry(result.outcome.name().to_string()).or_default() += 1;
        self.searched += result.searched as f64;
        self.stalls += result.stalls;
        self.reshards += result.reshards;
        self.interruptions += result.interruptions;
        self.steals += result.steals;
        self.ghosts += result.ghosts;
        self.rejected += result.rejected;
    }
}

fn counter(n: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(n);
    c
}

/// The text exposition of everything.
pub fn render(metrics: &Metrics, r: &Reading) -> String {
    let mut reg = Registry::with_prefix("nonce");
    let jobs = Family::<Labels, Gauge>::default();
    for state in ["running", "found", "exhausted", "timed_out", "cancelled", "failed"] {
        jobs.get_or_create(&vec![("state".into(), state.into())])
            .set(*r.jobs.get(state).unwrap_or(&0) as i64);
    }
    reg.register("jobs", "Jobs the daemon knows, by state (running, or a finished job's outcome)", jobs);
    let searched = Counter::<f64, AtomicU64>::default();
    searched.inc_by(r.searched);
    reg.register("nonces_searched", "Nonces searched by every job the daemon knows", searched);
    let job_rate = Family::<Labels, FloatGauge>::default();
    let worker_rate = Family::<Labels, FloatGauge>::default();
    let workers = Family::<Labels, Gauge>::default();
    for h in ["live", "stalled", "gone"] {
        workers.get_or_create(&vec![("health".into(), h.into())]).set(0);
    }
    for j in &r.running {
        // `job_id`, not `job`: the scraper owns `job` (and `instance`), and would rename ours.
        job_rate.get_or_create(&vec![("job_id".into(), j.job.clone())]).set(j.rate);
        for (w, health, rate) in &j.workers {
            worker_rate
                .get_or_create(&vec![("job_id".into(), j.job.clone()), ("worker_id".into(), w.clone())])
                .set(*rate);
            workers.get_or_create(&vec![("health".into(), (*health).into())]).inc();
        }
    }
    reg.register("job_hash_rate", "Nonces per second of each running job", job_rate);
    reg.register("worker_hash_rate", "Nonces per second of each worker of a running job", worker_rate);
    reg.register("workers", "Workers of running jobs, by health", workers);
    reg.register("stalls", "Workers found silent past their stall timeout", counter(r.stalls));
    reg.register("reshards", "Ranges of stalled or dead workers given to others", counter(r.reshards));
    reg.register(
        "interruptions",
        "Workers their platform stopped mid-work (Fargate Spot interruptions), progress kept",
        counter(r.interruptions),
    );
    reg.register("steals", "Ranges taken from busy workers for idle ones", counter(r.steals));
    reg.register(
        "ghost_events",
        "Events of jobs that were not running (earlier jobs, other daemons), dropped by the events router or by the job",
        counter(r.ghosts),
    );
    reg.register("rejected_results", "Results that failed verification", counter(r.rejected));
    reg.register(
        "undecodable_events",
        "Event bodies that did not decode (moved to the dead-letter queue)",
        counter(r.undecodable),
    );
    reg.register("routed_events", "Worker events routed from the events queue", counter(r.events));
    let aws = Family::<Labels, Counter>::default();
    for (op, n) in &r.aws_requests {
        let (service, operation) = op.split_once('.').unwrap_or(("aws", op.as_str()));
        aws.get_or_create(&vec![("service".into(), service.into()), ("operation".into(), operation.into())])
            .inc_by(*n);
    }
    reg.register("aws_requests", "AWS API requests this daemon made, by service and operation", aws);
    reg.register(
        "rpc_requests",
        "JSON-RPC calls, by method (socket and network alike)",
        metrics.rpc_requests.clone(),
    );
    reg.register(
        "rpc_errors",
        "JSON-RPC calls that failed, by method and error code",
        metrics.rpc_errors.clone(),
    );
    reg.register_with_unit(
        "journal_write",
        "Time to append and sync one journal record",
        Unit::Seconds,
        metrics.journal_write.clone(),
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// The exposition formats a scraper may ask for (its `Accept` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`): what Prometheus asks for first.
    OpenMetrics,
    /// The classic text format 0.0.4 (`text/plain; version=0.0.4`): for every other client.
    Text,
}

impl Format {
    /// From an `Accept` header: OpenMetrics only when it is asked for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The classic text format of an OpenMetrics exposition: a counter family's HELP and TYPE
/// name its `_total` sample (else `promtool check metrics` finds counters without help), and
/// OpenMetrics' `# UNIT` and `# EOF` lines go.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// One Embedded Metric Format document (a log line) for CloudWatch: gauges as they are now,
/// counters as their growth since `before` (CloudWatch sums them per period).
pub fn emf(now: &Reading, before: &Reading, timestamp_ms: u64, prefix: &str) -> Value {
    let live = now.running.iter().flat_map(|j| &j.workers).filter(|w| w.1 == "live").count();
    let stalled = now.running.iter().flat_map(|j| &j.workers).filter(|w| w.1 == "stalled").count();
    let grew = |a: u64, b: u64| a.saturating_sub(b) as f64;
    let failed = grew(*now.jobs.get("failed").unwrap_or(&0), *before.jobs.get("failed").unwrap_or(&0));
    let metrics: [(&str, &str, f64); 10] = [
        ("JobsRunning", "Count", *now.jobs.get("running").unwrap_or(&0) as f64),
        ("JobsFailed", "Count", failed),
        ("WorkersLive", "Count", live as f64),
        ("WorkersStalled", "Count", stalled as f64),
        ("HashRate", "Count/Second", now.running.iter().map(|j| j.rate).sum()),
        ("NoncesSearched", "Count", (now.searched - before.searched).max(0.0)),
        ("Stalls", "Count", grew(now.stalls, before.stalls)),
        ("Reshards", "Count", grew(now.reshards, before.reshards)),
        ("GhostEvents", "Count", grew(now.ghosts, before.ghosts)),
        ("UndecodableEvents", "Count", grew(now.undecodable, before.undecodable)),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "nonce-cloud",
                "Dimensions": [["Prefix"]],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect::<Vec<_>>(),
            }],
        },
        "Prefix": prefix,
    });
    for (name, _, value) in metrics {
        doc[name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        Reading {
            jobs: [("running".to_string(), 1), ("found".to_string(), 2)].into_iter().collect(),
            running: vec![RunningJob {
                job: "00000000000000aa".into(),
                rate: 3.0e7,
                workers: vec![("w1".into(), "live", 2.0e7), ("w2".into(), "stalled", 1.0e7)],
            }],
            searched: 1.0e9,
            stalls: 1,
            reshards: 1,
            aws_requests: [("SQS.ReceiveMessage".to_string(), 7)].into_iter().collect(),
            ..Reading::default()
        }
    }

    #[test]
    fn the_exposition_names_follow_prometheus_conventions() {
        let m = Metrics::default();
        m.rpc("search.start", None);
        m.rpc("other", Some(-32601));
        m.journal_write().observe(0.001);
        let text = render(&m, &reading());
        for line in [
            "nonce_jobs{state=\"running\"} 1",
            "nonce_jobs{state=\"found\"} 2",
            "nonce_nonces_searched_total 1000000000",
            "nonce_workers{health=\"stalled\"} 1",
            "nonce_stalls_total 1",
            "nonce_aws_requests_total{service=\"SQS\",operation=\"ReceiveMessage\"} 7",
            "nonce_rpc_requests_total{method=\"search.start\"} 1",
            "nonce_rpc_errors_total{method=\"other\",code=\"-32601\"} 1",
            "nonce_journal_write_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line || l.starts_with(&format!("{line}."))),
                "missing {line}:\n{text}"
            );
        }
        assert!(text.contains("# UNIT nonce_journal_write_seconds seconds"), "{text}");
    }

    #[test]
    fn emf_counts_growth_and_names_every_metric_it_carries() {
        let before = Reading { searched: 4.0e8, ..Reading::default() };
        let doc = emf(&reading(), &before, 1_700_000_000_000, "nonce-cloud");
        assert_eq!(doc["NoncesSearched"], json!(6.0e8));
        assert_eq!(doc["WorkersStalled"], json!(1.0));
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().expect("metrics") {
            let name = m["Name"].as_str().expect("name");
            assert!(doc[name].is_number(), "{name} has no value");
        }
    }
}
