//! Runs the browser suite (`tests/browser/*.test.mjs`): Debian's Chromium,
//! driven by playwright-core, running our rtc.io wire client
//! (`tests/browser/client/`) through the gateway binary built for this test
//! run — recorded, logged and relayed. Chromium, Node.js, npm, ffmpeg and
//! nginx-rtmp must be installed (scripts/install-deps.sh does it); anything
//! missing fails this test rather than skipping it.

use std::path::Path;
use std::process::Command;

/// Scenarios in the suite; all must run and pass.
const SCENARIOS: usize = 6;

#[test]
fn chromium_peers_through_the_gateway() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (run scripts/install-deps.sh)");
        assert!(status.success(), "npm ci failed");
    }
    assert!(Path::new("/usr/bin/chromium").exists(), "Chromium is not installed (run scripts/install-deps.sh)");
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("GATEWAY_BIN", env!("CARGO_BIN_EXE_rtcio-gateway"))
        .output()
        .expect("node is installed (run scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser suite failed (the browser consoles of failed scenarios are above)");
    assert!(
        stdout.contains(&format!("pass {SCENARIOS}")),
        "expected all {SCENARIOS} browser scenarios to run and pass"
    );
}
