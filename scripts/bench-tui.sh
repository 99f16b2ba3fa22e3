#!/usr/bin/env bash
# Benchmarks the TUI against an isolated sandbox with ≥ 10 caches polled every second:
# time to first frame, idle CPU % of one core, and RSS — each beside a baseline measured in
# the same run (the machine is shared and noisy).
#
#   scripts/bench-tui.sh            # builds --release first
#   CACHEDECK_BIN=path scripts/bench-tui.sh
#   BENCH_SECONDS=30 scripts/bench-tui.sh
#
# Targets: first frame ≤ 100 ms, idle CPU ≤ 1 % of a core, RSS ≤ 40 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-common.sh
bench_isolated_sandbox

echo "starting the sandbox…" >&2
"$bin" sandbox up --keys 5000 >/dev/null

# sandbox-dev's own caches plus static caches on the ECS-style node (plain, no auth) make
# ≥ 10 caches, every node polled each second.
python3 - "$CACHEDECK_SANDBOX_DIR/state.json" "$work/names" > "$work/bench.toml" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
port = None
for cache in state["caches"]:
    if cache["env"] == "sandbox-dev" and cache["kind"] == "ecs-service":
        port = cache["shards"][0]["nodes"][0]["port"]
print('[environments.sandbox-dev]\nprovider = "sandbox"\nprotection = "open"\n')
for i in range(1, 9):
    print(f'[[environments.sandbox-dev.caches]]\nname = "bench-{i:02}"\nurl = "redis://127.0.0.1:{port}"\n')
names = [c["name"] for c in state["caches"] if c["env"] == "sandbox-dev"]
names += [f"bench-{i:02}" for i in range(1, 9)]
open(sys.argv[2], "w").write(" ".join(names))
open(sys.argv[2] + ".port", "w").write(str(port))
PY
export CACHEDECK_CONFIG="$work/bench.toml"

python3 - "$bin" "${BENCH_SECONDS:-20}" "$work/names" <<'PY'
import fcntl, os, pty, re, select, struct, sys, termios, time

bin_path, seconds, names_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HZ = os.sysconf("SC_CLK_TCK")

def spawn(argv):
    """Runs argv in a 100×30 PTY; returns (pid, master fd, start time)."""
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.environ["TERM"] = "xterm-256color"
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return pid, fd, t0

def read_until(fd, pattern, timeout, buf=b""):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
            if re.search(pattern, buf):
                return buf, time.perf_counter()
    raise SystemExit(f"timed out waiting for {pattern!r}; got {buf[-400:]!r}")

def drain(fd, secs):
    end = time.perf_counter() + secs
    n = 0
    while time.perf_counter() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                n += len(os.read(fd, 65536))
            except OSError:
                break
    return n

def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def info_calls(port):
    """INFO calls the ECS-style node has served (9 of the caches poll it)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        # A bulk string: "$<len>\r\n<body>\r\n".
        while b"\r\n" not in data or len(data) < int(data[1:data.index(b"\r\n")]) + data.index(b"\r\n") + 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.search(rb"cmdstat_info:calls=(\d+)", data)
    return int(m.group(1)) if m else 0

def machine_busy():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)

# Baseline 1: the same PTY path with a process that prints at once (measurement overhead).
base = []
for _ in range(5):
    pid, fd, t0 = spawn(["/bin/echo", "environments"])
    _, t1 = read_until(fd, rb"environments", 5)
    base.append((t1 - t0) * 1000)
    os.waitpid(pid, 0)
    os.close(fd)

# The TUI: first frame = the title bar and the environments panel are on the screen.
firsts = []
for _ in range(3):
    pid, fd, t0 = spawn([bin_path])
    _, t1 = read_until(fd, rb"environments \(", 10)
    firsts.append((t1 - t0) * 1000)
    os.write(fd, b"q")
    os.waitpid(pid, 0)
    os.close(fd)

# Idle: the caches view of sandbox-dev, every node of ≥ 10 caches polled each second.
pid, fd, _ = spawn([bin_path])
buf, _ = read_until(fd, rb"environments \(", 10)
os.write(fd, b":caches sandbox-dev\r")
# Wait until discovery has listed the last static cache, then count the caches on screen.
buf, _ = read_until(fd, rb"bench-08", 30)
# The list is sorted and arrives in one piece: with its last static cache shown, all are.
names = open(names_file).read().split()
caches = len(names)
drain(fd, 5)  # warm up: connections made, first samples in
ecs_port = int(open(names_file + ".port").read())
i0 = info_calls(ecs_port)
c0, m0, w0 = cpu_ticks(pid), machine_busy(), time.perf_counter()
out_bytes = drain(fd, seconds)
c1, m1, w1 = cpu_ticks(pid), machine_busy(), time.perf_counter()
i1 = info_calls(ecs_port)
rss = rss_mb(pid)
os.write(fd, b"q")
os.waitpid(pid, 0)

# Baseline 2: an idle `sleep` over the same window length, for RSS and CPU floor.
sleeper = os.spawnvp(os.P_NOWAIT, "sleep", ["sleep", "30"])
time.sleep(1)
s0 = cpu_ticks(sleeper); time.sleep(2); s1 = cpu_ticks(sleeper)
sleep_rss = rss_mb(sleeper)
os.kill(sleeper, 9); os.waitpid(sleeper, 0)

cpu = (c1 - c0) / HZ / (w1 - w0) * 100
busy = (m1[0] - m0[0]) / max(1, (m1[1] - m0[1])) * 100
ncpu = os.cpu_count()
print(f"caches polled each second : {caches} ({', '.join(names)})")
print(f"  INFO/s at the ECS node  : {(i1 - i0) / (w1 - w0):.1f} (9 of the caches are on it)")
print(f"time to first frame       : {min(firsts):.1f} ms best, {sorted(firsts)[len(firsts)//2]:.1f} ms median (target ≤ 100 ms)")
print(f"  baseline (echo in a PTY): {min(base):.1f} ms")
print(f"idle CPU                  : {cpu:.2f} % of one core over {w1 - w0:.0f} s (target ≤ 1 %)")
print(f"  baseline (sleep)        : {(s1 - s0) / HZ / 2 * 100:.2f} %; machine busy {busy:.0f} % of {ncpu} cores meanwhile")
print(f"terminal output           : {out_bytes / (w1 - w0) / 1024:.1f} KiB/s")
print(f"RSS                       : {rss:.1f} MB (target ≤ 40 MB)")
print(f"  baseline (sleep)        : {sleep_rss:.1f} MB")
PY
