#!/usr/bin/env bash
# Sets up everything the tests need (idempotent) and runs them: formatting, lints, then the
# whole test suite against real valkey-server processes and a local moto server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
export CACHEDECK_TOOLS_DIR="$PWD/.tools"
export CACHEDECK_MOTO_SERVER="${CACHEDECK_MOTO_SERVER:-$PWD/.tools/venv/bin/moto_server}"
# Tests never touch the user's own config, state or AWS profiles.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CACHEDECK_CONFIG_DIR="$scratch/config" CACHEDECK_STATE_DIR="$scratch/state"
export AWS_CONFIG_FILE="$scratch/aws-config" AWS_SHARED_CREDENTIALS_FILE="$scratch/aws-credentials"
unset CACHEDECK_CONFIG AWS_PROFILE

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
export CACHEDECK_HARDEN_SUMMARY="$scratch/harden-summary.txt"
cargo test --locked "$@"
scripts/harden-summary.sh
