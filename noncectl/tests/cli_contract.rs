//! The user contract of `noncectl`: flags, exit codes, JSON fields, Ctrl-C.

use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

fn noncectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_noncectl")).args(args).output().expect("noncectl runs")
}

fn json_of(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Exit 2 with a one-line error that mentions `needle`, and no panic.
fn usage_error(args: &[&str], needle: &str) {
    let out = noncectl(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: {err:?} lacks {needle:?}");
    // Our own errors are one line; clap's add a hint line for --help.
    if !err.contains("For more information") {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
}

#[test]
fn bad_input_is_a_usage_error() {
    let search = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["search"];
        a.extend_from_slice(extra);
        a
    };
    usage_error(&search(&["--block-hex", "zz", "--difficulty", "4"]), "not hex");
    usage_error(&search(&["--block-hex", "abc", "--difficulty", "4"]), "odd number");
    usage_error(&search(&["--header-hex", &GENESIS[..158], "--difficulty", "4"]), "80");
    usage_error(&search(&["--block", "x", "--difficulty", "257"]), "256");
    usage_error(&search(&["--block", "x", "--difficulty=-1"]), "difficulty");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--range", "10..10"]), "empty");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--range", "0..4294967297"]), "past the end");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--range", "ten..20"]), "not a number");
    usage_error(&search(&["--block", "x", "--block-hex", "00", "--difficulty", "4"]), "cannot be used with");
    usage_error(
        &search(&["--block", "x", "--difficulty", "4", "--target-bits", "1d00ffff"]),
        "cannot be used with",
    );
    usage_error(&search(&["--block", "x"]), "--difficulty or --target-bits");
    usage_error(&search(&["--difficulty", "3"]), "--block");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--encoding", "be16"]), "encoding");
    usage_error(&search(&["--header-hex", GENESIS, "--difficulty", "4", "--encoding", "be32"]), "encoding");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--mode", "fastest"]), "mode");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--workers", "0"]), "workers");
    usage_error(&search(&["--block", "x", "--target-bits", "1d80ffff"]), "compact target");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--max-time", "soon"]), "duration");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--transport", "pigeon"]), "transport");
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--launcher", "ecs"]), "--transport aws");
    usage_error(
        &search(&["--block", "x", "--difficulty", "4", "--transport", "aws", "--launcher", "ecs"]),
        "--ecs-cluster",
    );
    usage_error(
        &search(&["--block", "x", "--difficulty", "4", "--transport", "aws", "--aws-prefix", "a b"]),
        "prefix",
    );
    usage_error(&search(&["--block", "x", "--difficulty", "4", "--ecs-cluster", "c"]), "--transport aws");
    // GPU capacity needs the deployment's GPU task definition and capacity provider, both.
    let ecs = [
        "--block",
        "x",
        "--difficulty",
        "4",
        "--transport",
        "aws",
        "--launcher",
        "ecs",
        "--ecs-cluster",
        "c",
        "--ecs-task-definition",
        "t",
        "--ecs-subnets",
        "s",
        "--ecs-security-groups",
        "g",
    ];
    usage_error(&search(&[&ecs[..], &["--capacity", "gpu"]].concat()), "--ecs-gpu-task-definition");
    usage_error(
        &search(&[&ecs[..], &["--capacity", "gpu", "--ecs-gpu-task-definition", "t-gpu"]].concat()),
        "--ecs-gpu-capacity-provider",
    );
    usage_error(&search(&[&ecs[..], &["--capacity", "tpu"]].concat()), "gpu");
    usage_error(
        &search(&["--block", "x", "--difficulty", "4", "--heartbeat", "2s", "--stall-timeout", "3s"]),
        "stall-timeout",
    );
    usage_error(
        &search(&["--block", "x", "--difficulty", "4", "--orphan-timeout", "never"]),
        "orphan-timeout",
    );
    let huge = "ab".repeat(16 * 1024 + 1);
    usage_error(&["search", "--block-hex", &huge, "--difficulty", "4"], "limit");
    usage_error(&["verify", "--block", "x", "--difficulty", "4", "--nonce", "-3"], "nonce");
    usage_error(&["verify", "--block", "x", "--difficulty", "4", "--nonce", "4294967296"], "outside");
    usage_error(&["frobnicate"], "unrecognized subcommand");
}

#[test]
fn verify_genesis_prints_the_explorer_hash() {
    let out =
        noncectl(&["verify", "--header-hex", GENESIS, "--target-bits", "1d00ffff", "--nonce", "2083236893"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("block hash     {GENESIS_HASH}")), "{text}");
    assert!(text.contains("GOLDEN"));
    let out =
        noncectl(&["verify", "--header-hex", GENESIS, "--target-bits", "1d00ffff", "--nonce", "2083236892"]);
    assert_eq!(out.status.code(), Some(1));
    let out =
        noncectl(&["verify", "--block", "COMSM0010cloud", "--difficulty", "0", "--nonce", "7", "--json"]);
    let v = json_of(&out);
    assert_eq!(v["golden"], true);
    assert_eq!(v["digest"].as_str().map(str::len), Some(64));
}

#[test]
fn genesis_nonce_is_found_by_a_ranged_search_with_its_nbits() {
    let out = noncectl(&[
        "search",
        "--header-hex",
        GENESIS,
        "--target-bits",
        "1d00ffff",
        "--range",
        "2083000000..2083300000",
        "--mode",
        "lowest",
        "--json",
    ]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["nonce"], 2083236893u64);
    assert_eq!(v["hash"], GENESIS_HASH);
    assert_eq!(v["leading_zeros"], 43);
    // Everything below the answer was searched. Above it, how much got done before the trim
    // arrived is a race (the whole 300,000-nonce range takes milliseconds), so at most all of it.
    let searched = v["searched"].as_u64().expect("number");
    assert!((236893..=300000).contains(&searched), "searched {searched}");
}

#[test]
fn block_one_nonce_is_found_from_its_header_with_the_nonce_zeroed() {
    // Bitcoin block 1, its nonce bytes blanked: the search must put 2573394689 back.
    let header = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d00000000";
    let out = noncectl(&[
        "search",
        "--header-hex",
        header,
        "--target-bits",
        "1d00ffff",
        "--range",
        "2573300000..2573400000",
        "--mode",
        "lowest",
        "--json",
    ]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["nonce"], 2573394689u64);
    assert_eq!(v["hash"], "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048");
}

#[test]
fn json_has_every_contract_field() {
    let out = noncectl(&["search", "--block", "COMSM0010cloud", "--difficulty", "12", "--json"]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0));
    for field in [
        "outcome",
        "nonce",
        "hash",
        "leading_zeros",
        "searched",
        "elapsed_s",
        "rate",
        "workers",
        "job_id",
        "mode",
        "stalls",
        "reshards",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert!(v["leading_zeros"].as_u64().expect("number") >= 12);
    assert_eq!(v["job_id"].as_str().map(str::len), Some(16));
}

#[test]
fn deadline_ends_the_job_as_timed_out() {
    let t = Instant::now();
    let out = noncectl(&["search", "--block", "x", "--difficulty", "200", "--max-time", "700ms", "--json"]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "timed_out");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(v["searched"].as_u64().expect("number") > 0);
}

#[test]
fn ctrl_c_cancels_cleanly_with_exit_130() {
    let child = Command::new(env!("CARGO_BIN_EXE_noncectl"))
        .args(["search", "--block", "x", "--difficulty", "200", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(800));
    let t = Instant::now();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("exits");
    assert!(t.elapsed() < Duration::from_secs(5), "cancel took {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["outcome"], "cancelled");
    assert!(v["searched"].as_u64().expect("number") > 0, "partial stats: {v}");
}

#[test]
fn searches_record_startups_and_estimate_plans_with_their_p95() {
    // A cache of its own, so the user's history neither leaks in nor is touched.
    let cache = std::env::temp_dir().join(format!("noncectl-startup-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_noncectl"))
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("noncectl runs")
    };
    let estimate = [
        "estimate",
        "--difficulty",
        "20",
        "--max-time",
        "10s",
        "--confidence",
        "0.9",
        "--rate",
        "1e6",
        "--json",
    ];
    let v = json_of(&run(&estimate));
    assert_eq!(v["startup_source"], "default", "{v}");
    assert_eq!(v["startup_s"], 0.002, "the threads default before any history: {v}");
    assert_eq!(v["startup_samples"], Value::Null);

    for _ in 0..2 {
        let out = run(&["search", "--block", "startup", "--difficulty", "8", "--workers", "3", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let file = cache.join("nonce-cloud").join("startup.json");
    let book: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("history written")).expect("JSON");
    let samples: Vec<f64> = book["launchers"]["threads"]["samples"]
        .as_array()
        .expect("threads history")
        .iter()
        .map(|s| s.as_f64().expect("seconds"))
        .collect();
    // Each search launched 3 workers; every one that said Hello is a sample (a job may end
    // before its last worker starts, so at least one each).
    assert!((2..=6).contains(&samples.len()), "{samples:?}");
    assert!(samples.iter().all(|&s| s > 0.0 && s < 5.0), "{samples:?}");

    let v = json_of(&run(&estimate));
    assert_eq!(v["startup_source"], "measured", "{v}");
    assert_eq!(v["startup_percentile"], 95);
    assert_eq!(v["startup_samples"], samples.len());
    // Fewer than 20 samples: p95 is the largest.
    let max = samples.iter().copied().fold(0.0, f64::max);
    assert_eq!(v["startup_s"].as_f64(), Some(max), "{v}");
    // An explicit --startup wins and says so.
    let mut given = estimate.to_vec();
    given.extend(["--startup", "3"]);
    let v = json_of(&run(&given));
    assert_eq!((v["startup_source"].as_str(), v["startup_s"].as_f64()), (Some("given"), Some(3.0)));
    let _ = std::fs::remove_dir_all(&cache);
}

/// `NONCE_KERNEL` is read by the program and checked like a flag: a backend that does not
/// exist is refused with exit 2 (it used to be ignored, and the fastest ran instead), and a
/// real one is what the bench measures.
#[test]
fn nonce_kernel_is_checked_like_a_flag() {
    let run = |kernel: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_noncectl"))
            .args(args)
            .env("NONCE_KERNEL", kernel)
            .output()
            .expect("runs")
    };
    // (`gpu` is a backend now: in a build with the feature it runs, on lavapipe in CI.)
    for args in [&["bench", "--seconds", "0.1"][..], &["search", "--difficulty", "4", "--workers", "1"]] {
        let out = run("tpu", args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("NONCE_KERNEL=\"tpu\": expected gpu, avx512, shani, avx2 or portable"), "{err}");
    }
    let out = run("portable", &["bench", "--seconds", "0.1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["backend"], "portable", "{}", String::from_utf8_lossy(&out.stdout));
}

/// `estimate --capacity gpu`: one worker a GPU instance, priced whole at its hourly price, at
/// the stated GPU rate and the instance's start-up (minutes), unless given.
#[test]
fn estimate_plans_gpu_workers_at_the_instances_price() {
    let base = [
        "estimate",
        "--difficulty",
        "44",
        "--max-time",
        "1h",
        "--confidence",
        "0.9",
        "--launcher",
        "ecs",
        "--encoding",
        "be64",
    ];
    let run = |extra: &[&str]| {
        let out = noncectl(&[&base[..], extra, &["--json"]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        json_of(&out)
    };
    let v = run(&["--capacity", "gpu"]);
    assert_eq!(v["fargate_capacity"], "gpu", "{v}");
    assert_eq!(v["rate_per_worker"], 1.0e9, "the stated GPU rate: {v}");
    assert_eq!(v["startup_s"], 240.0, "an EC2 instance's start-up: {v}");
    assert_eq!(v["launch_ramp_s"], 0.0, "no Fargate launch ramp: {v}");
    // 2^44 * ln 10 tries at 1 G/s in 3,360 s of hashing: 13 workers, each $1.006 an hour.
    let workers = v["workers"].as_f64().expect("workers");
    assert_eq!(workers, 13.0, "{v}");
    let cost = v["cost"].as_f64().expect("cost");
    assert!((cost - workers * 1.006).abs() < 1e-6, "every worker billed the hour at $1.006: {v}");
    // A measured rate replaces the stated one.
    let v = run(&["--capacity", "gpu", "--rate", "4e9"]);
    assert_eq!(v["rate_per_worker"], 4.0e9, "{v}");
    assert!(v["workers"].as_u64() < Some(13), "{v}");
}
