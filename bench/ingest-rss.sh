#!/usr/bin/env bash
# Peak memory of `evident serve` (SQLite, fresh store) while `evident ingest` sends a history in
# 1,000-event batches, for each binary in turn, ROUNDS times alternating, so that the builds are
# peers in the same run. Prints one line per run: binary, peak RSS (VmHWM, MiB), events/s.
#
# Usage: bench/ingest-rss.sh [--rounds N] HISTORY.ndjson BINARY...
# HISTORY: NDJSON events, one a line (for example a copy of bench/insight.sh's history, or its
# first 1,000,000 lines). Set EVIDENT_* variables in the environment to change the server's settings.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2
if [ "${1:-}" = --rounds ]; then rounds=$2; shift 2; fi
[ $# -ge 2 ] || { echo "usage: bench/ingest-rss.sh [--rounds N] HISTORY.ndjson BINARY..." >&2; exit 2; }
history=$(realpath "$1"); shift
[ -f "$history" ] || { echo "no history file: $history" >&2; exit 2; }
events=$(wc -l < "$history")
mkdir -p target
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); events: $events"
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    dir=$(mktemp -d -p "$PWD/target" bench-ingest-rss.XXXXXX)
    EVIDENT_LISTEN=127.0.0.1:0 "$bin" serve --data-dir "$dir/data" > "$dir/out" 2> "$dir/err" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$dir/err" && break; sleep 0.2; done
    base=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$dir/err" | head -1)
    [ -n "$base" ] || { echo "$bin did not start: $(cat "$dir/err")" >&2; kill "$pid"; exit 1; }
    admin=$(sed -n 's/admin key: //p' "$dir/out")
    producer=$("$bin" keys create --role producer --url "$base" --key "$admin" --json | jq -r .key)
    start=$(date +%s.%N)
    "$bin" ingest "$history" --format ndjson --batch-size 1000 --url "$base" --key "$producer" --json > /dev/null
    end=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
    rate=$(awk -v s="$start" -v e="$end" -v n="$events" 'BEGIN { printf "%d", n / (e - s) }')
    echo "$bin: peak RSS $hwm MiB, $rate events/s"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
