#!/usr/bin/env bash
# Recording-capacity benchmark: the gateway pinned to CPU 0, the load
# generator (publishers + the GStreamer-only floor) to CPU 1.
# Usage: bench/run-recording.sh [extra args for the load generator]
#   e.g. bench/run-recording.sh --streams 10,25 --seconds 20
# Environment: STREAMS="10 25 50 100" (default), SECONDS_PER_N=20, PORT=3901,
# KEEP=1 keeps the recordings directory, GATEWAY_BIN=path runs another build of
# the gateway (e.g. a copy of an earlier commit's, to compare in one sitting).
# Rate limiting is turned off (many publishers' ICE trickle from one address);
# WebRTC is bound to loopback; everything else is the default configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for tool in ffprobe curl taskset; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build --locked --release --bin rtcio-gateway
  GATEWAY_BIN=target/release/rtcio-gateway
fi
BENCH_BIN=$(cargo bench --locked --bench recording --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*recording-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$BENCH_BIN" ] || { echo "no bench binary" >&2; exit 1; }
PORT=${PORT:-3901}
STREAMS=${STREAMS:-10 25 50 100}
SECONDS_PER_N=${SECONDS_PER_N:-20}
REC=$(mktemp -d /tmp/rtcio-bench-recordings.XXXXXX)
RTCIO_GATEWAY_SIGNALING__RATE_LIMIT_PER_SEC=0 RTCIO_GATEWAY_RECORDING__UDP_BIND=127.0.0.1 \
RTCIO_GATEWAY_LOG__LEVEL=${GATEWAY_LOG:-warn,rtc=error,rtc_ice=error,rtc_dtls=error} \
  taskset -c 0 "$GATEWAY_BIN" serve --listen 127.0.0.1:$PORT --recordings "$REC" &
GW=$!
cleanup() {
  kill $GW 2>/dev/null || true
  wait $GW 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "recordings kept in $REC" >&2; else rm -rf "$REC"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
echo "gateway: $GATEWAY_BIN" >&2
taskset -c 1 "$BENCH_BIN" --url http://127.0.0.1:$PORT --pid $GW --recordings "$REC" \
  --streams "$(echo $STREAMS | tr ' ' ',')" --seconds "$SECONDS_PER_N" "$@"
