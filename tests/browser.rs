//! Runs the browser suite (`tests/browser/*.test.mjs`): Debian's Chromium,
//! driven by playwright-core, running our rtc.io wire client
//! (`tests/browser/client/`) through the gateway binary built for this test
//! run — recorded, logged and relayed. A failed scenario prints its
//! browsers' consoles. Chromium, Node.js, npm, ffmpeg and nginx-rtmp must be
//! installed (scripts/install-deps.sh does it); anything missing fails this
//! test rather than skipping it.

mod common;

/// Scenarios in the suite; all must run and pass.
const SCENARIOS: usize = 11;

#[test]
fn chromium_peers_through_the_gateway() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed (run scripts/install-deps.sh)"
    );
    common::run_node_suite("browser", "playwright-core", SCENARIOS);
}
