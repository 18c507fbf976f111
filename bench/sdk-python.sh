#!/usr/bin/env bash
# The Python client's spool throughput: events/s that `evident.Client.record` accepts (each one
# fsynced in the spool before the call returns; concurrent callers share commits), and how fast the
# sender drains them, next to the peer measured in the same run against the same server: a direct
# synchronous `POST /v1/events` per event. With 1 and 8 application threads.
#
#   bench/sdk-python.sh [events per run, default 4000]
#
# Uses EVIDENT_BIN if set, else builds `evident` in release mode. The server runs on core 0, the
# Python process on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-4000}
if [ -z "${EVIDENT_BIN:-}" ]; then
  cargo build --release -q -p evident-cli
  EVIDENT_BIN=$PWD/target/release/evident
fi
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check ./sdks/python
PORT=$("$WORK/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$EVIDENT_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 1 100); do grep -qs "listening on" "$WORK/serve.err" && break; sleep 0.1; done
ADMIN=$(sed -n 's/^admin key: //p' "$WORK/serve.out")
KEY=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/keys" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"role":"producer"}' | "$WORK/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["key"])')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $EVIDENT_BIN ($("$EVIDENT_BIN" --version)); spool on $(df -h "$WORK" | awk 'NR==2 {print $1}')"
echo
taskset -c 1 "$WORK/venv/bin/python" bench/sdk_python.py "http://127.0.0.1:$PORT" "$KEY" "$WORK" "$EVENTS"
