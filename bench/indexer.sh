#!/usr/bin/env bash
# Issue 18, the SQLite indexer's cost per entry on a full store, builds or settings as peers in
# the same run: each run copies one filled store, runs `evident hammer` 8 x 100 on the copy under
# `perf record -F 999` (no call graphs), and reports events/s and CPU µs per stored event by
# thread (perf samples / 999 Hz / events): the indexer (`evident-indexer`), the sequencer,
# the WAL checkpointer (`evident-checkpt`) and the producers. Builds from before those names show
# the indexer and the checkpointer together (`evident-sqlite-`), counted as the indexer's. CPU per event is steadier than events/s on a shared 2-core
# machine: events/s swings by a third between runs of one build, the samples per event much less.
#
# Usage: bench/indexer.sh [--events N] [--seconds S] [--runs R] [--customers C] [--fill-each] VARIANT...
#   VARIANT is `NAME=BIN` or `NAME=BIN:VAR=VALUE,VAR=VALUE` (environment for that variant's runs);
#   the store is filled to N events (default 1500000) by the first variant's binary, once (with
#   --fill-each, every variant fills its own, for builds whose index files differ; the fills'
#   rates go in the table too); every variant then runs R times (default 3), in turn, S seconds
#   each (default 12), each on a fresh copy of its store, with a new `--id-prefix`. C is
#   `hammer --customers` for the fill and the runs (default 10000; fewer customers make longer
#   paths per customer and month).
# Raw outputs go to target/bench-indexer/ (runs.tsv, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
events=1500000 seconds=12 runs=3 customers=10000 fill_each=false
while [ $# -gt 0 ]; do
  case $1 in
    --customers) customers=$2; shift 2 ;;
    --fill-each) fill_each=true; shift ;;
    --events) events=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --*) echo "bench/indexer.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: bench/indexer.sh [--events N] [--seconds S] [--runs R] [--customers C] [--fill-each] NAME=BIN[:VAR=VALUE,...]..." >&2; exit 2; }
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
out=target/bench-indexer
mkdir -p "$out"
data=$(mktemp -d -p "$PWD/target" bench-indexer-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

names=() bins=() envs=()
for variant in "$@"; do
  name=${variant%%=*}
  rest=${variant#*=}
  bin=${rest%%:*}
  env=""
  [ "$rest" != "$bin" ] && env=${rest#*:}
  [ -x "$bin" ] || { echo "bench/indexer.sh: $bin is not an executable" >&2; exit 2; }
  names+=("$name") bins+=("$(realpath "$bin")") envs+=("${env//,/ }")
done

echo "load before: $(uptime)" | tee "$out/machine.txt"
# The store variant i runs on: its own with --fill-each, else the first variant's.
store() { if $fill_each; then echo "$data/full-$1"; else echo "$data/full-0"; fi; }
rm -f "$out"/fill-*.json
for i in "${!names[@]}"; do
  [ "$i" -gt 0 ] && ! $fill_each && break
  echo "filling a store to $events events with ${names[$i]} ($(date -u +%H:%M:%S) UTC)"
  env ${envs[$i]} /usr/bin/time -f %M -o "$data/fill-rss" "${bins[$i]}" hammer --data-dir "$(store "$i")" \
    --producers 8 --batch 100 --customers "$customers" --events "$events" --seconds 1e9 --json > "$out/fill-$i.json"
  python3 - "$out/fill-$i.json" "$data/fill-rss" <<'EOF' | tee "$out/fill-$i.txt"
import json, sys
fill = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split()[-1]) // 1024
print(f"fill: {fill['events_per_second']:,.0f} events/s, peak RSS {rss} MiB")
EOF
done
printf 'variant\trun\tevents\tevents_per_s\tp99_ms\tindexer\tsequencer\tcheckpointer\tproducers\tall\n' > "$out/runs.tsv"
for run in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    rm -rf "$data/copy"
    cp -r "$(store "$i")" "$data/copy"
    sync
    env ${envs[$i]} perf record -q -F 999 -o "$data/perf.data" "${bins[$i]}" hammer --data-dir "$data/copy" \
      --producers 8 --batch 100 --customers "$customers" --seconds "$seconds" --id-prefix "run$run" --json > "$data/run.json" 2>/dev/null
    perf report -i "$data/perf.data" --no-children --sort comm -g none --stdio -F overhead,sample,comm 2>/dev/null \
      | grep -v '^#' | grep -v '^$' > "$data/threads.txt"
    python3 - "$data/run.json" "$data/threads.txt" "${names[$i]}" "$run" >> "$out/runs.tsv" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
groups = {"indexer": 0, "sequencer": 0, "checkpointer": 0, "producers": 0}
for line in open(sys.argv[2]):
    fields = line.split()
    samples, comm = int(fields[1]), " ".join(fields[2:])
    if comm.startswith("evident-indexer") or comm.startswith("evident-sqlite-"):
        groups["indexer"] += samples
    elif comm.startswith("evident-sequenc"):
        groups["sequencer"] += samples
    elif comm.startswith("evident-checkpt"):
        groups["checkpointer"] += samples
    else:
        groups["producers"] += samples
us = {k: v / 999 / run["events"] * 1e6 for k, v in groups.items()}
print("\t".join([sys.argv[3], sys.argv[4], str(run["events"]), f"{run['events_per_second']:.0f}", f"{run['p99_ms']:.1f}"]
                + [f"{us[k]:.1f}" for k in groups] + [f"{sum(us.values()):.1f}"]))
EOF
    tail -1 "$out/runs.tsv"
  done
done
echo "load after: $(uptime)" | tee -a "$out/machine.txt"

python3 - "$out/runs.tsv" "$fill_each" "$out" "${names[@]}" > "$out/table.md" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
if sys.argv[2] == "true":
    for i, name in enumerate(sys.argv[4:]):
        print(f"- {name}: {open(f'{sys.argv[3]}/fill-{i}.txt').read().strip()}")
    print()
order = list(dict.fromkeys(r["variant"] for r in rows))
cols = ["events_per_s", "indexer", "sequencer", "checkpointer", "producers", "all"]
print("| variant | runs | events/s (median) | CPU µs/event: indexer | sequencer | checkpointer | producers | all |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name in order:
    mine = [r for r in rows if r["variant"] == name]
    med = {c: statistics.median(float(r[c]) for r in mine) for c in cols}
    print(f"| {name} | {len(mine)} | {med['events_per_s']:,.0f} | {med['indexer']:.1f} | {med['sequencer']:.1f} | "
          f"{med['checkpointer']:.1f} | {med['producers']:.1f} | {med['all']:.1f} |")
EOF
cat "$out/table.md"
