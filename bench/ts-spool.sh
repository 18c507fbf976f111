#!/usr/bin/env bash
# Spool throughput of the TypeScript client (sdks/typescript) against a direct POST per event,
# in one run: `evident serve` pinned to core 0, the Node.js process to core 1, spool files on the
# same disk as the server's data (under target/, not a tmpfs). About 30 s.
#
#   bench/ts-spool.sh            # builds the release binary; EVIDENT_BIN=... to use another one
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EVIDENT_BIN:-}" ]; then
  cargo build --release -q -p evident-cli
  EVIDENT_BIN=$PWD/target/release/evident
fi
(cd sdks/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund -s; } && npm run -s build)
mkdir -p target
WORK=$(mktemp -d -p "$PWD/target" bench-ts-spool.XXXX)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$EVIDENT_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
ADMIN=$(sed -n 's/^admin key: //p' "$WORK/serve.out")
KEY=$(curl -sf -X POST "$URL/v1/keys" -H "Authorization: Bearer $ADMIN" -d '{"role":"producer"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); node $(node --version); server $EVIDENT_BIN; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
taskset -c 1 node bench/ts-spool/bench.mjs "$URL" "$KEY" "$WORK"
