#!/usr/bin/env bash
# What a search costs while the search index is behind (issue 18): the embedded store reads the
# entries above the index's watermark (the tail) from their rows, up to twice the lag bound
# (EVIDENT_INDEX_LAG_ENTRIES). For each tail length N: a store of B indexed events, then N more
# appended while another connection holds the index file's write lock (so the indexer cannot
# take them), then `evident serve` (core 0, with the lock still held) answers 50-event customer
# timeline pages and 50-event pages of every event for S seconds each, wrk on core 1, one
# connection. Each read is self-audited (its own entry joins the tail).
#
# Usage: bench/tail.sh [--base B] [--seconds S] [N...]   (defaults: 100000, 5, 0 4096 16384 32768 65536)
# Raw outputs go to target/bench-tail/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base=100000
seconds=5
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) break ;;
  esac
done
tails=("$@")
[ ${#tails[@]} -gt 0 ] || tails=(0 4096 16384 32768 65536)
out=target/bench-tail
mkdir -p "$out"
rm -f "$out"/*
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
bin=${EVIDENT:-$repo/target/release/evident}
[ -n "${EVIDENT:-}" ] || cargo build --release -q -p evident-cli
data=$(mktemp -d -p "$repo/target" bench-tail-data.XXXXXX)
SERVER=
LOCK=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; [ -n "$LOCK" ] && kill $LOCK 2>/dev/null; rm -rf "$data"' EXIT
# Searches read up to twice the bound from the rows: every tail measured here, without waiting.
export EVIDENT_INDEX_LAG_ENTRIES=1000000
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/machine.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() {
  local port; port=$(free_port)
  taskset -c 0 "$bin" serve --data-dir "$data/store" --listen "127.0.0.1:$port" >>"$out/serve.out" 2>>"$out/serve.err" &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$port"
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=; }
behind() { curl -sf "$URL/metrics" | sed -n 's/^evident_search_index_behind_entries //p'; }
# Holds the index file's write lock until killed.
hold_index() {
  python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
c.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(86400)' "$data/store/evident.sqlite-index" >"$out/lock.txt" &
  LOCK=$!
  until grep -q held "$out/lock.txt" 2>/dev/null; do sleep 0.1; done
}

python3 -c 'import random; [print(f"/v1/subjects/cust-{random.randrange(10000)}/timeline?limit=50") for _ in range(2000)]' \
  >"$out/timeline-paths.txt"
for _ in $(seq 100); do echo "/v1/events?limit=50"; done >"$out/page-paths.txt"
echo "| tail (entries not indexed) | timeline page p50 / p99 | req/s | page of every event p50 / p99 | req/s |" | tee "$out/table.md"
echo "| --- | --- | --- | --- | --- |" | tee -a "$out/table.md"
for n in "${tails[@]}"; do
  rm -rf "$data/store"
  start_server
  admin=$(sed -n 's/^admin key: //p' "$out/serve.out" | tail -1)
  reader=$(curl -sf -X POST "$URL/v1/keys" -H "Authorization: Bearer $admin" -d '{"role":"reader"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  stop_server
  "$bin" hammer --data-dir "$data/store" --producers 8 --batch 100 --events "$base" --seconds 600 --id-prefix base >/dev/null
  # Let the indexer take every entry (a server indexes on start), then lock it out.
  start_server
  until [ "$(behind)" = 0 ]; do sleep 0.5; done
  stop_server
  hold_index
  if [ "$n" -gt 0 ]; then
    EVIDENT_INDEX_LAG_ENTRIES=off "$bin" hammer --data-dir "$data/store" --producers 8 --batch 100 --events "$n" \
      --seconds 600 --id-prefix tail >/dev/null 2>&1
  fi
  start_server
  measured=$(behind)
  export EVIDENT_READER_KEY=$reader
  row="| $n (measured $measured) |"
  for read in timeline page; do
    BENCH_PATHS=$out/$read-paths.txt taskset -c 1 wrk -t1 -c1 -d"${seconds}s" --latency -s bench/http/get-paths.lua \
      "$URL" >"$out/$read-$n.txt"
    p50=$(sed -n 's/^ *50% *//p' "$out/$read-$n.txt"); p99=$(sed -n 's/^ *99% *//p' "$out/$read-$n.txt")
    rps=$(sed -n 's/^Requests\/sec: *//p' "$out/$read-$n.txt")
    bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$out/$read-$n.txt")
    row="$row $p50 / $p99${bad:+ ($bad non-2xx)} | $rps |"
  done
  stop_server
  kill "$LOCK"; wait "$LOCK" 2>/dev/null || true; LOCK=
  echo "$row" | tee -a "$out/table.md"
done
