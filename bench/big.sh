#!/usr/bin/env bash
# The big-store run of issue 18 (goals 2, 5, 6 and 8), in one run on one data directory:
#   1. the rate of a fresh store: `evident hammer` 8 x 100 for S seconds;
#   2. fill a store to N events (8 x 100) under /usr/bin/time -v: peak RSS, time, rate;
#   3. the rate at N: the same S-second 8 x 100 run on the full store (new ids), straight after the
#      fill, then again after `sync`; then the empty store's again, to bracket drift;
#   4. `evident fsck` of the full store;
#   5. reads on it over HTTP (`evident serve` on core 0, wrk on core 1): 50-event customer
#      timeline pages and inclusion-proof receipts, each read self-audited (durable before the
#      answer), at 1 and at 16 connections, S seconds each.
# The store is deleted at the end.
#
# Usage: bench/big.sh [--events N] [--seconds S] [--fill-seconds F] [--store DIR]
#   N events (default 10000000), S seconds per rate run and read workload (default 20), and the
#   fill stops after F seconds (default: none) if it has not reached N by then.
#   --store DIR: instead of filling, use the SQLite store already in data directory DIR (for
#   example one kept by `bench/insight.sh --keep`; its reader key is read from DIR/../reader). Step
#   2 is skipped, step 3 adds its events to DIR, and the reads ask for the timelines and receipts
#   of the store's own subjects and events. DIR is not deleted.
# Raw outputs go to target/bench-big/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
events=10000000
seconds=20
fill_seconds=1e9
store=""
while [ $# -gt 0 ]; do
  case $1 in
    --events) events=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --fill-seconds) fill_seconds=$2; shift 2 ;;
    --store) store=$(realpath "$2"); shift 2 ;;
    *) echo "usage: bench/big.sh [--events N] [--seconds S] [--fill-seconds F] [--store DIR]" >&2; exit 2 ;;
  esac
done
out=target/bench-big
mkdir -p "$out"
rm -f "$out"/*
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
bin=${EVIDENT:-$repo/target/release/evident}
[ -n "${EVIDENT:-}" ] || cargo build --release -q -p evident-cli
data=$(mktemp -d -p "$repo/target" bench-big-data.XXXXXX)
big=${store:-$data/big}
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$data"' EXIT
load() { echo "$1: $(uptime)" | tee -a "$out/load.txt"; }

load "start"
"$bin" hammer --data-dir "$data/empty" --producers 8 --batch 100 --seconds "$seconds" --json | tee "$out/rate-empty.json"
rm -rf "$data/empty"
load "after the empty-store run"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() {
  local port; port=$(free_port)
  taskset -c 0 "$bin" serve --data-dir "$big" --listen "127.0.0.1:$port" >"$out/serve.out" 2>"$out/serve.err" &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$port"
}
stop_server() { kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=; }

if [ -z "$store" ]; then
  # A reader key, made before the fill (serve bootstraps the admin key of a new store).
  start_server
  admin=$(sed -n 's/^admin key: //p' "$out/serve.out")
  reader=$(curl -sf -X POST "$URL/v1/keys" -H "Authorization: Bearer $admin" -d '{"role":"reader"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  stop_server

  /usr/bin/time -v -o "$out/fill-time.txt" "$bin" hammer --data-dir "$big" --producers 8 --batch 100 \
    --events "$events" --seconds "$fill_seconds" --json | tee "$out/fill.json"
  grep -E 'Maximum resident|Elapsed|Percent of CPU|File system outputs' "$out/fill-time.txt"
  load "after the fill"
else
  reader=$(cat "$store/../reader")
fi
du -sb "$big" | tee "$out/bytes.txt"
ls -l "$big" >>"$out/bytes.txt"

# Straight after the fill, the kernel is still writing the fill's dirty pages back and the index
# is up to the lag bound behind: the first run measures that too. A second run follows once the
# disk is synced; the empty store is measured again after both, so the runs bracket any drift.
"$bin" hammer --data-dir "$big" --producers 8 --batch 100 --seconds "$seconds" --id-prefix at-n --json \
  | tee "$out/rate-full.json"
sync
"$bin" hammer --data-dir "$big" --producers 8 --batch 100 --seconds "$seconds" --id-prefix at-n-2 --json \
  | tee "$out/rate-full-2.json"
rm -rf "$data/empty"
"$bin" hammer --data-dir "$data/empty" --producers 8 --batch 100 --seconds "$seconds" --json | tee "$out/rate-empty-2.json"
load "after the full-store runs"

/usr/bin/time -v -o "$out/fsck-time.txt" "$bin" fsck --data-dir "$big" | tee "$out/fsck.txt"
grep -E 'Maximum resident|Elapsed' "$out/fsck-time.txt"
load "after fsck"

start_server
# Commits wait for the indexer past the lag bound (EVIDENT_INDEX_LAG_ENTRIES), so a search reads
# the rest from the rows at once; with the bound off, the indexer falls behind under full ingest,
# and searches wait for it (30 s at most, then 503) while more than 32,768 entries are not
# indexed. How long until the store answers a search:
began=$SECONDS
until curl -sf -o /dev/null "$URL/v1/events?limit=1" -H "Authorization: Bearer $reader"; do sleep 1; done
echo "searchable after $((SECONDS - began)) s" | tee "$out/searchable.txt"
load "searchable"
curl -sf "$URL/v1/events?limit=1000&type=customer.updated" -H "Authorization: Bearer $reader" \
  | python3 -c 'import json,sys; [print("/v1/events/" + e["event_id"] + "/proof") for e in json.load(sys.stdin)["events"]]' \
  >"$out/proof-paths.txt"
if [ -z "$store" ]; then
  python3 -c 'import random; [print(f"/v1/subjects/cust-{random.randrange(10000)}/timeline?limit=50") for _ in range(2000)]' \
    >"$out/timeline-paths.txt"
else  # the kept store's subjects: cus_000000 ... (bench/insight.sh), 100 per 10,000 events
  python3 -c 'import random, sys; n = int(sys.argv[1]); [print(f"/v1/subjects/cus_{random.randrange(n):06d}/timeline?limit=50") for _ in range(2000)]' \
    "$((events / 100))" >"$out/timeline-paths.txt"
  curl -sf "$URL/v1/events?limit=1000&type=contact.opened" -H "Authorization: Bearer $reader" \
    | python3 -c 'import json,sys; [print("/v1/events/" + e["event_id"] + "/proof") for e in json.load(sys.stdin)["events"]]' \
    >"$out/proof-paths.txt"
fi
export EVIDENT_READER_KEY=$reader
# One connection (each read's own latency) and 16 (queueing on the server's one core).
for c in 1 16; do
  for read in timeline proof; do
    BENCH_PATHS=$out/$read-paths.txt taskset -c 1 wrk -t1 -c$c -d"${seconds}s" --latency -s bench/http/get-paths.lua \
      "$URL" | tee "$out/$read-$c.txt"
  done
done
stop_server
load "end"

python3 - "$out" "$events" <<'PY' | tee "$out/table.md"
import json, re, sys
out = sys.argv[1]
empty, full = (json.load(open(f"{out}/{n}.json")) for n in ("rate-empty", "rate-full"))
try:
    fill = json.load(open(f"{out}/fill.json"))
    t = open(f"{out}/fill-time.txt").read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
except FileNotFoundError:  # --store: filled elsewhere
    fill, rss = {"events": int(sys.argv[2]), "events_per_second": 0, "seconds": 0}, 0
fsck = open(f"{out}/fsck.txt").read()
sys.path.insert(0, "bench/http")
from wrk_summary import summary
def wrk(name):
    return summary(f"{out}/{name}.txt")
print(f"| measure | value |\n| --- | --- |")
print(f"| 8 x 100 on an empty store, {empty['seconds']:.0f} s | {empty['events_per_second']:,.0f} events/s (p99 {empty['p99_ms']:.0f} ms) |")
if rss:
    print(f"| fill to {fill['events']:,} events, 8 x 100 | {fill['events_per_second']:,.0f} events/s over {fill['seconds']:.0f} s, peak RSS {rss:.0f} MiB |")
print(f"| 8 x 100 on the {fill['events']:,}-event store, {full['seconds']:.0f} s, straight after the fill | {full['events_per_second']:,.0f} events/s (p99 {full['p99_ms']:.0f} ms): {full['events_per_second'] / empty['events_per_second']:.0%} of the empty store's |")
full2, empty2 = (json.load(open(f"{out}/{n}.json")) for n in ("rate-full-2", "rate-empty-2"))
print(f"| the same, again, after `sync` | {full2['events_per_second']:,.0f} events/s (p99 {full2['p99_ms']:.0f} ms) |")
print(f"| 8 x 100 on an empty store again, {empty2['seconds']:.0f} s | {empty2['events_per_second']:,.0f} events/s (p99 {empty2['p99_ms']:.0f} ms) |")
both = (empty['events_per_second'] + empty2['events_per_second']) / 2
print(f"| the second full-store run / the mean of the two empty-store runs | **{full2['events_per_second'] / both:.0%}** |")
print(f"| fsck | {fsck.strip().splitlines()[-1]} |")
print(f"| the first search answered once the server started | {open(f'{out}/searchable.txt').read().strip()} |")
for c in (1, 16):
    print(f"| timeline page (50 events), {c} connection{'s' if c > 1 else ''} | {wrk(f'timeline-{c}')} |")
    print(f"| inclusion-proof receipt, {c} connection{'s' if c > 1 else ''} | {wrk(f'proof-{c}')} |")
PY
