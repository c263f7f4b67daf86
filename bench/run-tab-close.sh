#!/usr/bin/env bash
# Tab-close benchmark (bench/tab-close.mjs): Chromium with the rtc.io test
# client publishes camera + microphone, its tab is closed, and the time from
# the close to a finished `end_reason: peer-left` manifest is measured, N
# times on each server: `serve` (our signaling) and `join` on the Node
# reference rtc.io server (tests/node/reference-server.mjs).
# Usage: bench/run-tab-close.sh [--runs N] [--servers serve,node] [--log-dir DIR]
# Environment: GATEWAY_BIN=path runs another build of the gateway (e.g. a copy
# of an earlier commit's, to compare in one sitting); otherwise the debug build
# of this tree is built and used (the time measured is timeouts and
# signaling, not CPU: the debug build is what the browser tests use too).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in node /usr/bin/chromium; do
  command -v $tool >/dev/null || { echo "$tool is needed (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -d tests/browser/node_modules/playwright-core ] && [ -d tests/node/node_modules/socket.io ] \
  || bash scripts/install-deps.sh
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build --locked --bin rtcio-gateway
  GATEWAY_BIN=${CARGO_TARGET_DIR:-target}/debug/rtcio-gateway
fi
echo "gateway: $GATEWAY_BIN" >&2
GATEWAY_BIN=$GATEWAY_BIN exec node bench/tab-close.mjs "$@"
