#!/usr/bin/env bash
# Issue 18, the index file's parts: a base build against a new one on stores of N events, in one
# run, each measure alternating the two builds:
#   1. fill a store to N events with each build (`evident hammer` 8 x 100): rate, peak RSS;
#   2. 8 x 100 for S seconds on a fresh copy of each full store, R times, and on an empty store;
#   3. reads over HTTP on each full store (`evident serve` on core 0, wrk on core 1, one
#      connection, S seconds): 50-event timeline pages of random customers (a subject search,
#      which the new build walks part by part) and target searches (`target_type=customer`);
#   4. the upgrade: the new build opens a copy of the base's store (an index file from before the
#      parts, if the base is older than them) and converts it; the time `fsck` takes with it
#      against `fsck` of the new build's own store.
# The stores are deleted at the end.
#
# Usage: bench/parts.sh --base BIN [--new BIN] [--events N] [--seconds S] [--runs R]
#   defaults: the new build target/release/evident (built), N 2000000, S 15, R 3.
# Raw outputs go to target/bench-parts/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base="" new="" events=2000000 seconds=15 runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$(realpath "$2"); shift 2 ;;
    --new) new=$(realpath "$2"); shift 2 ;;
    --events) events=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: bench/parts.sh --base BIN [--new BIN] [--events N] [--seconds S] [--runs R]" >&2; exit 2 ;;
  esac
done
[ -n "$base" ] || { echo "bench/parts.sh: --base BIN is required (a build to compare against)" >&2; exit 2; }
[ -n "$new" ] || { cargo build --release -q -p evident-cli; new=$repo/target/release/evident; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
out=target/bench-parts
mkdir -p "$out"
rm -f "$out"/*
data=$(mktemp -d -p "$repo/target" bench-parts-data.XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$data"' EXIT
declare -A bin=([base]=$base [new]=$new)

# One JSON line per hammer run: {"build", "measure", hammer's own fields, "rss_kib"}.
hammer() {
  local build=$1 measure=$2 dir=$3; shift 3
  /usr/bin/time -f "%M" -o "$out/rss.txt" "${bin[$build]}" hammer --data-dir "$dir" --producers 8 --batch 100 \
    --json "$@" 2>/dev/null \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); d.update(build=sys.argv[1], measure=sys.argv[2], rss_kib=int(open(sys.argv[3]).read())); print(json.dumps(d))' \
      "$build" "$measure" "$out/rss.txt" | tee -a "$out/runs.jsonl"
}

for build in base new; do
  hammer "$build" fill "$data/$build" --events "$events" --seconds 100000
done
for run in $(seq 1 "$runs"); do
  for build in base new; do
    rm -rf "$data/copy" "$data/empty"
    cp -r "$data/$build" "$data/copy"
    hammer "$build" full "$data/copy" --seconds "$seconds" --id-prefix "at-n-$run"
    hammer "$build" empty "$data/empty" --seconds "$seconds"
  done
done
rm -rf "$data/copy" "$data/empty"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
python3 -c 'import random; [print(f"/v1/subjects/cust-{random.randrange(10000)}/timeline?limit=50") for _ in range(2000)]' \
  >"$out/timeline-paths.txt"
python3 -c 'import random; [print(f"/v1/events?target_type=customer&target_id=cust-{random.randrange(10000)}&limit=50") for _ in range(2000)]' \
  >"$out/target-paths.txt"
for build in base new; do
  key=$("${bin[$build]}" keys create --global --data-dir "$data/$build" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  port=$(free_port)
  taskset -c 0 "${bin[$build]}" serve --data-dir "$data/$build" --listen "127.0.0.1:$port" >"$out/serve-$build.out" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/v1/subjects/cust-1/timeline?limit=50" -H "Authorization: Bearer $key" >/dev/null
  for read in timeline target; do
    EVIDENT_READER_KEY=$key BENCH_PATHS=$out/$read-paths.txt taskset -c 1 wrk -t1 -c1 -d"${seconds}s" --latency \
      -s bench/http/get-paths.lua "http://127.0.0.1:$port" | tee "$out/$read-$build.txt"
  done
  kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
done

# The upgrade: fsck opens the store (and so converts an index file from before the parts) first.
cp -r "$data/base" "$data/upgraded"
for dir in upgraded new; do
  /usr/bin/time -f "%e" -o "$out/fsck-$dir-time.txt" "$new" fsck --data-dir "$data/$dir" >"$out/fsck-$dir.txt"
done

python3 - "$out" <<'PY' | tee "$out/table.md"
import json, re, statistics, sys
out = sys.argv[1]
runs = [json.loads(line) for line in open(f"{out}/runs.jsonl")]
def rates(build, measure):
    return [r["events_per_second"] for r in runs if r["build"] == build and r["measure"] == measure]
print("| measure | base | new | new / base |\n| --- | --- | --- | --- |")
b, n = (next(r for r in runs if r["build"] == x and r["measure"] == "fill") for x in ("base", "new"))
print(f"| fill to {b['events']:,} events, 8 x 100 | {b['events_per_second']:,.0f} events/s, peak RSS {b['rss_kib'] / 1024:.0f} MiB "
      f"| {n['events_per_second']:,.0f} events/s, peak RSS {n['rss_kib'] / 1024:.0f} MiB | {n['events_per_second'] / b['events_per_second']:.2f}x |")
mean = {(x, m): statistics.mean(rates(x, m)) for x in ("base", "new") for m in ("empty", "full")}
for measure, label in [("empty", "8 x 100 on an empty store"), ("full", "8 x 100 on the full store")]:
    b, n = rates("base", measure), rates("new", measure)
    print(f"| {label}, events/s per run | {', '.join(f'{x:,.0f}' for x in b)} | {', '.join(f'{x:,.0f}' for x in n)} "
          f"| {mean['new', measure] / mean['base', measure]:.2f}x |")
print(f"| the full store's rate / the empty store's | {mean['base', 'full'] / mean['base', 'empty']:.0%} "
      f"| {mean['new', 'full'] / mean['new', 'empty']:.0%} | |")
sys.path.insert(0, "bench/http")
from wrk_summary import summary
def wrk(name):
    return summary(f"{out}/{name}.txt")
for read, label in [("timeline", "timeline page (50 events), 1 connection"), ("target", "target search (50 events), 1 connection")]:
    print(f"| {label} | {wrk(read + '-base')} | {wrk(read + '-new')} | |")
t = {d: float(open(f"{out}/fsck-{d}-time.txt").read()) for d in ("upgraded", "new")}
print(f"| new build's fsck of the base's store (converts its index file first) against of its own | | {t['upgraded']:.1f} s against {t['new']:.1f} s | |")
PY
