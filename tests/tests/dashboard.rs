//! The dashboard in a real browser: headless chromium (Debian's), driven by playwright-core
//! (npm), against a real `nonced` on loopback with `nonce-worker` processes. The page must
//! show the job, fill its map, show a SIGSTOPped worker stale and its range going to the
//! others, and end with the reference nonce. `scripts/test` installs both and sets
//! `NONCE_TEST_PLAYWRIGHT_DIR` and `NONCE_TEST_CHROMIUM`; without them this test fails.

mod common;
use common::http::{free_port, nonced_in, rpc_over_http, sha256_hex, wait_for_listener};
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The lowest nonce of `sup-a` at difficulty 27 (as in tests/tests/supervision.rs).
const REFERENCE: u64 = 213_623_294;
const ADMIN: &str = "dashboard-admin-token-0123456789abcdef0123456789abcdef012345";

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test, which installs chromium and playwright-core and sets it")
    })
}

#[test]
fn the_dashboard_shows_a_stall_a_reshard_and_the_answer_in_a_real_browser() {
    let playwright = need("NONCE_TEST_PLAYWRIGHT_DIR");
    let chromium = need("NONCE_TEST_CHROMIUM");
    assert!(
        PathBuf::from(&playwright).join("node_modules/playwright-core").exists(),
        "no playwright-core in {playwright}"
    );
    assert!(PathBuf::from(&chromium).exists(), "no chromium at {chromium}");

    let dir = std::env::temp_dir().join(format!("nonced-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let hash = sha256_hex(ADMIN);
    std::fs::write(
        dir.join("nonced.toml"),
        format!(
            "launcher = \"process\"\n[http]\nlisten = \"127.0.0.1:{port}\"\nplain = true\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{hash}\"\n"
        ),
    )
    .expect("config");
    let mut daemon = nonced_in(&dir)
        // The portable kernel keeps the search long enough to watch (~40 s here).
        .env("NONCE_KERNEL", "portable")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nonced starts");
    wait_for_listener(port);
    let started = rpc_over_http(
        port,
        ADMIN,
        "search.start",
        json!({"block": "sup-a", "difficulty": 27, "mode": "lowest", "workers": 3, "threads": 1,
            "heartbeat": "1s", "stall_timeout": "3s"}),
    );
    let job = started["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{started}")).to_string();
    let pids = worker_pids(daemon.id(), 3);
    assert_eq!(pids.len(), 3, "three worker processes");

    let screenshot = std::env::var("NONCE_DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("dashboard.png"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args(["--url", &format!("http://127.0.0.1:{port}"), "--token", ADMIN, "--stop-pid", &pids[1]])
        .args(["--nonce", &REFERENCE.to_string(), "--screenshot"])
        .arg(&screenshot)
        .env("NONCE_PLAYWRIGHT_DIR", &playwright)
        .env("NONCE_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let _ = Command::new("kill").args(["-KILL", &pids[1]]).status();
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser did not see it all (above)");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    // The daemon agrees with what the page showed.
    let r = rpc_over_http(port, ADMIN, "search.wait", json!({"job_id": job, "timeout_s": 30}));
    assert_eq!(r["result"]["result"]["nonce"], json!(REFERENCE), "{r}");
    assert!(r["result"]["result"]["reshards"].as_u64().unwrap_or(0) >= 1, "{r}");
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
