//! The coursework report's experiments, on our system: does the planner keep its promise, and
//! how does time to a golden nonce scale with workers and difficulty (report section 7,
//! figures 5 to 7). Trials run on the embedded backend; results go to CSV, PNG and SVG.
//! [`sqs_cost`] measures what supervision over SQS costs and how fast it reacts.

pub mod plot;
pub mod sqs_cost;

use crate::actors::WaitJob;
use crate::actors::{Coordinator, StartJob};
use crate::request::{cpus, JobSpec};
use actix::prelude::*;
use nonce_core::job::{Outcome, OutcomeKind};
use nonce_core::planner::default_startup;
use nonce_core::planner::{plan, tries, PlanInput};
use plot::{chart, Labels, Series};
use protocol::{Encoding, Mode, Puzzle};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use worker_actor::Backend;

/// What the planner experiment found.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerSummary {
    pub trials: usize,
    pub confidence: f64,
    /// Share of trials that found a golden nonce by their deadline.
    pub met: f64,
    /// Workers used over the smallest fleets that would have met the same share.
    pub fleet_ratio: f64,
    pub csv: PathBuf,
    pub plots: Vec<PathBuf>,
}

async fn run_job(coordinator: &Addr<Coordinator>, spec: JobSpec) -> Result<Outcome, String> {
    let (_, sup) = coordinator.send(StartJob(spec, None)).await.map_err(|e| e.to_string())??;
    sup.send(WaitJob).await.map_err(|e| e.to_string())?
}

fn random_block(rng: &mut impl Rng) -> Vec<u8> {
    (0..16).map(|_| rng.gen()).collect()
}

fn csv(path: &Path, header: &str, rows: &[String]) -> Result<(), String> {
    let mut f = std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{header}").map_err(|e| e.to_string())?;
    for r in rows {
        writeln!(f, "{r}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Random blocks, deadlines and the planner's fleets; measures the share that met the deadline.
pub async fn planner(
    trials: usize,
    confidence: f64,
    seed: u64,
    out: &Path,
) -> Result<PlannerSummary, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let coordinator = Coordinator::default().start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let backend = Backend::detect();
    let rate = crate::request::calibration::per_thread_rate(backend);
    let startup = default_startup("threads").unwrap_or(0.02);
    let capacity = cpus();
    let mut rows = Vec::new();
    let mut records = Vec::new(); // (difficulty, deadline, workers, found, elapsed)
    for trial in 0..trials {
        let difficulty = 18 + (trial % 4) as u32;
        let k = tries(difficulty, confidence);
        // Deadlines from "the whole machine just suffices" to "one worker suffices, with room".
        let lo = startup + k / (capacity as f64 * rate) * 1.1;
        let hi = startup + k / rate * 1.5;
        let deadline = rng.gen_range(lo..hi);
        let block = random_block(&mut rng);
        let input = PlanInput {
            difficulty,
            max_time: deadline,
            confidence,
            rate,
            startup,
            space: 2f64.powi(32),
            capacity,
            worker_vcpus: 1.0,
            worker_memory_gb: 0.0,
            vcpu_hour: 0.0,
            gb_hour: 0.0,
        };
        let p = plan(&input);
        let puzzle = Puzzle::append(block.clone(), Encoding::Be32, difficulty).map_err(|e| e.to_string())?;
        let mut spec = JobSpec::new(puzzle.clone(), Mode::First, puzzle.space());
        spec.workers = p.workers;
        spec.deadline = Some(Duration::from_secs_f64(deadline));
        let o = run_job(&coordinator, spec).await?;
        let found = o.kind == OutcomeKind::Found;
        let elapsed = o.elapsed.as_secs_f64();
        rows.push(format!(
            "{trial},{},{difficulty},{deadline:.4},{confidence},{},{:.4},{},{elapsed:.4},{}",
            hex::encode(&block),
            p.workers,
            p.probability,
            o.kind.name(),
            o.stats.searched
        ));
        records.push((difficulty, deadline, p.workers, found, elapsed));
    }
    let csv_path = out.join("planner.csv");
    csv(
        &csv_path,
        "trial,block_hex,difficulty,max_time_s,confidence,workers,planned_probability,outcome,elapsed_s,searched",
        &rows,
    )?;
    let met = records.iter().filter(|r| r.3).count() as f64 / records.len().max(1) as f64;
    // Work each trial needed, in units of 2^D nonces, from its time to the answer (infinite when
    // it missed); the P-quantile of that is what a fleet must cover to meet P of deadlines.
    let mut work: Vec<f64> = records
        .iter()
        .map(|&(d, _, w, found, elapsed)| {
            if found {
                (elapsed - startup).max(0.0) * w as f64 * rate / 2f64.powi(d as i32)
            } else {
                f64::INFINITY
            }
        })
        .collect();
    work.sort_by(f64::total_cmp);
    let q = work[((confidence * work.len() as f64).ceil() as usize).clamp(1, work.len().max(1)) - 1];
    let (used, minimal) = records.iter().fold((0usize, 0usize), |(u, m), &(d, deadline, w, _, _)| {
        let need = (q * 2f64.powi(d as i32) / (rate * (deadline - startup))).ceil();
        let need = if need.is_finite() { (need as usize).max(1) } else { w };
        (u + w, m + need)
    });
    let fleet_ratio = used as f64 / minimal.max(1) as f64;
    let mut ratio: Vec<(f64, bool)> =
        records.iter().map(|&(_, deadline, _, found, elapsed)| (elapsed / deadline, found)).collect();
    ratio.sort_by(|a, b| a.0.total_cmp(&b.0));
    let met_pts = ratio.iter().enumerate().filter(|(_, r)| r.1).map(|(i, r)| (i as f64, r.0)).collect();
    let missed_pts = ratio.iter().enumerate().filter(|(_, r)| !r.1).map(|(i, r)| (i as f64, r.0)).collect();
    let stem = out.join("planner");
    chart(
        &stem,
        Labels {
            title: &format!(
                "Planner at P = {confidence}: {:.1}% of {} trials met the deadline",
                met * 100.0,
                records.len()
            ),
            x: "trial (sorted)",
            y: "time to golden nonce / deadline",
        },
        &[
            Series { name: "met".into(), points: met_pts, scatter: true },
            Series { name: "missed (deadline)".into(), points: missed_pts, scatter: true },
            Series {
                name: "deadline".into(),
                points: vec![(0.0, 1.0), (records.len() as f64, 1.0)],
                scatter: false,
            },
        ],
    )?;
    Ok(PlannerSummary {
        trials: records.len(),
        confidence,
        met,
        fleet_ratio,
        csv: csv_path,
        plots: vec![stem.with_extension("png"), stem.with_extension("svg")],
    })
}

/// Time to a golden nonce across worker counts and difficulties (report section 7).
pub async fn scaling(
    workers: &[usize],
    difficulties: &[u32],
    repeats: usize,
    seed: u64,
    out: &Path,
) -> Result<(PathBuf, Vec<PathBuf>), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let coordinator = Coordinator::default().start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut runs: Vec<(u32, usize, f64)> = Vec::new();
    for &d in difficulties {
        for &w in workers {
            for r in 0..repeats {
                let block = random_block(&mut rng);
                let puzzle = Puzzle::append(block.clone(), Encoding::Be32, d).map_err(|e| e.to_string())?;
                let mut spec = JobSpec::new(puzzle.clone(), Mode::First, puzzle.space());
                spec.workers = w;
                spec.deadline = Some(Duration::from_secs(600));
                let o = run_job(&coordinator, spec).await?;
                let t = o.elapsed.as_secs_f64().max(1e-4);
                rows.push(format!(
                    "{d},{w},{r},{},{t:.5},{},{},{}",
                    hex::encode(&block),
                    o.kind.name(),
                    o.stats.searched,
                    o.nonce.map_or(String::new(), |n| n.to_string())
                ));
                runs.push((d, w, t));
            }
        }
    }
    let csv_path = out.join("scaling.csv");
    csv(&csv_path, "difficulty,workers,repeat,block_hex,elapsed_s,outcome,searched,nonce", &rows)?;
    let mean = |d: u32, w: usize| {
        let v: Vec<f64> = runs.iter().filter(|r| r.0 == d && r.1 == w).map(|r| r.2).collect();
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
        (m, var.sqrt())
    };
    let mut plots = Vec::new();
    let mut emit = |name: &str, labels: Labels<'_>, series: Vec<Series>| -> Result<(), String> {
        let stem = out.join(name);
        chart(&stem, labels, &series)?;
        plots.push(stem.with_extension("png"));
        plots.push(stem.with_extension("svg"));
        Ok(())
    };
    // Figure 5: workers against time, one line per difficulty.
    emit(
        "scaling-workers",
        Labels { title: "Workers vs time to a golden nonce", x: "workers", y: "log2 mean seconds" },
        difficulties
            .iter()
            .map(|&d| Series {
                name: format!("d = {d}"),
                points: workers.iter().map(|&w| (w as f64, mean(d, w).0.log2())).collect(),
                scatter: false,
            })
            .collect(),
    )?;
    // Figure 6: difficulty against log time, one line per worker count.
    emit(
        "scaling-difficulty",
        Labels { title: "Difficulty vs log time", x: "difficulty (bits)", y: "log2 mean seconds" },
        workers
            .iter()
            .map(|&w| Series {
                name: format!("{w} workers"),
                points: difficulties.iter().map(|&d| (d as f64, mean(d, w).0.log2())).collect(),
                scatter: false,
            })
            .collect(),
    )?;
    // Figure 7: every run, split by worker count, and the spread at each difficulty.
    emit(
        "scaling-runs",
        Labels { title: "Every run, by worker count", x: "difficulty (bits)", y: "log2 seconds" },
        workers
            .iter()
            .map(|&w| Series {
                name: format!("{w} workers"),
                points: runs.iter().filter(|r| r.1 == w).map(|r| (r.0 as f64, r.2.log2())).collect(),
                scatter: true,
            })
            .collect(),
    )?;
    emit(
        "scaling-variance",
        Labels {
            title: "Spread of time at each difficulty",
            x: "difficulty (bits)",
            y: "log2 std dev of seconds",
        },
        workers
            .iter()
            .map(|&w| Series {
                name: format!("{w} workers"),
                points: difficulties.iter().map(|&d| (d as f64, mean(d, w).1.max(1e-6).log2())).collect(),
                scatter: false,
            })
            .collect(),
    )?;
    Ok((csv_path, plots))
}
