#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis against the real chat-server binary and the
# OpenAPI document it serves itself (GET /api/openapi.json), with every check on; then the
# admin API on the same server's admin listener, against its own document
# (GET /admin/openapi.json), with the admin token in every request.
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
# `POST /api/guest` never meets it (hooks.py creates one session per test case); the admin
# API on a free port of 127.0.0.1 with a token of 32+ bytes.
admin_token=schemathesis-admin-token-schemathesis-admin-token
PORT=0 HOST=127.0.0.1 JWT_SECRET=schemathesis-secret-schemathesis-secret \
  CHAT__RATE__SESSIONS_PER_MINUTE=100000000 CHAT__LOG__LEVEL=warn \
  CHAT__ADMIN__PORT=0 CHAT__ADMIN__TOKEN=$admin_token \
  "$bin" >"$workdir/stdout" 2>"$workdir/stderr" &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# The server prints `listening on http://127.0.0.1:PORT storage=memory` once bound, then
# `admin listening on http://127.0.0.1:PORT`.
url=
admin_url=
for _ in $(seq 1 200); do
  url=$(sed -n 's/^listening on \(http:[^ ]*\) .*/\1/p' "$workdir/stdout")
  admin_url=$(sed -n 's/^admin listening on \(http:.*\)$/\1/p' "$workdir/stdout")
  [ -n "$url" ] && [ -n "$admin_url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "chat-server exited before listening:" >&2
    cat "$workdir/stderr" >&2
    exit 1
  fi
  sleep 0.05
done
if [ -z "$url" ] || [ -z "$admin_url" ]; then
  echo "chat-server did not print its two listening lines within 10 s" >&2
  exit 1
fi
echo "schemathesis: chat-server at $url, its admin API at $admin_url"

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

# The admin API: the token on the command line (schemathesis sends it when loading the
# document too, which needs it like every admin route); admin_hooks.py gives about half of
# the ban and disconnect cases a live user, from guests it creates on the main port first.
echo "schemathesis: the admin API at $admin_url"
CHAT_SERVER_URL=$url SCHEMATHESIS_HOOKS=admin_hooks PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/schemathesis" --config-file "$here/admin.toml" run "$admin_url/admin/openapi.json" \
  --header "Authorization: Bearer $admin_token" \
  --checks all \
  --max-examples "$max_examples" \
  --request-timeout 10 \
  --workers 2
