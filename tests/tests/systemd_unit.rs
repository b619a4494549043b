//! The systemd unit in infra/systemd is accepted by systemd itself.

mod common;
use common::bin;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let unit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/systemd/nonced.service");
    let text = std::fs::read_to_string(&unit).expect("the unit file");
    assert!(text.contains("Type=notify"));
    for needed in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "RuntimeDirectory=",
        "StateDirectory=",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
    // Point ExecStart at the binary just built: verify checks that it exists and is executable.
    let nonced = bin("nonced");
    let dir = std::env::temp_dir().join(format!("nonced-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let copy = dir.join("nonced.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/nonced", nonced.to_str().expect("utf-8")))
        .expect("write");
    let out =
        Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect(
            "systemd-analyze must be installed (scripts/test installs it from Debian's systemd package)",
        );
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("nonced.service:"), "systemd-analyze verify: {stderr}");
}
