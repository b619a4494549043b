//! `noncectl estimate`, `search --confidence`, and the experiments' files.

mod common;
use common::*;
use std::path::PathBuf;

#[test]
fn estimate_gives_the_contract_fields_and_refuses_impossible_promises() {
    let (code, v) = noncectl_json(&[
        "estimate",
        "--difficulty",
        "24",
        "--max-time",
        "60s",
        "--confidence",
        "0.99",
        "--rate",
        "1e6",
        "--startup",
        "5",
        "--launcher",
        "ecs",
    ]);
    assert_eq!(code, 0, "{v}");
    for f in ["k", "workers", "expected_seconds", "probability", "cost"] {
        assert!(v.get(f).is_some(), "missing {f}: {v}");
    }
    assert_eq!(v["k"], 77_261_933.0);
    assert_eq!(v["workers"], 2, "k / (1e6 x 55) = 1.40 -> 2");
    assert!(v["probability"].as_f64().expect("p") >= 0.99);
    // D=32 at P=0.9 over 2^32 nonces: at most 1 - 1/e.
    let (code, v) = noncectl_json(&[
        "estimate",
        "--difficulty",
        "32",
        "--max-time",
        "1h",
        "--confidence",
        "0.9",
        "--rate",
        "1e7",
    ]);
    assert_eq!(code, 1, "an impossible promise exits non-zero: {v}");
    assert_eq!(v["possible"], false);
    assert!((v["space_probability"].as_f64().expect("p") - 0.6321).abs() < 1e-4);
    assert!(v["reason"].as_str().expect("reason").contains("0.6321"));
    let out = noncectl(&["estimate", "--difficulty", "10", "--max-time", "1s", "--confidence", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn search_with_a_confidence_plans_and_keeps_the_deadline() {
    let (code, v) = noncectl_json(&[
        "search",
        "--block",
        "plan-me",
        "--difficulty",
        "16",
        "--max-time",
        "5s",
        "--confidence",
        "0.99",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "found");
    let out = noncectl(&[
        "search",
        "--block",
        "x",
        "--difficulty",
        "40",
        "--max-time",
        "2s",
        "--confidence",
        "0.9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot promise"));
    let out = noncectl(&["search", "--block", "x", "--difficulty", "10", "--confidence", "0.9"]);
    assert_eq!(out.status.code(), Some(2), "a confidence needs a deadline");
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nonce-exp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
}

fn assert_csv(path: &std::path::Path, header_start: &str, rows: usize) {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with(header_start), "{header}");
    let cols = header.split(',').count();
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), rows);
    assert!(body.iter().all(|l| l.split(',').count() == cols), "ragged CSV");
}

#[test]
fn experiments_write_csv_and_plots() {
    let dir = out_dir("planner");
    let (code, v) =
        noncectl_json(&["experiment", "planner", "--trials", "6", "--out", dir.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{v}");
    assert_csv(&dir.join("planner.csv"), "trial,block_hex,difficulty", 6);
    assert_png(&dir.join("planner.png"));
    assert!(std::fs::read_to_string(dir.join("planner.svg")).expect("svg").contains("<svg"));
    let dir2 = out_dir("scaling");
    let (code, v) = noncectl_json(&[
        "experiment",
        "scaling",
        "--workers",
        "1,2",
        "--difficulties",
        "6..8",
        "--repeats",
        "2",
        "--out",
        dir2.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{v}");
    assert_csv(&dir2.join("scaling.csv"), "difficulty,workers", 2 * 3 * 2);
    for name in ["scaling-workers", "scaling-difficulty", "scaling-runs", "scaling-variance"] {
        assert_png(&dir2.join(format!("{name}.png")));
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

#[test]
fn the_planner_experiment_imposes_and_learns_a_startup_distribution() {
    let dir = out_dir("planner-startup");
    let (code, v) = noncectl_json(&[
        "experiment",
        "planner",
        "--trials",
        "8",
        "--startup-dist",
        "fixed:50s",
        "--startup-scale",
        "0.01",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{v}");
    let st = &v["startup"];
    assert_eq!(st["percentile"], 95, "{v}");
    let run = v["trials"].as_u64().expect("trials");
    let refused = st["refused"].as_u64().expect("refused");
    assert_eq!(run + refused, 8, "{v}");
    assert!(run >= 1, "some deadline was promised: {v}");
    // Every worker waited 0.5 s before starting, and the planner learned it (the first trial
    // planned with the scaled ecs default, 0.45 s).
    assert_eq!(st["default_trials"], 1, "{v}");
    let learned = st["learned_s"].as_f64().expect("learned");
    assert!((0.5..0.9).contains(&learned), "learned {learned} s for a fixed 0.5 s start-up: {v}");
    let text = std::fs::read_to_string(dir.join("planner-startup.csv")).expect("csv");
    assert!(
        text.lines().next().is_some_and(|h| h.ends_with("slowest_startup_s,workers_unstarted")),
        "{text}"
    );
    for l in text.lines().skip(1).filter(|l| !l.contains(",refused,")) {
        let slowest: f64 = l.split(',').nth(14).and_then(|s| s.parse().ok()).expect("slowest_startup_s");
        assert!(slowest == 0.0 || slowest >= 0.5, "a worker started before its delay: {l}");
    }
    assert_png(&dir.join("planner-startup-learning.png"));
    let _ = std::fs::remove_dir_all(dir);
}
