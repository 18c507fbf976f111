#!/usr/bin/env bash
# Where the CPU and the bytes go per event (issue 18): `perf record -F 499` of `evident hammer`,
# CPU per stored event by thread (samples / 499 Hz / events), and bytes written to the device per
# event (`/usr/bin/time` file system outputs, 512-byte blocks), for each workload and each
# checkpoint history setting (`--keep-checkpoint-entries 1`: every commit's checkpoint kept, as
# before the history was bounded; 1000: the default).
#
# Usage: bench/profile.sh [--seconds S] [--bin PATH]... [workloads, default "1x1 8x100"]
#   --bin PATH   profile this `evident` binary instead of building one; given more than once, the
#                binaries take turns in each workload and setting (peers of the same run), each
#                row naming its binary's file name
#   --keeps "K..."  checkpoint history settings to run (default "1 1000"); `default` passes no
#                `--keep-checkpoint-entries` (for builds from before the flag, e.g. issue 18's start)
# Raw outputs (perf data and reports) go to target/bench-profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds=10
bins=()
keeps="1 1000"
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --bin) bins+=("$(realpath "$2")"); shift 2 ;;
    --keeps) keeps=$2; shift 2 ;;
    *) break ;;
  esac
done
workloads=${*:-1x1 8x100}
out=target/bench-profile
mkdir -p "$out"
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p evident-cli
  bins=("$repo/target/release/evident")
fi
data=$(mktemp -d -p "$repo/target" bench-profile-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

echo "load before: $(uptime)"
echo "| binary | workload | keep | events/s | CPU us/event: all | sequencer | producers and main | SQLite indexer + WAL checkpointer | bytes written/event |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for w in $workloads; do
  producers=${w%x*} batch=${w#*x}
  for keep in $keeps; do
    for bin in "${bins[@]}"; do
      name=$(basename "$bin")
      run=$name-$w-$keep
      dir=$data/$run
      perf record -q -F 499 -o "$out/perf-$run.data" -- /usr/bin/time -f %O -o "$out/io-$run.txt" \
        "$bin" hammer --data-dir "$dir" --producers "$producers" --batch "$batch" --seconds "$seconds" \
        ${keep:+$([ "$keep" = default ] || echo --keep-checkpoint-entries "$keep")} --json \
        >"$out/hammer-$run.json" 2>/dev/null
      perf report -q -i "$out/perf-$run.data" --sort comm --stdio -F overhead,sample,comm \
        >"$out/comm-$run.txt" 2>/dev/null
      perf report -q -i "$out/perf-$run.data" --sort sym --stdio >"$out/sym-$run.txt" 2>/dev/null
      python3 - "$out" "$name" "$w" "$keep" <<'PY'
import json, re, sys
out, name, w, keep = sys.argv[1:]
run = json.load(open(f"{out}/hammer-{name}-{w}-{keep}.json"))
events = run["events"]
samples = {}
for line in open(f"{out}/comm-{name}-{w}-{keep}.txt"):
    parts = line.split()
    if len(parts) >= 3 and parts[0].endswith("%"):
        samples[parts[2]] = samples.get(parts[2], 0) + int(parts[1])
us = lambda n: f"{n / 499 / events * 1e6:.1f}"
total = sum(samples.values())
pick = lambda prefix: sum(v for k, v in samples.items() if k.startswith(prefix))
# Thread names are cut to 15 bytes: builds before the indexer was named "evident-indexer" and the
# WAL checkpointer "evident-checkpt" show both as "evident-sqlite-".
seq = pick("evident-sequen")
background = pick("evident-sqlite") + pick("evident-indexer") + pick("evident-checkpt")
blocks = int(open(f"{out}/io-{name}-{w}-{keep}.txt").read().split()[-1])
print(f"| {name} | {w} | {keep} | {run['events_per_second']:,.0f} | {us(total)} | {us(seq)} | {us(total - seq - background)} "
      f"| {us(background)} | {blocks * 512 / events / 1000:.1f} KB |")
PY
      rm -rf "$dir"
    done
  done
done
echo "load after: $(uptime)"
