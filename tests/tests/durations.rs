//! One duration grammar for every flag: `90`, `90s`, `1m30s`, `2min`, `1h`, `1d`; errors name
//! the flag.

mod common;
use common::*;
use std::process::Command;

fn noncectl_out(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("noncectl")).args(args).env("NONCE_LOG", "error").output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_duration_flag_takes_the_same_grammar_and_names_itself_when_wrong() {
    for max_time in ["90", "1m30s", "2min", "1h", "1d"] {
        let (code, stderr) = noncectl_out(&[
            "search",
            "--block",
            "durations",
            "--difficulty",
            "4",
            "--max-time",
            max_time,
            "--json",
        ]);
        assert_eq!(code, 0, "--max-time {max_time}: {stderr}");
    }
    for (bad, why) in [("0s", "no time at all"), ("soon", "not a duration"), ("1m30", "not a duration")] {
        let (code, stderr) =
            noncectl_out(&["search", "--block", "durations", "--difficulty", "4", "--max-time", bad]);
        assert_eq!(code, 2, "--max-time {bad}: {stderr}");
        assert!(stderr.contains("--max-time") && stderr.contains(why), "--max-time {bad}: {stderr}");
    }
    let estimate =
        ["estimate", "--difficulty", "30", "--max-time", "1m", "--confidence", "0.5", "--rate", "1e8"];
    let (code, stderr) =
        noncectl_out(&[&estimate[..], &["--range", "0..4294967296", "--startup", "2s"]].concat());
    assert_eq!(code, 0, "estimate --startup 2s: {stderr}");
    let (code, stderr) = noncectl_out(&["bench", "--seconds", "0.3s", "--threads", "1", "--json"]);
    assert_eq!(code, 0, "bench --seconds 0.3s: {stderr}");
    let (code, stderr) = noncectl_out(&["bench", "--seconds", "2h", "--threads", "1"]);
    assert_eq!(code, 2, "bench --seconds 2h: {stderr}");
    assert!(stderr.contains("--seconds"), "{stderr}");
    // `wait --timeout` is read before any daemon is asked: a bad one is named, a good one is
    // no longer "invalid float literal".
    let (code, stderr) =
        noncectl_out(&["wait", "0123456789abcdef", "--timeout", "soon", "--socket", "/nonexistent"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
    let (_, stderr) =
        noncectl_out(&["wait", "0123456789abcdef", "--timeout", "30s", "--socket", "/nonexistent"]);
    assert!(!stderr.contains("invalid"), "wait --timeout 30s is a duration: {stderr}");
}
