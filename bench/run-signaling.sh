#!/usr/bin/env bash
# Signaling benchmark: the gateway pinned to CPU 0, the load generator to CPU 1.
# Usage: bench/run-signaling.sh [extra args for the load generator, e.g. --phases relay]
# Rate limiting is turned off for the run (a benchmark sends far above any
# honest client's rate); everything else is the default configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --locked --release --bin rtcio-gateway
cargo bench --locked --bench signaling --no-run 2>/dev/null
BENCH_BIN=$(ls -t target/release/deps/signaling-* | grep -v '\.d$' | head -1)
PORT=${PORT:-3900}
RTCIO_GATEWAY_SIGNALING__RATE_LIMIT_PER_SEC=0 RTCIO_GATEWAY_LOG__LEVEL=warn \
  taskset -c 0 target/release/rtcio-gateway serve --listen 127.0.0.1:$PORT &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
taskset -c 1 "$BENCH_BIN" --url http://127.0.0.1:$PORT --pid $GW "$@"
