#!/usr/bin/env bash
# Sets up cachedeck on this machine and opens it on the local sandbox: installs a real
# valkey-server (scripts/setup-tools.sh), builds cachedeck, starts the sandbox estate
# (idempotent), then opens the TUI — or lists the caches when there is no terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
# The binary searches no directory fixed at build time: name the tools directory.
export CACHEDECK_TOOLS_DIR="${CACHEDECK_TOOLS_DIR:-$PWD/.tools}"
cargo build --locked --bin cachedeck
bin="${CARGO_TARGET_DIR:-target}/debug/cachedeck"
"$bin" sandbox up
if [ -t 1 ]; then
  exec "$bin" "$@"
else
  exec "$bin" caches "$@"
fi
