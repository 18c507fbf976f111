#!/usr/bin/env bash
# The SQLite indexer's cost on a big store, peers in the same run: for each binary, the store's
# index file is deleted and the binary builds it again from the stored events (search rows,
# targets, insight's rollups and path table), as it does when it catches up on a bulk load. For
# each: seconds until a trend and a funnel answer (both wait for the index), entries per second,
# bytes the server wrote and read per entry (/proc/PID/io), and its peak RSS.
#
# Usage: bench/reindex.sh --store DIR [--key-file F] [--rounds N] BINARY...
# DIR is a SQLite store's data directory (for example one kept by
# `bench/insight.sh --stores sqlite --keep K`: K/sqlite-rollups/dir); F holds a reader's key
# (default: DIR/../reader, where bench/insight.sh keeps it). Binaries run in turn, N rounds
# (default 1), so a drift of the machine's load falls on all of them. The store's events are not
# changed; its index file is left as the last binary built it.
# Raw outputs in target/bench-reindex/ (machine.txt, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."

store=""
key_file=""
rounds=1
binaries=()
while [ $# -gt 0 ]; do
  case $1 in
    --store) store=$(realpath "$2"); shift 2 ;;
    --key-file) key_file=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -*) echo "usage: bench/reindex.sh --store DIR [--key-file F] [--rounds N] BINARY..." >&2; exit 2 ;;
    *) binaries+=("$(realpath "$1")"); shift ;;
  esac
done
if [ -z "$store" ] || [ ${#binaries[@]} -eq 0 ]; then
  echo "usage: bench/reindex.sh --store DIR [--key-file F] [--rounds N] BINARY..." >&2
  exit 2
fi
[ -f "$store/evident.sqlite" ] || { echo "no SQLite store in $store (evident.sqlite is missing)" >&2; exit 2; }
key_file=${key_file:-$store/../reader}
[ -s "$key_file" ] || { echo "no reader key in $key_file (give one with --key-file)" >&2; exit 2; }
reader=$(cat "$key_file")
out=target/bench-reindex
mkdir -p "$out"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT

entries=$(sqlite3 "file:$store/evident.sqlite?mode=ro" "SELECT sum(size) FROM logs" 2>/dev/null ||
  python3 -c "import sqlite3,sys; print(sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True).execute('SELECT sum(size) FROM logs').fetchone()[0])" "$store/evident.sqlite")
{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "store: $store ($entries entries, $(du -sm "$store/evident.sqlite" | cut -f1) MB)"
} | tee "$out/machine.txt"

range="from=2026-10-31T00:00:00Z&to=2026-11-30T00:00:00Z"
questions=(
  "/v1/insights/trend?by=channel&bucket=day&$range"
  "/v1/insights/funnel?steps=type:contact.opened;type:contact.verified&within=7d&$range"
)
echo "| binary | round | seconds | entries/s | KB written per entry | KB read per entry | index file (MB) | peak RSS (MiB) |" > "$out/table.md"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |" >> "$out/table.md"
for round in $(seq "$rounds"); do
  for binary in "${binaries[@]}"; do
    rm -f "$store"/evident.sqlite-index "$store"/evident.sqlite-index-wal "$store"/evident.sqlite-index-shm
    log=$(mktemp)
    EVIDENT_LISTEN=127.0.0.1:0 "$binary" serve --data-dir "$store" > /dev/null 2> "$log" &
    server=$!
    for _ in $(seq 150); do grep -q "listening on" "$log" && break; sleep 0.2; done
    base=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$base" ] || { cat "$log" >&2; exit 1; }
    start=$(date +%s.%N)
    for question in "${questions[@]}"; do
      # A wait longer than the server's (30 s) is answered 503 with Retry-After: ask again.
      until code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $reader" "$base$question") &&
        [ "$code" = 200 ]; do
        case $code in 503) ;; *) echo "GET $question answered $code" >&2; exit 1 ;; esac
        sleep 1
      done
    done
    done_at=$(date +%s.%N)
    written=$(awk '/^write_bytes/ { print $2 }' "/proc/$server/io")
    read_bytes=$(awk '/^read_bytes/ { print $2 }' "/proc/$server/io")
    rss=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$server/status")
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    rm -f "$log"
    index_mb=$(du -sm "$store/evident.sqlite-index" | cut -f1)
    awk -v b="$binary" -v r="$round" -v s="$start" -v e="$done_at" -v n="$entries" -v w="$written" \
      -v rd="$read_bytes" -v ix="$index_mb" -v rss="$rss" 'BEGIN {
        t = e - s
        printf "| %s | %d | %.1f | %d | %.1f | %.1f | %d | %d |\n", b, r, t, n / t, w / n / 1024, rd / n / 1024, ix, rss
      }' | tee -a "$out/table.md"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
cat "$out/table.md"
