#!/usr/bin/env bash
# `make bench`: builds in release, then for each mode (memory; Redis on a private
# redis-server on a random port; cluster: three chat-server nodes on one such private Redis)
# starts fresh servers per scenario, runs chat-loadgen against them, and writes
# docs/benchmarks.md from the JSON results.
#
#   bench/run.sh                     every scenario, every mode
#   BENCH_MODES=memory bench/run.sh connect relay      a subset
#
# In cluster mode chat-loadgen gets every node's URL and spreads its clients round-robin:
# the searchers of a match round are on all nodes (and in a second match run, labelled
# cluster-cross, every pair is split across two nodes), each relay pair's two clients and each
# churn couple are on two different nodes, sessions requests alternate between the nodes.
# connect and broadcast are skipped there (see bench/notes.md).
#
# Sizes fit the benchmark machine (2 cores shared by server and load, 20,000 open files per
# process); override with the variables below. Traffic goes to 127.0.0.x only.
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${BENCH_MODES:-memory redis cluster}
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
# Filtered searches scan the shared queue (a Lua script) until a compatible entry: with every
# pair on its own filter that is O(queue) per search, so this run is smaller (bench/notes.md).
CROSS_CLIENTS=${BENCH_CROSS_CLIENTS:-2000}
SESSION_CONCURRENCY=${BENCH_SESSION_CONCURRENCY:-64}
CHURN_CONCURRENCY=${BENCH_CHURN_CONCURRENCY:-100}
NODES=${BENCH_NODES:-3}
# Cross-node relay goes through Redis pub/sub: the cluster ramp starts lower, in finer steps.
CLUSTER_RELAY_START=${BENCH_CLUSTER_RELAY_START:-1000}
CLUSTER_RELAY_STEP=${BENCH_CLUSTER_RELAY_STEP:-1000}
CLUSTER_RELAY_MAX=${BENCH_CLUSTER_RELAY_MAX:-15000}
SECRET=benchmark-only-secret-0123456789abcdef
# The machine is shared with other work (builds, tests): the benchmark's own processes run
# at a higher priority so that work disturbs the figures less. Needs root; else unchanged.
NICE=(nice -n "${BENCH_NICE:--10}")
"${NICE[@]}" true 2>/dev/null || NICE=()

COMMANDS=$OUT/commands.txt
log() { printf '%s\n' "$*" >> "$COMMANDS"; }

cargo build --release -p chat-server -p chat-loadgen
mkdir -p "$OUT/bin"
# Private copies: a rebuild in the shared target directory must not swap binaries mid-run.
cp target/release/chat-server target/release/chat-loadgen "$OUT/bin/"
SERVER_BIN=$OUT/bin/chat-server
LOADGEN=$OUT/bin/chat-loadgen
: > "$COMMANDS"
log "make bench   # = bash bench/run.sh $*"
log "cargo build --release -p chat-server -p chat-loadgen"

SERVER_PIDS=()
REDIS_PID=
REDIS_PORT=
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

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
    echo "server:    chat-server (release, shares the 2 cores with the load generator; cluster mode: $NODES processes and redis-server)"
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

# start_servers MODE: fresh servers (one; $NODES in cluster mode, all on the private Redis,
# emptied first); sets URLS (comma-separated) and SERVER_PIDS.
start_servers() {
  local mode=$1 redis_env=() count=1 node url
  if [ "$mode" != memory ]; then
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    redis_env=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
  fi
  [ "$mode" = cluster ] && count=$NODES
  SERVER_PIDS=()
  for node in $(seq "$count"); do
    "${NICE[@]}" env PORT=0 HOST=127.0.0.1 JWT_SECRET=$SECRET CHAT__RATE__SESSIONS_PER_MINUTE=100000000 \
      CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG=warn "${redis_env[@]}" \
      "$SERVER_BIN" > "$OUT/server-$node.out" 2> "$OUT/server-$mode-$node.err" &
    SERVER_PIDS+=($!)
  done
  URLS=
  for node in $(seq "$count"); do
    url=
    for _ in $(seq 200); do
      url=$(sed -n 's/^listening on \(http:[^ ]*\) storage=.*/\1/p' "$OUT/server-$node.out")
      [ -n "$url" ] && break
      sleep 0.05
    done
    [ -n "$url" ] || { echo "server $node did not start" >&2; cat "$OUT/server-$mode-$node.err" >&2; exit 1; }
    URLS=${URLS:+$URLS,}$url
    log "${NICE[*]} PORT=0 HOST=127.0.0.1 JWT_SECRET=… CHAT__RATE__SESSIONS_PER_MINUTE=100000000 CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG=warn ${redis_env[*]} chat-server   # $(head -1 "$OUT/server-$node.out")"
  done
  sleep 1
}

stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
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

# run MODE SCENARIO ARGS...: one scenario against fresh servers, bounded in time. The
# results are labelled MODE, or RUN_LABEL when set.
run() {
  local mode=$1 scenario=$2; shift 2
  local label=${RUN_LABEL:-$mode}
  quiet
  start_servers "$mode"
  local json="$OUT/$scenario-$label.json" pids
  pids=$(IFS=,; echo "${SERVER_PIDS[*]}")
  log "${NICE[*]} chat-loadgen $scenario --url $URLS --server-pid <pid,...> --label $label --json $json $*"
  echo "== $scenario ($label)"
  if timeout 300 "${NICE[@]}" "$LOADGEN" "$scenario" --url "$URLS" --server-pid "$pids" --label "$label" --json "$json" "$@"; then
    RESULTS+=("$json")
  else
    echo "!! $scenario ($label) failed" >&2
  fi
  stop_servers
}

machine
rm -f "$OUT"/*.json
RESULTS=()
for mode in $MODES; do
  case $mode in
    memory) ;;
    redis|cluster) start_redis ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  for scenario in $SCENARIOS; do
    case $mode/$scenario in
      cluster/connect|cluster/broadcast)
        echo "== $scenario ($mode): skipped (see bench/notes.md)"
        log "# $scenario ($mode): skipped, see the notes"
        continue ;;
      cluster/match)
        # Plain searches (comparable with the other modes: the target), then every pair
        # split across two nodes by a filter only the two match (informational).
        run "$mode" match --clients "$MATCH_CLIENTS" --rounds 5 --procs 1 --sources "$SOURCES"
        RUN_LABEL=cluster-cross run "$mode" match --clients "$CROSS_CLIENTS" --rounds 5 --procs 1 \
          --sources "$SOURCES" --cross-node-pairs
        continue ;;
      cluster/relay)
        run "$mode" relay --pairs "$RELAY_PAIRS" --ramp --start-rate "$CLUSTER_RELAY_START" --step "$CLUSTER_RELAY_STEP" \
          --max-rate "$CLUSTER_RELAY_MAX" --step-secs 5 --p99-bound-ms 10 --procs 1 --sources "$SOURCES"
        continue ;;
    esac
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
  [ "$mode" = memory ] || stop_redis
done

"$LOADGEN" report --out "$PAGE" --machine "$OUT/machine.txt" --commands "$COMMANDS" --notes bench/notes.md "${RESULTS[@]}"
echo "wrote $PAGE"
