#!/usr/bin/env bash
# The TTL audit benchmark (issue 5): audit vs `valkey-cli --bigkeys` vs a bare pipelined
# SCAN + PTTL + TYPE loop on a 1M-key keyspace, paced-mode accuracy, and the audit's peak
# RSS at 10M keys — one run, real valkey-server on loopback, optimised build.
#   BENCH_KEYS=1000000 BENCH_BIG_KEYS=10000000 BENCH_PACED_RATE=200000 scripts/bench-audit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec cargo bench --bench audit -- "$@"
