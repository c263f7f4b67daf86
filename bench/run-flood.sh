#!/usr/bin/env bash
# Room-flood benchmark (bench/flood.rs): one release gateway per configuration,
# pinned to CPU 0, the flood (30 hostile clients, 20 s) and one honest
# publisher from CPU 1, in the same run:
#   baseline      admission off: every room joined at once, no caps, no
#                 per-address room-creation limit (the behaviour before it existed)
#   admission     the default configuration, with loopback clients limited per
#                 address as remote clients are (everything here is on 127.0.0.1)
#   no-addr-limit the default configuration as it treats loopback: no per-address
#                 limit (a flood from many addresses: only the recorder's own policy acts)
# Usage: bench/run-flood.sh [extra args for bench/flood.rs, e.g. --rounds 2 --hold-ms 2500]
# Environment: CONFIGS="baseline admission no-addr-limit" (default), PORT=3902.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for tool in curl taskset; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
cargo build --locked --release --bin rtcio-gateway
BENCH_BIN=$(cargo bench --locked --bench flood --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*flood-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$BENCH_BIN" ] || { echo "no bench binary" >&2; exit 1; }
PORT=${PORT:-3902}
CONFIGS=${CONFIGS:-baseline admission no-addr-limit}

config_env() {
  case "$1" in
    baseline) echo RTCIO_GATEWAY_RECORDING__JOIN_AFTER_MS=0 RTCIO_GATEWAY_RECORDING__MAX_ROOMS=0 \
      RTCIO_GATEWAY_RECORDING__MAX_UNANSWERED_ROOMS=0 RTCIO_GATEWAY_RECORDING__UNANSWERED_LEAVE_SECS=0 \
      RTCIO_GATEWAY_SIGNALING__ROOM_CREATIONS_PER_MINUTE=0 ;;
    # The flood and the honest publisher are on 127.0.0.1, which the per-address
    # limit leaves alone by default: limit it here, as remote clients would be.
    admission) echo RTCIO_GATEWAY_SIGNALING__ROOM_CREATIONS_LIMIT_LOOPBACK=true ;;
    no-addr-limit) echo RTCIO_GATEWAY_SIGNALING__ROOM_CREATIONS_PER_MINUTE=0 ;;
    *) echo "unknown configuration $1" >&2; exit 1 ;;
  esac
}

GW=
REC=
cleanup() {
  [ -n "$GW" ] && { kill "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; }
  [ -n "$REC" ] && rm -rf "$REC"
  return 0
}
trap cleanup EXIT
for cfg in $CONFIGS; do
  REC=$(mktemp -d /tmp/rtcio-bench-flood.XXXXXX)
  # shellcheck disable=SC2046
  env $(config_env "$cfg") RTCIO_GATEWAY_RECORDING__UDP_BIND=127.0.0.1 \
    RTCIO_GATEWAY_LOG__LEVEL=${GATEWAY_LOG:-warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtcio_gateway::participant=error} \
    taskset -c 0 target/release/rtcio-gateway serve --listen 127.0.0.1:$PORT --recordings "$REC" &
  GW=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
  taskset -c 1 "$BENCH_BIN" --url http://127.0.0.1:$PORT --pid "$GW" --recordings "$REC" --label "$cfg" "$@"
  kill "$GW"; wait "$GW" 2>/dev/null || true
  GW=
  rm -rf "$REC"; REC=
done
