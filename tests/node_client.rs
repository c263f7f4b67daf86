//! Runs the Node `socket.io-client` suite (`tests/node/*.test.mjs`) against
//! the gateway binary built for this test run: long-polling, WebSocket and
//! the polling→WebSocket upgrade, CORS, JWT connect errors and SIGTERM.
//! Node.js and npm must be installed (scripts/install-deps.sh does it); a
//! missing Node fails this test rather than skipping it.

use std::path::Path;
use std::process::Command;

#[test]
fn node_socket_io_client_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/socket.io/package.json").exists() || !dir.join("node_modules/socket.io-client").exists()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (run scripts/install-deps.sh)");
        assert!(status.success(), "npm ci failed");
    }
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("GATEWAY_BIN", env!("CARGO_BIN_EXE_rtcio-gateway"))
        .output()
        .expect("node is installed (run scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Node socket.io-client suite failed");
    assert!(stdout.contains("pass 16"), "expected all 16 Node tests to run and pass");
}
