#!/usr/bin/env bash
# Where the CPU and the bytes go per event (issue 18): `perf record -F 499` of `evident hammer`,
# CPU per stored event by thread (samples / 499 Hz / events), and bytes written to the device per
# event (`/usr/bin/time` file system outputs, 512-byte blocks), for each workload and each
# checkpoint history setting (`--keep-checkpoint-entries 1`: every commit's checkpoint kept, as
# before the history was bounded; 1000: the default).
#
# Usage: bench/profile.sh [--seconds S] [workloads, default "1x1 8x100"]
# Raw outputs (perf data and reports) go to target/bench-profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds=10
if [ "${1:-}" = --seconds ]; then seconds=$2; shift 2; fi
workloads=${*:-1x1 8x100}
out=target/bench-profile
mkdir -p "$out"
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
cargo build --release -q -p evident-cli
bin=$repo/target/release/evident
data=$(mktemp -d -p "$repo/target" bench-profile-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

echo "load before: $(uptime)"
echo "| workload | keep | events/s | CPU us/event: all | sequencer | producers and main | SQLite indexer + WAL checkpointer | bytes written/event |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for w in $workloads; do
  producers=${w%x*} batch=${w#*x}
  for keep in 1 1000; do
    dir=$data/$w-$keep
    perf record -q -F 499 -o "$out/perf-$w-$keep.data" -- /usr/bin/time -f %O -o "$out/io-$w-$keep.txt" \
      "$bin" hammer --data-dir "$dir" --producers "$producers" --batch "$batch" --seconds "$seconds" \
      --keep-checkpoint-entries "$keep" --json >"$out/hammer-$w-$keep.json" 2>/dev/null
    perf report -q -i "$out/perf-$w-$keep.data" --sort comm --stdio -F overhead,sample,comm \
      >"$out/comm-$w-$keep.txt" 2>/dev/null
    perf report -q -i "$out/perf-$w-$keep.data" --sort sym --stdio >"$out/sym-$w-$keep.txt" 2>/dev/null
    python3 - "$out" "$w" "$keep" <<'PY'
import json, re, sys
out, w, keep = sys.argv[1:]
run = json.load(open(f"{out}/hammer-{w}-{keep}.json"))
events = run["events"]
samples = {}
for line in open(f"{out}/comm-{w}-{keep}.txt"):
    parts = line.split()
    if len(parts) >= 3 and parts[0].endswith("%"):
        samples[parts[2]] = samples.get(parts[2], 0) + int(parts[1])
us = lambda n: f"{n / 499 / events * 1e6:.1f}"
total = sum(samples.values())
pick = lambda prefix: sum(v for k, v in samples.items() if k.startswith(prefix))
# Thread names are cut to 15 bytes: the indexer and the WAL checkpointer are both "evident-sqlite-".
seq, background = pick("evident-sequen"), pick("evident-sqlite")
blocks = int(open(f"{out}/io-{w}-{keep}.txt").read().split()[-1])
print(f"| {w} | {keep} | {run['events_per_second']:,.0f} | {us(total)} | {us(seq)} | {us(total - seq - background)} "
      f"| {us(background)} | {blocks * 512 / events / 1000:.1f} KB |")
PY
    rm -rf "$dir"
  done
done
echo "load after: $(uptime)"
