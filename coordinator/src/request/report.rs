//! The result of a search as the user sees it: one JSON object (`--json`) or a short text.

use nonce_core::job::{Outcome, OutcomeKind, Verification};
use protocol::{verify, JobId, Mode, Puzzle};
use serde_json::{json, Value};

/// Everything a search report states.
#[derive(Debug, Clone)]
pub struct SearchReport<'a> {
    pub job: JobId,
    pub puzzle: &'a Puzzle,
    pub mode: Mode,
    pub workers: usize,
    pub outcome: &'a Outcome,
}

impl SearchReport<'_> {
    pub fn json(&self) -> Value {
        let o = self.outcome;
        let elapsed = o.elapsed.as_secs_f64();
        let v = o.nonce.map(|n| verify(self.puzzle, n));
        let best = o.best.map(|b| {
            let bv = verify(self.puzzle, b.nonce);
            json!({ "nonce": b.nonce, "hash": hex::encode(bv.hash), "leading_zeros": bv.leading_zeros })
        });
        json!({
            "outcome": o.kind.name(),
            "nonce": o.nonce,
            "hash": v.map(|v| hex::encode(v.hash)),
            "digest": v.map(|v| hex::encode(v.digest)),
            "leading_zeros": v.map(|v| v.leading_zeros),
            "found": o.found,
            "best": best,
            "searched": o.stats.searched,
            "elapsed_s": round3(elapsed),
            "rate": if elapsed > 0.0 { (o.stats.searched as f64 / elapsed).round() } else { 0.0 },
            "workers": self.workers,
            "workers_started": o.stats.workers_seen,
            "job_id": self.job.to_string(),
            "mode": self.mode.name(),
            "stalls": o.stats.stalls,
            "reshards": o.stats.reshards,
            "steals": o.stats.steals,
            "ghosts": o.stats.ghosts,
            "rejected": o.stats.rejected,
            "forged": o.stats.forged,
            "replayed": o.stats.replayed,
            "verification": verification_json(&o.verification),
            "error": match &o.kind { OutcomeKind::Failed(why) => Some(why.clone()), _ => None },
        })
    }

    pub fn text(&self) -> String {
        text(&self.json())
    }
}

/// The text report, from the JSON object (so the embedded and daemon paths print alike).
pub fn text(v: &Value) -> String {
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let mut s = String::new();
    let outcome = v["outcome"].as_str().unwrap_or("?");
    match (outcome, v["nonce"].as_u64()) {
        ("failed", _) => s += &format!("search failed: {}\n", v["error"].as_str().unwrap_or("unknown error")),
        (kind, Some(n)) => {
            s += &format!("{kind}: golden nonce {n} ({n:#x})\n");
            s += &format!("  hash           {}\n", v["hash"].as_str().unwrap_or(""));
            s += &format!("  leading zeros  {}\n", v["leading_zeros"]);
            let found = v["found"].as_array().map_or(0, Vec::len);
            if found > 1 {
                s += &format!("  golden nonces  {found} found (lowest {n})\n");
            }
        }
        ("exhausted", None) => s += "exhausted: no golden nonce exists in this range\n",
        (kind, None) => s += &format!("{kind}: no golden nonce found\n"),
    }
    if let (None, Some(b)) = (v["nonce"].as_u64(), v["best"].as_object()) {
        s += &format!("  best hash      {} leading zero bits at nonce {}\n", b["leading_zeros"], b["nonce"]);
    }
    s += &format!(
        "  searched       {} nonces in {:.2} s ({}) on {}\n",
        v["searched"],
        num("elapsed_s"),
        human_rate(num("rate")),
        workers_text(v["workers"].as_u64().unwrap_or(0), v["workers_started"].as_u64())
    );
    s += &format!(
        "  job {} ({} mode), stalls {}, reshards {}",
        v["job_id"].as_str().unwrap_or("?"),
        v["mode"].as_str().unwrap_or("?"),
        v["stalls"],
        v["reshards"]
    );
    let ver = &v["verification"];
    let suspects = ver["suspects"].as_array().map_or(0, Vec::len);
    if ver.is_object() {
        s += &format!(
            "\n  verified       {} shares ({} bits), {} spot checks, {} suspect(s), {} forged messages dropped",
            ver["shares_verified"], ver["share_bits"], ver["spot_checks"], suspects, v["forged"]
        );
    }
    s
}

/// The `verification` object: what was checked of the workers' work, and the bound it gives.
pub fn verification_json(v: &Verification) -> Value {
    let catch: Vec<Value> = v
        .catch_if_skipped
        .iter()
        .map(|&(skipped, p)| json!({ "skipped": skipped, "caught_probability": p }))
        .collect();
    let bound = v.catch_if_skipped.iter().find(|(q, _)| *q <= 0.5).map(|&(q, p)| {
        format!(
            "a worker that skipped {:.0}% of what it claimed would have been caught with probability >= {}",
            q * 100.0,
            format_probability(p)
        )
    });
    json!({
        "share_bits": v.share_bits,
        "shares_verified": v.shares_verified,
        "shares_expected": (v.shares_expected * 10.0).round() / 10.0,
        "spot_checks": v.spot_checks,
        "spot_checked_nonces": v.spot_checked_nonces,
        "spot_check_mismatches": v.spot_check_mismatches,
        "spot_checks_pending": v.spot_checks_pending,
        "suspects": v.suspects.iter().map(|s| json!({
            "worker": s.worker.0,
            "reason": s.reason,
            "reopened": s.reopened,
            "at_s": round3(s.at.as_secs_f64()),
        })).collect::<Vec<_>>(),
        "caught_if_skipped": catch,
        "false_alarm_per_job": v.false_alarm,
        "bound": bound,
    })
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

pub fn human_rate(rate: f64) -> String {
    match rate {
        r if r >= 1e9 => format!("{:.2} G/s", r / 1e9),
        r if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k/s", r / 1e3),
        r => format!("{r:.0} /s"),
    }
}
