#!/usr/bin/env bash
# Clock-drift benchmark (bench/drift.rs): two sync-mark publishers recorded
# for MINUTES (10) in one room — one as encoded (the baseline), one whose
# audio clock runs PPM (100) fast and video clock PPM slow — then the A/V
# offset and the wall-clock error of each file at its start and end, and
# their slopes per hour. Needs nothing running; about MINUTES + 1 minutes.
# Usage: bench/run-drift.sh [--minutes 10] [--ppm 100] [--video vp8|h264] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench drift -- "$@"
