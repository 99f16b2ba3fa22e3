#!/usr/bin/env bash
# Benchmarks `cachedeck exec` against an isolated sandbox: 50 MB of command output through
# ECS Exec (the sandbox's agent, the data-channel protocol, the pty, the exit marker) beside
# `cat` of the same file locally, the peak RSS of `cachedeck exec` while it streams, and the
# time from Enter to the first output byte. Each figure beside its baseline from the same run
# (the machine is shared and noisy).
#
#   scripts/bench-exec.sh              # builds --release first
#   CACHEDECK_BIN=path scripts/bench-exec.sh
#   BENCH_MB=50 BENCH_RUNS=3 scripts/bench-exec.sh
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-common.sh
mb="${BENCH_MB:-50}"
runs="${BENCH_RUNS:-3}"
bench_isolated_sandbox

echo "starting the sandbox…" >&2
"$bin" sandbox up --keys 200 >/dev/null

# Text (base64 lines): what a command prints through a terminal.
head -c $((mb * 1000 * 1000 * 3 / 4)) /dev/urandom | base64 -w 100 > "$work/data.txt"

python3 - "$bin" "$work/data.txt" "$runs" <<'PY'
import hashlib, os, statistics, subprocess, sys, time

bin_, data, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(data)
want = hashlib.sha256(open(data, "rb").read()).hexdigest()
exec_ = [bin_, "exec", "--env", "sandbox-dev", "--cache", "orders", "--"]

peak_kb = [0]

def watch_hwm(pid, stop):
    """Keeps the process's VmHWM (peak RSS) while it runs."""
    while not stop.is_set():
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    peak_kb[0] = max(peak_kb[0], int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)

def stream(argv, watch=False):
    """Runs argv, hashing stdout as it comes; returns (seconds, bytes, sha, exit code)."""
    import threading
    h = hashlib.sha256()
    n = 0
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    stop = threading.Event()
    w = threading.Thread(target=watch_hwm, args=(p.pid, stop)) if watch else None
    if w:
        w.start()
    while True:
        chunk = p.stdout.read(1 << 16)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    code = p.wait()
    stop.set()
    if w:
        w.join()
    return time.perf_counter() - t, n, h.hexdigest(), code

def first_byte(argv):
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    p.stdout.read(1)
    took = time.perf_counter() - t
    p.stdout.read()
    p.wait()
    return took

local, remote = [], []
for i in range(runs):
    s, n, sha, code = stream(["cat", data])
    assert (n, sha, code) == (size, want, 0), "local cat"
    local.append(s)
    s, n, sha, code = stream(exec_ + ["cat", data], watch=True)
    assert code == 0, f"cachedeck exec exited {code}"
    assert (n, sha) == (size, want), f"output differs: {n} bytes of {size}"
    remote.append(s)
rss_mb = peak_kb[0] / 1024

mib = size / (1 << 20)
l, r = statistics.median(local), statistics.median(remote)
print(f"output: {size / 1e6:.1f} MB, byte-identical and in order through cachedeck exec ({runs} runs, medians)")
print(f"  cat locally:           {l * 1000:8.1f} ms  {mib / l:8.1f} MiB/s")
print(f"  cachedeck exec cat:    {r * 1000:8.1f} ms  {mib / r:8.1f} MiB/s  ({r / l:.0f}x the local cat)")
print(f"  peak RSS (VmHWM) of cachedeck exec, the sandbox agent in-process: {rss_mb:.1f} MiB for {mib:.0f} MiB streamed")

fb_local = statistics.median(first_byte(["sh", "-c", "echo x"]) for _ in range(5))
fb = statistics.median(first_byte(exec_ + ["echo", "x"]) for _ in range(5))
print(f"time from Enter to the first output byte (median of 5):")
print(f"  sh -c 'echo x' locally:        {fb_local * 1000:7.1f} ms")
print(f"  cachedeck exec -- echo x:      {fb * 1000:7.1f} ms  (discovery, ExecuteCommand, WebSocket, handshake, pty)")
PY
