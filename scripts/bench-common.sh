# Sourced by the bench scripts (not run on its own).

# A fresh work directory ($work) with a private copy of the release binary ($bin), built
# first unless CACHEDECK_BIN names one: a shared target dir may be rebuilt under our feet.
bench_binary() {
  if [[ -z "${CACHEDECK_BIN:-}" ]]; then
    cargo build --release --quiet
    CACHEDECK_BIN="${CARGO_TARGET_DIR:-target}/release/cachedeck"
  fi
  work="$(mktemp -d)"
  cp "$CACHEDECK_BIN" "$work/cachedeck"
  bin="$work/cachedeck"
}

# bench_binary, then a sandbox of its own under $work (state, config and home there too, no
# AWS config), stopped and removed on exit.
bench_isolated_sandbox() {
  bench_binary
  export CACHEDECK_SANDBOX_DIR="$work/sandbox" CACHEDECK_STATE_DIR="$work/state"
  export CACHEDECK_CONFIG_DIR="$work/config" HOME="$work/home" AWS_CONFIG_FILE=/nonexistent
  mkdir -p "$CACHEDECK_SANDBOX_DIR" "$CACHEDECK_STATE_DIR" "$CACHEDECK_CONFIG_DIR" "$HOME"
  trap bench_cleanup EXIT
}

bench_cleanup() {
  "$bin" sandbox down >/dev/null 2>&1 || true
  rm -rf "$work"
}
