#!/usr/bin/env bash
# Runs every test of rtcio-gateway: unit tests, the Rust socket.io client
# integration tests, the CLI tests and the Node socket.io-client suite.
# Installs what is missing first (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --locked "$@"
# The benchmarks are programs run by hand (bench/run-*.sh); make sure they still compile.
cargo test --locked --benches --no-run
