//! A closed stdout (`noncectl ... | head -1`) ends a command's output quietly: no panic, the
//! exit code the command would have had.

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_each_commands_output_quietly() {
    let estimate = ["estimate", "--difficulty", "30", "--max-time", "60s", "--confidence", "0.5"];
    let estimate: Vec<&str> =
        estimate.into_iter().chain(["--rate", "1e8", "--range", "0..4294967296"]).collect();
    let estimate_json: Vec<&str> = estimate.iter().copied().chain(["--json"]).collect();
    let cases: [(&[&str], i32); 7] = [
        (&["search", "--block", "pipes", "--difficulty", "8"], 0),
        (&["search", "--block", "pipes", "--difficulty", "8", "--json"], 0),
        // Nothing golden in 0..100 at 30 bits: exit 1 whether or not anyone reads the result.
        (&["search", "--block", "pipes", "--difficulty", "30", "--range", "0..100", "--json"], 1),
        (&["verify", "--block", "pipes", "--difficulty", "1", "--nonce", "0"], 0),
        (&["verify", "--block", "pipes", "--difficulty", "1", "--nonce", "0", "--json"], 0),
        (&estimate, 0),
        (&estimate_json, 0),
    ];
    for (args, want) in cases {
        let (code, stderr) = with_closed_stdout(args);
        assert!(!stderr.contains("panicked"), "noncectl {args:?} panicked: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "noncectl {args:?}: {stderr}");
        assert_eq!(code, Some(want), "noncectl {args:?}: {stderr}");
    }
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    let out = Command::new(bin("noncectl"))
        .args(["search", "--block", "pipes", "--difficulty", "8", "--workers", "2", "--launcher", "process"])
        .env("NONCE_LOG", "debug")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("noncectl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() > 3, "debug logs were written: {stderr}");
    assert!(!stderr.contains('\x1b'), "an escape code in logs written to a pipe: {stderr}");
}
