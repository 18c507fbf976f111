#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document with schemathesis: builds and starts
# `evident serve` on a free port with a temporary data directory, seeds a few events, then runs
# schemathesis with the `not_a_server_error` check (no generated request may get a 5xx) in two
# passes: the ingest endpoint with a producer key (the only role that may append), every other
# operation with the bootstrap admin key (except the SSE stream, which never ends by design; its
# refusals are tested in crates/evident-cli/tests/detect.rs). Stops the server and exits non-zero on any server error.
#
# Environment: ST_MAX_EXAMPLES (per operation, default 30), ST_MAX_TIME (seconds per pass, default
# 80), ST_SEED (default 1, for reproducible runs). Extra arguments go to both `st run` calls.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v st >/dev/null 2>&1; then
  st=st
elif command -v schemathesis >/dev/null 2>&1; then
  st=schemathesis
else
  echo "installing schemathesis"
  # Pinned: a fresh machine must fuzz with the versions this script was last checked with.
  pip install --quiet schemathesis==4.32.5 hypothesis==6.170.27
  st=st
fi

echo "== building evident"
cargo build --quiet -p evident-cli
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/evident"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/stdout" 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 200); do
  if grep -q '^admin key: ' "$work/stdout" && curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "evident serve exited early:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
admin="$(sed -n 's/^admin key: //p' "$work/stdout")"
[ -n "$admin" ] || { echo "no admin key printed" >&2; exit 1; }

new_key() {
  curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"role\": \"$1\", \"label\": \"schemathesis\"}" "$base/v1/keys" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}
producer="$(new_key producer)"
new_key reader >/dev/null

# A little history so that reads, tiles and proofs have something to serve.
for i in 1 2 3; do
  curl -fsS -o /dev/null -H "Authorization: Bearer $producer" -H 'Content-Type: application/json' \
    -d "{\"id\": \"seed-$i\", \"source\": \"//crm.example.com/support-api\", \"type\": \"customer.record.updated\",
         \"action\": \"update\", \"time\": \"2026-01-0${i}T10:00:00Z\", \"subject\": \"cust-1\",
         \"actor\": {\"id\": \"u-$i\", \"display\": \"Ann Example\"},
         \"targets\": [{\"type\": \"customer\", \"id\": \"cust-1\"}], \"outcome\": \"success\",
         \"changes\": [{\"field\": \"/email\", \"before\": \"a$i@example.com\", \"after\": \"b$i@example.com\"}],
         \"origin\": {\"ip\": \"192.0.2.$i\", \"service\": \"support-api\"}}" \
    "$base/v1/events"
done

common=(
  --checks not_a_server_error
  --max-examples "${ST_MAX_EXAMPLES:-30}"
  --max-time "${ST_MAX_TIME:-80}"
  --seed "${ST_SEED:-1}"
  # One worker: with two, hypothesis parses lambdas' source in two threads at once, and this
  # machine's CPython 3.11.7 then fails with "AST constructor recursion depth mismatch" (its AST
  # state is shared across threads), a runtime error of the fuzzer, not a finding.
  --workers 1
  --request-timeout 10
  --generation-database none
  --no-color
  --suppress-health-check all
)

status=0
cd "$work" # schemathesis keeps its state in ./.schemathesis
echo "== schemathesis: POST /v1/events as a producer"
"$st" run "$base/openapi.json" "${common[@]}" -H "Authorization: Bearer $producer" \
  --include-operation-id post_events "$@" || status=1
echo "== schemathesis: every other operation as the admin"
"$st" run "$base/openapi.json" "${common[@]}" -H "Authorization: Bearer $admin" \
  --exclude-operation-id post_events --exclude-operation-id stream "$@" || status=1

if grep -q 'internal error' "$work/server.log"; then
  echo "the server logged internal errors:" >&2
  grep 'internal error' "$work/server.log" | head -20 >&2
  status=1
fi
kill -TERM "$pid"
wait "$pid" || { echo "evident serve did not stop cleanly" >&2; status=1; }
pid=""
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems (see above)" >&2
fi
exit "$status"
