#!/usr/bin/env bash
# `make bench`: builds in release, then for each storage mode (memory, then Redis on a
# private redis-server on a random port) starts a fresh chat-server per scenario, runs
# chat-loadgen against it, and writes docs/benchmarks.md from the JSON results.
#
#   bench/run.sh                     every scenario, both modes
#   BENCH_MODES=memory bench/run.sh connect relay      a subset
#
# Sizes fit the benchmark machine (2 cores shared by server and load, 20,000 open files per
# process); override with the variables below. Traffic goes to 127.0.0.x only.
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${BENCH_MODES:-memory redis}
SCENARIOS=${*:-connect broadcast relay match sessions churn}
OUT=${BENCH_OUT:-target/bench}
PAGE=${BENCH_PAGE:-docs/benchmarks.md}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-19000}
SOURCES=${BENCH_SOURCES:-8}
RELAY_PAIRS=${BENCH_RELAY_PAIRS:-200}
RELAY_START=${BENCH_RELAY_START:-5000}
RELAY_STEP=${BENCH_RELAY_STEP:-5000}
RELAY_MAX=${BENCH_RELAY_MAX:-40000}
MATCH_CLIENTS=${BENCH_MATCH_CLIENTS:-10000}
SESSION_CONCURRENCY=${BENCH_SESSION_CONCURRENCY:-64}
CHURN_CONCURRENCY=${BENCH_CHURN_CONCURRENCY:-100}
SECRET=benchmark-only-secret-0123456789abcdef
# The machine is shared with other work (builds, tests): the benchmark's own processes run
# at a higher priority so that work disturbs the figures less. Needs root; else unchanged.
NICE=(nice -n "${BENCH_NICE:--10}")
"${NICE[@]}" true 2>/dev/null || NICE=()

cargo build --release -p chat-server -p chat-loadgen
mkdir -p "$OUT/bin"
# Private copies: a rebuild in the shared target directory must not swap binaries mid-run.
cp target/release/chat-server target/release/chat-loadgen "$OUT/bin/"
SERVER_BIN=$OUT/bin/chat-server
LOADGEN=$OUT/bin/chat-loadgen
COMMANDS=$OUT/commands.txt
: > "$COMMANDS"
log "make bench   # = bash bench/run.sh $*"
log "cargo build --release -p chat-server -p chat-loadgen"

SERVER_PID=
REDIS_PID=
REDIS_PORT=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >> "$COMMANDS"; }

machine() {
  {
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel:    $(uname -srm)"
    echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores visible)"
    echo "memory:    $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "open files per process: $(ulimit -n)"
    echo "rustc:     $(rustc -V)"
    echo "redis:     $(redis-server --version 2>/dev/null | head -1 || echo none)"
    echo "commit:    $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes in the work tree')"
    echo "server:    chat-server (release, shares the 2 cores with the load generator)"
  } > "$OUT/machine.txt"
}

free_port() {
  local port
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    [ "$port" -ne 6379 ] || continue
    ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$port"; return; }
  done
}

start_redis() {
  REDIS_PORT=$(free_port)
  "${NICE[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --maxclients 10000 --loglevel warning > "$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  log "${NICE[*]} redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "redis-server did not start" >&2; exit 1
}

stop_redis() {
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
}

# start_server MODE: a fresh server; sets URL and SERVER_PID.
start_server() {
  local mode=$1 redis_env=()
  if [ "$mode" = redis ]; then
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    redis_env=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
  fi
  "${NICE[@]}" env PORT=0 HOST=127.0.0.1 JWT_SECRET=$SECRET CHAT__RATE__SESSIONS_PER_MINUTE=100000000 \
    CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG=warn "${redis_env[@]}" \
    "$SERVER_BIN" > "$OUT/server.out" 2> "$OUT/server-$mode.err" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    URL=$(sed -n 's/^listening on \(http:[^ ]*\) storage=.*/\1/p' "$OUT/server.out")
    [ -n "$URL" ] && break
    sleep 0.05
  done
  [ -n "$URL" ] || { echo "server did not start" >&2; cat "$OUT/server-$mode.err" >&2; exit 1; }
  log "${NICE[*]} PORT=0 HOST=127.0.0.1 JWT_SECRET=… CHAT__RATE__SESSIONS_PER_MINUTE=100000000 CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG=warn ${redis_env[*]} chat-server   # $(head -1 "$OUT/server.out")"
  sleep 1
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# The machine is shared (other builds may run): wait up to BENCH_QUIET_WAIT seconds for
# no compiler to be running, and log the load seen at the start of each scenario.
quiet() {
  local waited=0
  while pgrep -x 'rustc|cc|ld|cargo' >/dev/null 2>&1 && [ "$waited" -lt "${BENCH_QUIET_WAIT:-180}" ]; do
    sleep 5; waited=$((waited + 5))
  done
  log "# load average before the next run: $(cut -d' ' -f1-3 /proc/loadavg)$(pgrep -x 'rustc|cc|ld|cargo' >/dev/null 2>&1 && echo ' (other builds were running)')"
}

# run MODE SCENARIO ARGS...: one scenario against a fresh server, bounded in time.
run() {
  local mode=$1 scenario=$2; shift 2
  quiet
  start_server "$mode"
  local json="$OUT/$scenario-$mode.json"
  log "${NICE[*]} chat-loadgen $scenario --url $URL --server-pid <pid> --label $mode --json $json $*"
  echo "== $scenario ($mode)"
  if timeout 300 "${NICE[@]}" "$LOADGEN" "$scenario" --url "$URL" --server-pid "$SERVER_PID" --label "$mode" --json "$json" "$@"; then
    RESULTS+=("$json")
  else
    echo "!! $scenario ($mode) failed" >&2
  fi
  stop_server
}

machine
rm -f "$OUT"/*.json
RESULTS=()
for mode in $MODES; do
  [ "$mode" = redis ] && start_redis
  for scenario in $SCENARIOS; do
    case $scenario in
      connect)   run "$mode" connect --clients "$IDLE_CLIENTS" --hold 10 --procs 2 --sources "$SOURCES" ;;
      broadcast) run "$mode" broadcast --clients "$IDLE_CLIENTS" --rounds 5 --procs 2 --sources "$SOURCES" ;;
      relay)     run "$mode" relay --pairs "$RELAY_PAIRS" --ramp --start-rate "$RELAY_START" --step "$RELAY_STEP" \
                   --max-rate "$RELAY_MAX" --step-secs 5 --p99-bound-ms 10 --procs 1 --sources "$SOURCES" ;;
      match)     run "$mode" match --clients "$MATCH_CLIENTS" --rounds 5 --procs 1 --sources "$SOURCES" ;;
      sessions)  run "$mode" sessions --concurrency "$SESSION_CONCURRENCY" --duration 10 --procs 1 --sources "$SOURCES" ;;
      churn)     run "$mode" churn --concurrency "$CHURN_CONCURRENCY" --duration 30 --warmup 10 --messages 3 --procs 1 --sources "$SOURCES" ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
  [ "$mode" = redis ] && stop_redis
done

"$LOADGEN" report --out "$PAGE" --machine "$OUT/machine.txt" --commands "$COMMANDS" --notes bench/notes.md "${RESULTS[@]}"
echo "wrote $PAGE"
