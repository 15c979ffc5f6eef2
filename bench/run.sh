#!/usr/bin/env bash
# `make bench`: builds in release, then for each mode (memory; redis: Redis on a private
# redis-server on a random port; cluster: three chat-server nodes on one such private Redis;
# rcluster: three chat-server nodes on a private three-master Redis Cluster,
# redis-cluster://) starts fresh servers per scenario, runs chat-loadgen against them, and
# writes docs/benchmarks.md from the JSON results.
#
#   bench/run.sh                     every scenario, every mode
#   BENCH_MODES=memory bench/run.sh connect relay      a subset
#
# In cluster and rcluster modes chat-loadgen gets every node's URL and spreads its clients
# round-robin: the searchers of a match round are on all nodes, each relay pair's two clients
# and each churn couple are on two different nodes, sessions requests alternate between the
# nodes. connect and broadcast are skipped there (see bench/notes.md).
#
# The scenario `filtered` is match with every pair on a filter value of its own
# (`--pair-filters`): labelled <mode>-filtered on one node; on three nodes each pair is also
# split across two nodes, labelled cluster-cross / rcluster-cross.
#
# In the Redis modes chat-loadgen also reads INFO commandstats (every master of the cluster)
# around each match round and relay step: Redis commands per search and per delivered message.
#
# Sizes fit the benchmark machine (2 cores shared by server and load, 20,000 open files per
# process); override with the variables below. Traffic goes to 127.0.0.x only.
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${BENCH_MODES:-memory redis cluster rcluster}
SCENARIOS=${*:-connect broadcast relay match filtered sessions churn}
OUT=${BENCH_OUT:-target/bench}
PAGE=${BENCH_PAGE:-docs/benchmarks.md}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-19000}
SOURCES=${BENCH_SOURCES:-8}
RELAY_PAIRS=${BENCH_RELAY_PAIRS:-200}
RELAY_START=${BENCH_RELAY_START:-5000}
RELAY_STEP=${BENCH_RELAY_STEP:-5000}
RELAY_MAX=${BENCH_RELAY_MAX:-40000}
MATCH_CLIENTS=${BENCH_MATCH_CLIENTS:-10000}
# Filtered matching (every pair on a filter value of its own). The Redis queue is indexed by
# filter value, so this is as large as the plain run (bench/notes.md).
CROSS_CLIENTS=${BENCH_CROSS_CLIENTS:-10000}
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
# rcluster: the masters' pids and ports, and the directory of their nodes-<port>.conf.
CLUSTER_PIDS=()
CLUSTER_PORTS=()
CLUSTER_DIR=
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}" "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "$CLUSTER_DIR" ]; then rm -rf "$CLUSTER_DIR"; fi
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
    echo "server:    chat-server (release, shares the 2 cores with the load generator; cluster mode: $NODES processes and one redis-server; rcluster mode: $NODES processes and a Redis Cluster of 3 redis-server masters)"
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

# A private Redis Cluster of three masters, no replicas, no persistence, each with its
# cluster bus on a port of its own; ready once every master says cluster_state:ok.
start_redis_cluster() {
  local port bus ready info used=" "
  CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench-cluster.XXXXXX")
  CLUSTER_PORTS=()
  CLUSTER_PIDS=()
  # Every port picked here differs from the others (the servers may not listen yet).
  for _ in 1 2 3; do
    port=$(free_port)
    while [[ $used == *" $port "* ]]; do port=$(free_port); done
    used+="$port "
    bus=$(free_port)
    while [[ $used == *" $bus "* ]]; do bus=$(free_port); done
    used+="$bus "
    "${NICE[@]}" redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$CLUSTER_DIR/nodes-$port.conf" --cluster-port "$bus" \
      --cluster-node-timeout 2000 --save '' --appendonly no --dir "$CLUSTER_DIR" --daemonize no \
      --maxclients 10000 --loglevel warning > "$OUT/redis-cluster-$port.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    CLUSTER_PORTS+=("$port")
    log "${NICE[*]} redis-server --port $port --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file <tmp>/nodes-$port.conf --cluster-port $bus --cluster-node-timeout 2000 --save '' --appendonly no --maxclients 10000"
  done
  for port in "${CLUSTER_PORTS[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${CLUSTER_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    > "$OUT/redis-cluster-create.log" 2>&1 || { echo "redis-cli --cluster create failed" >&2; cat "$OUT/redis-cluster-create.log" >&2; exit 1; }
  log "redis-cli --cluster create ${CLUSTER_PORTS[*]/#/127.0.0.1:} --cluster-replicas 0 --cluster-yes"
  for _ in $(seq 300); do
    ready=0
    for port in "${CLUSTER_PORTS[@]}"; do
      info=$(redis-cli -p "$port" cluster info 2>/dev/null || true)
      [[ $info == *cluster_state:ok* && $info == *cluster_known_nodes:3* ]] && ready=$((ready + 1))
    done
    [ "$ready" -eq 3 ] && return
    sleep 0.1
  done
  echo "the Redis Cluster did not reach cluster_state:ok" >&2; exit 1
}

stop_redis_cluster() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  CLUSTER_PIDS=()
  CLUSTER_PORTS=()
  if [ -n "$CLUSTER_DIR" ]; then rm -rf "$CLUSTER_DIR"; fi
  CLUSTER_DIR=
}

# The Redis servers of the current mode as HOST:PORT (every master of the cluster), for
# chat-loadgen --redis; empty in memory mode.
redis_servers() {
  case $1 in
    redis|cluster) echo "127.0.0.1:$REDIS_PORT" ;;
    rcluster) local IFS=,; echo "${CLUSTER_PORTS[*]/#/127.0.0.1:}" ;;
  esac
}

# start_servers MODE: fresh servers (one; $NODES in cluster and rcluster modes, all on the
# private Redis or Redis Cluster, emptied first); sets URLS (comma-separated) and SERVER_PIDS.
start_servers() {
  local mode=$1 redis_env=() count=1 node url port
  case $mode in
    redis|cluster)
      redis-cli -p "$REDIS_PORT" flushall >/dev/null
      redis_env=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT") ;;
    rcluster)
      for port in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$port" flushall >/dev/null; done
      redis_env=(CHAT__REDIS__URL="redis-cluster://$(redis_servers rcluster)") ;;
  esac
  case $mode in cluster|rcluster) count=$NODES ;; esac
  SERVER_PIDS=()
  for node in $(seq "$count"); do
    "${NICE[@]}" env PORT=0 HOST=127.0.0.1 JWT_SECRET=$SECRET CHAT__RATE__SESSIONS_PER_MINUTE=100000000 \
      CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG="${BENCH_RUST_LOG:-warn}" "${redis_env[@]}" \
      "$SERVER_BIN" > "$OUT/server-$node.out" 2> "$OUT/server-${RUN_TAG:-$mode}-$node.err" &
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
    [ -n "$url" ] || { echo "server $node did not start" >&2; cat "$OUT/server-${RUN_TAG:-$mode}-$node.err" >&2; exit 1; }
    URLS=${URLS:+$URLS,}$url
    log "${NICE[*]} PORT=0 HOST=127.0.0.1 JWT_SECRET=… CHAT__RATE__SESSIONS_PER_MINUTE=100000000 CHAT__RATE__EVENTS_PER_SEC=100000 CHAT__RATE__HANDSHAKES_PER_10S=0 RUST_LOG=${BENCH_RUST_LOG:-warn} ${redis_env[*]} chat-server   # $(head -1 "$OUT/server-$node.out")"
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
  # Each run's server logs in files of their own: server-<scenario>-<label>-<node>.err.
  RUN_TAG=$scenario-$label start_servers "$mode"
  local json="$OUT/$scenario-$label.json" pids redis=()
  pids=$(IFS=,; echo "${SERVER_PIDS[*]}")
  # Redis commands per search / per delivered message: INFO commandstats around each round.
  case $scenario in
    match|relay) [ "$mode" = memory ] || redis=(--redis "$(redis_servers "$mode")") ;;
  esac
  log "${NICE[*]} chat-loadgen $scenario --url $URLS --server-pid <pid,...> --label $label --json $json${redis:+ ${redis[*]}} $*"
  echo "== $scenario ($label)"
  if timeout 300 "${NICE[@]}" "$LOADGEN" "$scenario" --url "$URLS" --server-pid "$pids" --label "$label" --json "$json" "${redis[@]}" "$@"; then
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
    rcluster) start_redis_cluster ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  for scenario in $SCENARIOS; do
    case $mode/$scenario in
      cluster/connect|cluster/broadcast|rcluster/connect|rcluster/broadcast)
        echo "== $scenario ($mode): skipped (see bench/notes.md)"
        log "# $scenario ($mode): skipped, see the notes"
        continue ;;
      cluster/filtered|rcluster/filtered)
        # Every pair split across two nodes by a filter only the two match.
        RUN_LABEL=$mode-cross run "$mode" match --clients "$CROSS_CLIENTS" --rounds 5 --procs 1 \
          --sources "$SOURCES" --pair-filters
        continue ;;
      cluster/relay|rcluster/relay)
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
      filtered)  RUN_LABEL=$mode-filtered run "$mode" match --clients "$CROSS_CLIENTS" --rounds 5 --procs 1 \
                   --sources "$SOURCES" --pair-filters ;;
      sessions)  run "$mode" sessions --concurrency "$SESSION_CONCURRENCY" --duration 10 --procs 1 --sources "$SOURCES" ;;
      churn)     run "$mode" churn --concurrency "$CHURN_CONCURRENCY" --duration 30 --warmup 10 --messages 3 --procs 1 --sources "$SOURCES" ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
  case $mode in
    redis|cluster) stop_redis ;;
    rcluster) stop_redis_cluster ;;
  esac
done

"$LOADGEN" report --out "$PAGE" --machine "$OUT/machine.txt" --commands "$COMMANDS" --notes bench/notes.md "${RESULTS[@]}"
echo "wrote $PAGE"
