#!/usr/bin/env bash
# Builds and runs the gateway with its embedded defaults (listen 0.0.0.0:3000),
# installing what is missing first. Extra arguments go to `rtcio-gateway serve`,
# e.g. scripts/run.sh --config deploy/gateway.toml
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --locked --release -- serve "$@"
