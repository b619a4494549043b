//! `noncectl search` against an independent brute force (testdata/brute_force.py, hashlib).

mod common;
use common::*;

fn search_args(case: &serde_json::Value, mode: &str, workers: &str) -> Vec<String> {
    let range = range_arg(case);
    let mut args: Vec<String> = vec!["search".into()];
    args.extend(["--block-hex".into(), s(&case["block_hex"]).to_string()]);
    args.extend(["--encoding".into(), s(&case["encoding"]).to_string()]);
    args.extend(["--difficulty".into(), case["difficulty"].to_string()]);
    args.extend(["--mode".into(), mode.into(), "--range".into(), range, "--workers".into(), workers.into()]);
    args
}

fn run(args: &[String]) -> (i32, serde_json::Value) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    noncectl_json(&refs)
}

#[test]
fn lowest_equals_brute_force_for_every_block_encoding_and_end_of_space() {
    let g = golden();
    let cases = g["lowest"].as_array().expect("cases");
    assert!(cases.len() >= 72);
    for case in cases {
        let (code, v) = run(&search_args(case, "lowest", "2"));
        let name = s(&case["name"]);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(v["outcome"], "found", "{name}");
        assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "{name}: {v}");
        assert_eq!(v["hash"], case["hash"], "{name}");
        assert_eq!(v["mode"], "lowest");
    }
}

#[test]
fn one_two_and_seven_workers_agree() {
    let g = golden();
    let cases = g["lowest"].as_array().expect("cases");
    for case in cases.iter().step_by(9) {
        for workers in ["1", "2", "7"] {
            let (code, v) = run(&search_args(case, "lowest", workers));
            assert_eq!(code, 0);
            assert_eq!(
                v["nonce"].to_string(),
                s(&case["lowest"]),
                "{} with {workers} workers",
                s(&case["name"])
            );
            assert_eq!(v["workers"].to_string(), workers);
        }
    }
}

#[test]
fn exhaustive_reports_every_golden_nonce() {
    let g = golden();
    for case in g["exhaustive"].as_array().expect("cases") {
        let (code, v) = run(&search_args(case, "exhaustive", "3"));
        let want: Vec<String> =
            case["golden"].as_array().expect("list").iter().map(|n| s(n).to_string()).collect();
        let got: Vec<String> = v["found"].as_array().expect("found").iter().map(|n| n.to_string()).collect();
        assert_eq!(code, 0);
        assert_eq!(got, want, "{}", s(&case["name"]));
        assert_eq!(v["nonce"].to_string(), want[0]);
        let span: u128 = s(&case["range"][1]).parse::<u128>().expect("n")
            - s(&case["range"][0]).parse::<u128>().expect("n");
        assert_eq!(v["searched"].to_string(), span.to_string());
    }
}

#[test]
fn exhaustive_proves_a_range_holds_none() {
    let g = golden();
    for case in g["none"].as_array().expect("cases") {
        for workers in ["1", "4"] {
            let (code, v) = run(&search_args(case, "exhaustive", workers));
            assert_eq!(code, 1, "exit 1 when none exists: {v}");
            assert_eq!(v["outcome"], "exhausted");
            assert!(v["nonce"].is_null());
            let span: u128 = s(&case["range"][1]).parse::<u128>().expect("n")
                - s(&case["range"][0]).parse::<u128>().expect("n");
            assert_eq!(v["searched"].to_string(), span.to_string());
            assert_eq!(v["best"]["leading_zeros"], case["best_zeros"], "best hash of the range");
        }
        // `lowest` and `first` on the same range also end, with nothing.
        for mode in ["lowest", "first"] {
            let (code, v) = run(&search_args(case, mode, "2"));
            assert_eq!((code, v["outcome"].as_str()), (1, Some("exhausted")));
        }
    }
}

#[test]
fn every_kernel_backend_gives_the_reference_answer() {
    let g = golden();
    let cases = g["lowest"].as_array().expect("cases");
    // Every backend this machine runs: the GPU (lavapipe in CI) among them in a `gpu` build.
    for backend in nonce_kernel::Backend::available().iter().map(|b| b.name()) {
        for case in cases.iter().skip(3).step_by(11) {
            let args = search_args(case, "lowest", "2");
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, v) = noncectl_json_env(&refs, &[("NONCE_KERNEL", backend)]);
            assert_eq!(code, 0);
            assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "{} on {backend}", s(&case["name"]));
        }
    }
}

/// A `first` search that finds at once still reports the work before its find (the worker's
/// progress goes out ahead of its `Found`, and the job credits it before it ends): it used to
/// say "searched 0 nonces ... (0 /s)".
#[test]
fn a_quick_find_reports_the_work_before_it() {
    let (code, v) = noncectl_json(&[
        "search",
        "--block",
        "COMSM0010cloud",
        "--difficulty",
        "22",
        "--workers",
        "1",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["nonce"], 1_027_827, "the first golden nonce from 0: {v}");
    let searched = v["searched"].as_u64().expect("searched");
    // One thread hashes in order: all but its last chunk (at most 2^16) before the find is done.
    assert!(searched >= 1_027_827 - (1 << 16), "searched {searched}: {v}");
    assert!(v["rate"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}
