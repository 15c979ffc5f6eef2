#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis against the real chat-server binary and the
# OpenAPI document it serves itself (GET /api/openapi.json), with every check on.
#
# Needs: the built binary (CHAT_SERVER_BIN, default target/debug/chat-server) and a
# virtualenv with schemathesis (SCHEMATHESIS_VENV, default target/venv; `make
# schemathesis-venv` makes it). SCHEMATHESIS_MAX_EXAMPLES bounds the cases per operation.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CHAT_SERVER_BIN:-$root/target/debug/chat-server}
venv=${SCHEMATHESIS_VENV:-$root/target/venv}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
mkdir -p "$root/target"
workdir=$(mktemp -d "$root/target/schemathesis.XXXXXX")

# A secret of 32+ bytes so tokens verify; a rate limit high enough that fuzzing
# `POST /api/guest` never meets it (hooks.py creates one session per test case).
PORT=0 HOST=127.0.0.1 JWT_SECRET=schemathesis-secret-schemathesis-secret \
  CHAT__RATE__SESSIONS_PER_MINUTE=100000000 CHAT__LOG__LEVEL=warn \
  "$bin" >"$workdir/stdout" 2>"$workdir/stderr" &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# The server prints `listening on http://127.0.0.1:PORT storage=memory` once bound.
url=
for _ in $(seq 1 200); do
  url=$(sed -n 's/^listening on \(http:[^ ]*\) .*/\1/p' "$workdir/stdout")
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "chat-server exited before listening:" >&2
    cat "$workdir/stderr" >&2
    exit 1
  fi
  sleep 0.05
done
if [ -z "$url" ]; then
  echo "chat-server did not print its listening line within 10 s" >&2
  exit 1
fi
echo "schemathesis: chat-server at $url"

# Every test case gets a real token of its own from `POST /api/guest` (hooks.py); the
# settings of single operations are in schemathesis.toml.
here="$root/tests/schemathesis"
cd "$workdir"
CHAT_SERVER_URL=$url SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$url/api/openapi.json" \
  --checks all \
  --max-examples "$max_examples" \
  --request-timeout 10 \
  --workers 2
