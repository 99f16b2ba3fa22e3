#!/usr/bin/env bash
# The full hardening sweep (tests/it/harden), too long for CI: every mutating runbook of the
# catalog stopped by SIGKILL, SIGTERM and SIGHUP after every journal record and at each of
# its hook's inside points, then resumed; the property tests with many more cases; the
# hostile key names through every output format in more cases. CI runs a slice of the same
# tests. Prints the summary at the end. Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
export CACHEDECK_TOOLS_DIR="$PWD/.tools"
export CACHEDECK_MOTO_SERVER="${CACHEDECK_MOTO_SERVER:-$PWD/.tools/venv/bin/moto_server}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CACHEDECK_CONFIG_DIR="$scratch/config" CACHEDECK_STATE_DIR="$scratch/state"
export AWS_CONFIG_FILE="$scratch/aws-config" AWS_SHARED_CREDENTIALS_FILE="$scratch/aws-credentials"
unset CACHEDECK_CONFIG AWS_PROFILE
export CACHEDECK_SOAK=1
export CACHEDECK_HARDEN_SUMMARY="$scratch/harden-summary.txt"
start=$(date +%s)
cargo test --locked --test it harden:: -- --test-threads=2 "$@"
echo "soak: $(( $(date +%s) - start )) s"
scripts/harden-summary.sh
