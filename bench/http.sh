#!/usr/bin/env bash
# HTTP load benchmark: `evident serve` on one core, wrk on the other, over loopback.
#
#   bench/http.sh [seconds per workload, default 15] [events in the read store, default 1000000]
#
# EVIDENT=<binary> runs that build instead of building this checkout (to compare two builds,
# run them one after the other, alternating).
#
# Workloads: single-event POSTs from 64 connections; 100-event NDJSON POSTs; mixed writes and
# timeline reads; then, on a store of N events built with `evident hammer`, 50-event customer
# timeline pages and inclusion-proof receipts. The engine-level figures (no HTTP) for the same
# write workloads are measured in the same run with `evident hammer`, so the HTTP overhead shows.
# Raw outputs go to target/bench-http/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-15}
READ_EVENTS=${2:-1000000}
OUT=target/bench-http
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
BIN=${EVIDENT:-$PWD/target/release/evident}
[ -n "${EVIDENT:-}" ] || cargo build --release -q -p evident-cli
export BENCH_DIR=$PWD/bench/http
WORK=$(mktemp -d -p "$PWD/target" bench-http.XXXX)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() { # $1 data dir
  PORT=$(free_port)
  taskset -c 0 "$BIN" serve --data-dir "$1" --listen "127.0.0.1:$PORT" >"$OUT/serve.out" 2>"$OUT/serve.err" &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$PORT"
}

stop_server() { kill -TERM "$SERVER"; wait "$SERVER" || true; }

new_key() { # $1 admin key, $2 role
  curl -sf -X POST "$URL/v1/keys" -H "Authorization: Bearer $1" -d "{\"role\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

summary() { # $1 name, $2 wrk output file, $3 events per request
  python3 - "$1" "$2" "$3" <<'PY'
import sys
sys.path.insert(0, "bench/http")
from wrk_summary import parse
name, path, per = sys.argv[1], sys.argv[2], int(sys.argv[3])
rps, lat, errors = parse(path)
print(f"| {name} | {rps:,.0f} req/s | {rps*per:,.0f} events/s | p50 {lat.get('50','?')} | p99 {lat.get('99','?')} | non-2xx {errors} |")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | requests | events | latency p50 | latency p99 | errors |"
echo "| --- | --- | --- | --- | --- | --- |"

# Writes.
start_server "$WORK/write"
ADMIN=$(sed -n 's/^admin key: //p' "$OUT/serve.out")
export EVIDENT_API_KEY=$(new_key "$ADMIN" producer) EVIDENT_READER_KEY=$(new_key "$ADMIN" reader)
taskset -c 1 wrk -t2 -c64 -d"${SECONDS_PER}s" --latency -s bench/http/post-single.lua "$URL" >"$OUT/post-single.txt"
summary "HTTP single-event POSTs, 64 connections" "$OUT/post-single.txt" 1
taskset -c 1 wrk -t2 -c16 -d"${SECONDS_PER}s" --latency -s bench/http/post-batch.lua "$URL" >"$OUT/post-batch.txt"
summary "HTTP 100-event NDJSON POSTs, 16 connections" "$OUT/post-batch.txt" 100
taskset -c 1 wrk -t2 -c64 -d"${SECONDS_PER}s" --latency -s bench/http/mixed.lua "$URL" >"$OUT/mixed.txt"
summary "HTTP mixed 3 writes : 1 timeline read, 64 connections" "$OUT/mixed.txt" 1
stop_server

# The engine without HTTP, same core budget, same run.
taskset -c 0 "$BIN" hammer --data-dir "$WORK/engine" --producers 64 --batch 1 --seconds "$SECONDS_PER" --json >"$OUT/engine-single.json"
taskset -c 0 "$BIN" hammer --data-dir "$WORK/engine" --producers 16 --batch 100 --seconds "$SECONDS_PER" --id-prefix b --json >"$OUT/engine-batch.json"
python3 - "$OUT" <<'PY'
import json, sys
for name, f in [("engine single events, 64 producers", "engine-single.json"), ("engine 100-event batches, 16 producers", "engine-batch.json")]:
    d = json.load(open(f"{sys.argv[1]}/{f}"))
    print(f"| {name} (no HTTP) | {d['requests']/d['seconds']:,.0f} req/s | {d['events_per_second']:,.0f} events/s | p50 {d['p50_ms']:.2f}ms | p99 {d['p99_ms']:.2f}ms | 0 |")
PY

# Reads on a store of READ_EVENTS events: serve once to bootstrap its admin key, fill it with the
# engine directly (much faster than over HTTP), then serve it again.
start_server "$WORK/read"
ADMIN=$(sed -n 's/^admin key: //p' "$OUT/serve.out")
export EVIDENT_READER_KEY=$(new_key "$ADMIN" reader)
stop_server
"$BIN" hammer --data-dir "$WORK/read" --producers 8 --batch 100 --events "$READ_EVENTS" --seconds 100000 --json >"$OUT/fill.json"
start_server "$WORK/read"
curl -sf "$URL/v1/events?limit=1000&type=customer.updated" -H "Authorization: Bearer $EVIDENT_READER_KEY" >"$OUT/events.json"
python3 - "$OUT" <<'PY'
import json, sys
events = json.load(open(f"{sys.argv[1]}/events.json"))["events"]
with open(f"{sys.argv[1]}/proof-paths.txt", "w") as out:
    for event in events:
        out.write(f"/v1/events/{event['event_id']}/proof\n")
PY
python3 -c 'import random; [print(f"/v1/subjects/cust-{random.randrange(10000)}/timeline?limit=50") for _ in range(2000)]' >"$OUT/timeline-paths.txt"
BENCH_PATHS=$OUT/timeline-paths.txt taskset -c 1 wrk -t2 -c16 -d"${SECONDS_PER}s" --latency -s bench/http/get-paths.lua "$URL" >"$OUT/timeline.txt"
summary "HTTP 50-event timeline page, $READ_EVENTS-event store, 16 connections" "$OUT/timeline.txt" 1
BENCH_PATHS=$OUT/proof-paths.txt taskset -c 1 wrk -t2 -c16 -d"${SECONDS_PER}s" --latency -s bench/http/get-paths.lua "$URL" >"$OUT/proof.txt"
summary "HTTP inclusion-proof receipt, $READ_EVENTS-event store, 16 connections" "$OUT/proof.txt" 1
stop_server
