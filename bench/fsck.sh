#!/usr/bin/env bash
# fsck speed by commit pattern (issue 18, goal 6): stores written by `evident hammer` with
# one-event commits (1 producer x 1 event) and with 100-event requests (8 x 100), each once with
# every commit's checkpoint kept in the history (`--keep-checkpoint-entries 1`, what the store
# did before the history was bounded) and once with the default (one per 1,000 entries or per
# second); then `evident fsck` three times on each (page cache warm). Stores are deleted at the end.
#
# Usage: bench/fsck.sh [--seconds S]   (how long each store is written; default 60)
# Raw outputs go to target/bench-fsck/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds=60
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: bench/fsck.sh [--seconds S]" >&2; exit 2 ;;
  esac
done
out=target/bench-fsck
mkdir -p "$out"
rm -f "$out"/*
cargo build --release -q -p evident-cli
bin=$repo/target/release/evident
data=$(mktemp -d -p "$repo/target" bench-fsck-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

echo "load before: $(uptime)" | tee "$out/load.txt"
echo "| store | keep | entries | checkpoints checked | fsck entries/s (3 runs) |"
echo "| --- | --- | --- | --- | --- |"
for workload in 1x1 8x100; do
  producers=${workload%x*} batch=${workload#*x}
  for keep in 1 1000; do
    dir=$data/$workload-$keep
    "$bin" hammer --data-dir "$dir" --producers "$producers" --batch "$batch" --seconds "$seconds" \
      --keep-checkpoint-entries "$keep" --json >"$out/hammer-$workload-$keep.json"
    rates=()
    for run in 1 2 3; do
      "$bin" fsck --data-dir "$dir" >"$out/fsck-$workload-$keep-$run.txt"
      rates+=("$(sed -n 's/.*(\([0-9]*\) entries\/s).*/\1/p' "$out/fsck-$workload-$keep-$run.txt")")
    done
    summary=$(sed -n 's/.*: ok: \([0-9]*\) entries, [0-9]* tiles, \([0-9]*\) checkpoints checked/\1 | \2/p' \
      "$out/fsck-$workload-$keep-1.txt")
    echo "| $producers x $batch | $keep | $summary | ${rates[*]} |"
    rm -rf "$dir"
  done
done | tee "$out/table.md"
echo "load after: $(uptime)" | tee -a "$out/load.txt"
