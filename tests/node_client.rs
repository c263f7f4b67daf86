//! Runs the Node `socket.io-client` suite (`tests/node/*.test.mjs`) against
//! the gateway binary built for this test run: long-polling, WebSocket and
//! the polling→WebSocket upgrade, CORS, JWT connect errors and SIGTERM.
//! Node.js and npm must be installed (scripts/install-deps.sh does it); a
//! missing Node fails this test rather than skipping it.

mod common;

#[test]
fn node_socket_io_client_suite() {
    common::ensure_node_modules();
    common::run_node_suite("node", "socket.io-client", 16);
}
