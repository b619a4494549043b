//! The coursework report's experiments, on our system: does the planner keep its promise, and
//! how does time to a golden nonce scale with workers and difficulty (report section 7,
//! figures 5 to 7). Trials run on the embedded backend; results go to CSV, PNG and SVG.
//! [`sqs_cost`] measures what supervision over SQS costs and how fast it reacts.

pub mod plot;
pub mod sqs_cost;
pub mod startup_dist;

use actix::prelude::*;
use coordinator::actors::wait;
use coordinator::actors::{Coordinator, StartJob};
use coordinator::request::launch_gate::SharedGate;
use coordinator::request::{cpus, JobSpec, LaunchDelay};
use nonce_core::job::{Outcome, OutcomeKind};
use nonce_core::launch_quota::{Bucket, LaunchQuotas};
use nonce_core::planner::default_startup;
use nonce_core::planner::{plan, tries, PlanInput};
use nonce_core::startup::{StartupHistory, PERCENTILE};
use nonce_kernel::Backend;
use plot::{chart, Labels, Series};
use protocol::{Encoding, Mode, Puzzle};
use rand::{Rng, SeedableRng};
pub use startup_dist::StartupDist;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// With a start-up distribution: what was imposed and what the planner learned.
    pub startup: Option<StartupSummary>,
}

/// The start-up side of a planner run with `--startup-dist`: the distribution imposed on the
/// workers, and the history the planner learned from them, so the summary can show the promise
/// was kept with learned (not told) start-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupSummary {
    pub dist: String,
    /// Local seconds per modelled second.
    pub scale: f64,
    /// Start-up samples the planner learned by the end (the last 200 kept).
    pub samples: usize,
    /// The planner's start-up at the end (the history's percentile), local seconds.
    pub learned: f64,
    pub percentile: u8,
    /// Trials planned with the default, before any history existed.
    pub default_trials: usize,
    /// Share of deadlines met by trials planned from a measured history.
    pub met_measured: f64,
    /// Trials whose deadline the planner refused to promise (not run, not in `trials`).
    pub refused: usize,
}

/// A start-up distribution imposed on a planner run, scaled to local seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImposedStartup {
    pub dist: StartupDist,
    /// Local seconds per modelled second (0.01: a 40 s start-up takes 0.4 s here).
    pub scale: f64,
    /// The percentile of the learned history the planner uses (95, as `estimate` does;
    /// lower values show what a planner that ignores the spread would promise).
    pub percentile: u8,
}

async fn run_job(coordinator: &Addr<Coordinator>, spec: JobSpec) -> Result<Outcome, String> {
    let (_, sup) = coordinator
        .send(StartJob(spec, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    wait(&sup).await.map_err(|e| e.to_string())
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
///
/// With `imposed`, every worker's start is delayed by a draw from that distribution (the
/// `threads` launcher really waits), and the planner plans with the p95 of the start-ups it has
/// measured in the earlier trials (the scaled `ecs` default before the first one).
///
/// With `quota` (an account's launch quotas, in modelled seconds, scaled like the start-ups),
/// every worker is launched through one real token bucket of those quotas, shared by the whole
/// run like an account's: it waits for its token, then for its start-up, and the planner plans
/// each fleet with the ramp the bucket gives it. A fleet past the burst is what a 1,000-task
/// Fargate fleet is to its 20-call bucket, on the CPUs this machine has.
pub async fn planner(
    trials: usize,
    confidence: f64,
    seed: u64,
    out: &Path,
    imposed: Option<ImposedStartup>,
    quota: Option<LaunchQuotas>,
    backend: Backend,
) -> Result<PlannerSummary, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let coordinator = Coordinator::default().start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rate = coordinator::request::calibration::per_thread_rate(&crate::cache_dir_from_env(), backend);
    let capacity = cpus();
    // The start-ups the planner has seen, in local seconds, and the delays imposed on workers
    // (their own seeded stream, so a run is reproducible).
    let mut history = StartupHistory::default();
    let delays = imposed.map(|i| {
        let mut drng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5747_4152_5455_5053);
        LaunchDelay::new(move || Duration::from_secs_f64(i.dist.draw(&mut drng) * i.scale))
    });
    let default = match imposed {
        Some(i) => default_startup("ecs").unwrap_or(45.0) * i.scale,
        None => default_startup("threads").unwrap_or(0.02),
    };
    // Room for start-up in the deadlines drawn: anywhere from the median start-up to its 99th
    // percentile, so start-up eats a varying, often large, part of each deadline.
    let room = imposed.map_or((default, default), |i| (i.dist.median() * i.scale, i.dist.p99() * i.scale));
    // The bucket in local seconds: the same burst, its rate sped up as the start-ups are.
    let scale = imposed.map_or(1.0, |i| i.scale);
    let ramp = quota.map(|q| LaunchQuotas {
        tasks: Bucket { per_second: q.tasks.per_second / scale, ..q.tasks },
        calls: Bucket { per_second: q.calls.per_second / scale, ..q.calls },
    });
    let gate = ramp.map(SharedGate::new);
    let mut refused = 0;
    let mut rows = Vec::new();
    let mut records = Vec::new(); // (difficulty, deadline, workers, found, elapsed, startup used, measured)
    let mut learning = Vec::new(); // (trial, planned start-up, slowest start-up of the trial)
    for trial in 0..trials {
        // With a launch quota, hashing of seconds (difficulty 24-26), which a late second
        // worker's ramp really eats into; tens of milliseconds otherwise.
        let difficulty = if quota.is_some() { 24 + (trial % 3) as u32 } else { 18 + (trial % 4) as u32 };
        let k = tries(difficulty, confidence);
        let (startup, measured) = match imposed.and_then(|i| history.percentile(i.percentile)) {
            Some(p) => (p, true),
            None => (default, false),
        };
        let deadline = if imposed.is_some() {
            // Tight deadlines, where the promise is at stake: hashing time that some fleet of
            // 1..=capacity workers just covers (k / (w x rate), up to 20% more), plus room
            // for a start-up between its median and its 99th percentile.
            // (and, with a launch quota, for the ramp that fleet's last worker waits).
            let n = rng.gen_range(1..=capacity);
            let w = n as f64;
            let ramp_room = ramp.map_or(0.0, |q| q.earliest(n - 1));
            k / (w * rate) * rng.gen_range(1.0..1.2) + rng.gen_range(room.0..=room.1) + ramp_room
        } else {
            // Deadlines from "the whole machine just suffices" to "one worker suffices, with room".
            let lo = room.0 + k / (capacity as f64 * rate) * 1.1;
            let hi = room.0 + k / rate * 1.5;
            rng.gen_range(lo..hi)
        };
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
            ramp,
            spot: None,
        };
        let p = plan(&input);
        if imposed.is_some() && p.impossible.is_some() {
            // What `search --confidence` does: refuse a promise it cannot keep, run nothing.
            refused += 1;
            rows.push(format!(
                "{trial},{},{difficulty},{deadline:.4},{confidence},{},{:.4},refused,,,{startup:.4},{},{},,,",
                hex::encode(&block),
                p.workers,
                p.probability,
                if measured { "measured" } else { "default" },
                history.len(),
            ));
            continue;
        }
        let puzzle = Puzzle::append(block.clone(), Encoding::Be32, difficulty).map_err(|e| e.to_string())?;
        let mut spec = JobSpec::new(puzzle.clone(), Mode::First, puzzle.space());
        spec.workers = p.workers;
        spec.deadline = Some(Duration::from_secs_f64(deadline));
        spec.launch_delay = delays.clone();
        spec.launch_gate = gate.clone();
        spec.backend = backend;
        let o = run_job(&coordinator, spec).await?;
        let found = o.kind == OutcomeKind::Found;
        let elapsed = o.elapsed.as_secs_f64();
        let slowest = o.startups.iter().map(Duration::as_secs_f64).fold(0.0, f64::max);
        let mut row = format!(
            "{trial},{},{difficulty},{deadline:.4},{confidence},{},{:.4},{},{elapsed:.4},{}",
            hex::encode(&block),
            p.workers,
            p.probability,
            o.kind.name(),
            o.stats.searched
        );
        if imposed.is_some() {
            row += &format!(
                ",{startup:.4},{},{},{},{slowest:.4},{}",
                if measured { "measured" } else { "default" },
                history.len(),
                o.startups.len(),
                o.unstarted.len()
            );
            learning.push((trial as f64, startup, slowest));
            for s in &o.startups {
                history.record(s.as_secs_f64());
            }
            for s in &o.unstarted {
                history.record_censored(s.as_secs_f64());
            }
        }
        rows.push(row);
        records.push((difficulty, deadline, p.workers, found, elapsed, startup, measured));
    }
    let name = match imposed {
        Some(i) if i.percentile != PERCENTILE => format!("planner-startup-p{}", i.percentile),
        Some(_) => "planner-startup".to_string(),
        None => "planner".to_string(),
    } + if quota.is_some() { "-ramp" } else { "" };
    let csv_path = out.join(format!("{name}.csv"));
    let mut header = String::from(
        "trial,block_hex,difficulty,max_time_s,confidence,workers,planned_probability,outcome,elapsed_s,searched",
    );
    if imposed.is_some() {
        header += ",planned_startup_s,startup_source,startup_samples,workers_started,slowest_startup_s,workers_unstarted";
    }
    csv(&csv_path, &header, &rows)?;
    let met = records.iter().filter(|r| r.3).count() as f64 / records.len().max(1) as f64;
    // Work each trial needed, in units of 2^D nonces, from its time to the answer (infinite when
    // it missed); the P-quantile of that is what a fleet must cover to meet P of deadlines.
    let mut work: Vec<f64> = records
        .iter()
        .map(|&(d, _, w, found, elapsed, startup, _)| {
            if found {
                (elapsed - startup).max(0.0) * w as f64 * rate / 2f64.powi(d as i32)
            } else {
                f64::INFINITY
            }
        })
        .collect();
    work.sort_by(f64::total_cmp);
    // No trial run (every promise refused): no fleet to compare, and q stays infinite.
    let q = match work.len() {
        0 => f64::INFINITY,
        n => work[((confidence * n as f64).ceil() as usize).clamp(1, n) - 1],
    };
    let (used, minimal) =
        records.iter().fold((0usize, 0usize), |(u, m), &(d, deadline, w, _, _, startup, _)| {
            let need = (q * 2f64.powi(d as i32) / (rate * (deadline - startup))).ceil();
            let need = if need.is_finite() { (need as usize).max(1) } else { w };
            (u + w, m + need)
        });
    let fleet_ratio = used as f64 / minimal.max(1) as f64;
    let mut ratio: Vec<(f64, bool)> =
        records.iter().map(|&(_, deadline, _, found, elapsed, _, _)| (elapsed / deadline, found)).collect();
    ratio.sort_by(|a, b| a.0.total_cmp(&b.0));
    let met_pts = ratio.iter().enumerate().filter(|(_, r)| r.1).map(|(i, r)| (i as f64, r.0)).collect();
    let missed_pts = ratio.iter().enumerate().filter(|(_, r)| !r.1).map(|(i, r)| (i as f64, r.0)).collect();
    let stem = out.join(&name);
    let with = imposed.map_or(String::new(), |i| format!(" (start-up p{})", i.percentile));
    chart(
        &stem,
        Labels {
            title: &format!(
                "Planner at P = {confidence}: {:.1}% of {} trials met the deadline{with}",
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
    let mut plots = vec![stem.with_extension("png"), stem.with_extension("svg")];
    let startup = match imposed {
        None => None,
        Some(i) => {
            let learn = out.join(format!("{name}-learning"));
            chart(
                &learn,
                Labels {
                    title: &format!(
                        "Start-up: imposed ({} x {}), planned (p{})",
                        i.dist.describe(),
                        i.scale,
                        i.percentile
                    ),
                    x: "trial",
                    y: "seconds (local)",
                },
                &[
                    Series {
                        name: "slowest worker of the trial".into(),
                        // Trials that ended before any worker started have no slowest start-up.
                        points: learning.iter().filter(|l| l.2 > 0.0).map(|l| (l.0, l.2)).collect(),
                        scatter: true,
                    },
                    Series {
                        name: format!("planned: p{} of the history (default first)", i.percentile),
                        points: learning.iter().map(|l| (l.0, l.1)).collect(),
                        scatter: false,
                    },
                ],
            )?;
            plots.push(learn.with_extension("png"));
            plots.push(learn.with_extension("svg"));
            let measured: Vec<_> = records.iter().filter(|r| r.6).collect();
            Some(StartupSummary {
                dist: i.dist.describe(),
                scale: i.scale,
                samples: history.len(),
                learned: history.percentile(i.percentile).unwrap_or(default),
                percentile: i.percentile,
                default_trials: records.len() - measured.len(),
                refused,
                met_measured: measured.iter().filter(|r| r.3).count() as f64 / measured.len().max(1) as f64,
            })
        }
    };
    Ok(PlannerSummary { trials: records.len(), confidence, met, fleet_ratio, csv: csv_path, plots, startup })
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
