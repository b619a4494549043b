//! The result of a search as the user sees it: one JSON object (`--json`) or a short text.

use nonce_api::{Best, CatchChance, Outcome, Progress, Report, Suspect, VerificationReport};
use nonce_core::job::{OutcomeKind, Status, Verification};
use protocol::{verify, JobId, Mode, Puzzle};

/// Everything a search report states.
#[derive(Debug, Clone)]
pub struct SearchReport<'a> {
    /// The job.
    pub job: JobId,
    /// What it searched.
    pub puzzle: &'a Puzzle,
    /// Its mode.
    pub mode: Mode,
    /// Workers it asked for.
    pub workers: usize,
    /// How it ended.
    pub outcome: &'a nonce_core::job::Outcome,
}

impl SearchReport<'_> {
    /// The report as the API's type.
    pub fn report(&self) -> Report {
        let o = self.outcome;
        let elapsed = o.elapsed.as_secs_f64();
        let v = o.nonce.map(|n| verify(self.puzzle, n));
        let best = o.best.map(|b| {
            let bv = verify(self.puzzle, b.nonce);
            Best { nonce: b.nonce, hash: hex::encode(bv.hash), leading_zeros: bv.leading_zeros }
        });
        Report {
            outcome: outcome_of(&o.kind),
            nonce: o.nonce,
            hash: v.map(|v| hex::encode(v.hash)),
            digest: v.map(|v| hex::encode(v.digest)),
            leading_zeros: v.map(|v| v.leading_zeros),
            found: o.found.clone(),
            best,
            searched: o.stats.searched,
            elapsed_s: round3(elapsed),
            // This life's nonces over this life's time: a resumed job's earlier work is not
            // this run's speed.
            rate: if elapsed > 0.0 {
                (o.stats.searched.saturating_sub(o.stats.resumed) as f64 / elapsed).round()
            } else {
                0.0
            },
            workers: self.workers,
            workers_started: Some(o.stats.workers_seen),
            job_id: self.job.to_string(),
            mode: self.mode.name().to_string(),
            stalls: o.stats.stalls,
            reshards: o.stats.reshards,
            interruptions: o.stats.interruptions,
            steals: o.stats.steals,
            ghosts: o.stats.ghosts,
            rejected: o.stats.rejected,
            forged: o.stats.forged,
            replayed: o.stats.replayed,
            verification: verification_report(&o.verification),
            error: match &o.kind {
                OutcomeKind::Failed(why) => Some(why.clone()),
                _ => None,
            },
            transport: None,
        }
    }
}

fn outcome_of(kind: &OutcomeKind) -> Outcome {
    match kind {
        OutcomeKind::Found => Outcome::Found,
        OutcomeKind::Exhausted => Outcome::Exhausted,
        OutcomeKind::TimedOut => Outcome::TimedOut,
        OutcomeKind::Cancelled => Outcome::Cancelled,
        OutcomeKind::Failed(_) => Outcome::Failed,
    }
}

/// The text report.
pub fn report_text(r: &Report) -> String {
    let mut s = String::new();
    match (r.outcome, r.nonce) {
        (Outcome::Failed, _) => {
            s += &format!("search failed: {}\n", r.error.as_deref().unwrap_or("unknown error"))
        }
        (kind, Some(n)) => {
            s += &format!("{}: golden nonce {n} ({n:#x})\n", kind.name());
            s += &format!("  hash           {}\n", r.hash.as_deref().unwrap_or(""));
            if let Some(z) = r.leading_zeros {
                s += &format!("  leading zeros  {z}\n");
            }
            if r.found.len() > 1 {
                s += &format!("  golden nonces  {} found (lowest {n})\n", r.found.len());
            }
        }
        (Outcome::Exhausted, None) => s += "exhausted: no golden nonce exists in this range\n",
        (kind, None) => s += &format!("{}: no golden nonce found\n", kind.name()),
    }
    if let (None, Some(b)) = (r.nonce, &r.best) {
        s += &format!("  best hash      {} leading zero bits at nonce {}\n", b.leading_zeros, b.nonce);
    }
    s += &format!(
        "  searched       {} nonces in {:.2} s ({}) on {}\n",
        r.searched,
        r.elapsed_s,
        human_rate(r.rate),
        workers_text(r.workers as u64, r.workers_started.map(|w| w as u64))
    );
    s += &format!("  job {} ({} mode), stalls {}, reshards {}", r.job_id, r.mode, r.stalls, r.reshards);
    let ver = &r.verification;
    s += &format!(
        "\n  verified       {} shares ({} bits), {} spot checks, {} suspect(s), {} forged messages dropped",
        ver.shares_verified,
        ver.share_bits,
        ver.spot_checks,
        ver.suspects.len(),
        r.forged
    );
    s
}

/// The `verification` object: what was checked of the workers' work, and the bound it gives.
pub fn verification_report(v: &Verification) -> VerificationReport {
    let bound = v.catch_if_skipped.iter().find(|(q, _)| *q <= 0.5).map(|&(q, p)| {
        format!(
            "a worker that skipped {:.0}% of what it claimed would have been caught with probability >= {}",
            q * 100.0,
            format_probability(p)
        )
    });
    VerificationReport {
        share_bits: v.share_bits,
        shares_verified: v.shares_verified,
        shares_expected: (v.shares_expected * 10.0).round() / 10.0,
        spot_checks: v.spot_checks,
        spot_checked_nonces: v.spot_checked_nonces,
        spot_check_mismatches: v.spot_check_mismatches,
        spot_checks_pending: v.spot_checks_pending,
        suspects: v
            .suspects
            .iter()
            .map(|s| Suspect {
                worker: s.worker.0.clone(),
                reason: s.reason.clone(),
                reopened: s.reopened,
                at_s: round3(s.at.as_secs_f64()),
            })
            .collect(),
        caught_if_skipped: v
            .catch_if_skipped
            .iter()
            .map(|&(skipped, caught_probability)| CatchChance { skipped, caught_probability })
            .collect(),
        false_alarm_per_job: v.false_alarm,
        bound,
    }
}

/// A running job's progress (the fields `noncectl status` shows).
pub fn progress(job: JobId, st: &Status) -> Progress {
    Progress {
        job_id: job.to_string(),
        finished: false,
        searched: st.stats.searched,
        total: st.total,
        rate: st.stats.rate.round(),
        workers: st.stats.workers_live,
        stalls: st.stats.stalls,
        reshards: st.stats.reshards,
        interruptions: st.stats.interruptions,
        lowest_so_far: st.lowest,
        forged: st.stats.forged,
        verification: verification_report(&st.verification),
        transport: None,
    }
}

/// 1 - 1e-12 reads better as "1 - 1e-12" than as "0.999999999999".
fn format_probability(p: f64) -> String {
    if p >= 1.0 {
        "1 - 1e-16".to_string()
    } else if p > 0.999 {
        format!("1 - {:.0e}", 1.0 - p)
    } else {
        format!("{p:.3}")
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nonces per second with an SI prefix.
/// "1 worker", "16 workers", or "3 of 16 workers (13 never started)": the workers that said
/// hello, out of those asked for (reports journaled before `workers_started` say only the latter).
pub fn workers_text(asked: u64, started: Option<u64>) -> String {
    let plural = |n: u64| if n == 1 { "worker" } else { "workers" };
    match started {
        Some(s) if s < asked => format!("{s} of {asked} {} ({} never started)", plural(asked), asked - s),
        _ => format!("{asked} {}", plural(asked)),
    }
}

/// A rate for people: `1.23 M/s`, `456.0 k/s`.
pub fn human_rate(rate: f64) -> String {
    match rate {
        r if r >= 1e9 => format!("{:.2} G/s", r / 1e9),
        r if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k/s", r / 1e3),
        r => format!("{r:.0} /s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nonce_core::job::{Outcome as JobOutcome, Stats};
    use std::time::Duration;

    /// The `--json` object keeps its fields (README, "Output") and reads back as the API's
    /// type, so the text of a daemon's report is the text of an embedded one.
    #[test]
    fn the_report_keeps_its_fields_and_reads_back_typed() {
        let layout = protocol::Layout::Append {
            block: b"COMSM0010cloud".to_vec(),
            encoding: protocol::Encoding::Be32,
        };
        let puzzle = Puzzle::new(layout, protocol::Target::LeadingZeros(24)).expect("puzzle");
        let outcome = JobOutcome {
            kind: OutcomeKind::Found,
            nonce: Some(30_074_393),
            found: vec![30_074_393],
            best: None,
            stats: Stats { searched: 1 << 64, workers_seen: 1, ..Stats::default() },
            elapsed: Duration::from_millis(1500),
            startups: vec![],
            unstarted: vec![],
            verification: Verification::default(),
        };
        let r =
            SearchReport { job: JobId(7), puzzle: &puzzle, mode: Mode::First, workers: 2, outcome: &outcome };
        let v = serde_json::to_value(r.report()).expect("a report serializes");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        for k in [
            "outcome",
            "nonce",
            "hash",
            "digest",
            "leading_zeros",
            "found",
            "best",
            "searched",
            "elapsed_s",
            "rate",
            "workers",
            "job_id",
            "mode",
            "stalls",
            "reshards",
            "interruptions",
            "steals",
            "ghosts",
            "rejected",
            "forged",
            "replayed",
            "verification",
        ] {
            assert!(keys.contains(&k), "{k} missing from {v}");
        }
        assert_eq!(v["searched"].to_string(), "18446744073709551616", "exact past 2^64");
        let back: Report = serde_json::from_value(v.clone()).expect("reads back");
        assert_eq!(back, r.report());
        let t = report_text(&back);
        assert!(t.starts_with("found: golden nonce 30074393"), "{t}");
        assert!(t.contains("on 1 of 2 workers (1 never started)"), "{t}");
    }
}
