#!/usr/bin/env bash
# PostgreSQL change capture under a write load: the capture's lag (age of the oldest change not yet
# acknowledged by Evident, sampled every 200 ms) while pgbench writes, and the write throughput
# with the capture trigger against its peer in the same run, the same load without the trigger.
# Against a local `evident serve` (embedded store) and the PostgreSQL of $BENCH_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test; a database `evident_bench_capture` is created
# next to it and dropped at the end). See bench/README.md, "Capture".
#
# Usage: bench/capture.sh [--seconds S] [--rate TPS] [--clients C]
# Raw outputs are kept in target/bench-capture/ (runs.txt, lag.txt, machine.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=20
rate=200
clients=4
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) echo "usage: bench/capture.sh [--seconds S] [--rate TPS] [--clients C]" >&2; exit 2 ;;
  esac
done

admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
db_url=${admin_url%/*}/evident_bench_capture
target=${CARGO_TARGET_DIR:-$repo/target}
out=$repo/target/bench-capture
mkdir -p "$out"
rm -f "$out"/runs.txt "$out"/lag.txt "$out"/machine.txt
work=$(mktemp -d -p "$repo/target" bench-capture.XXXXXX)
server=""
capture=""
cleanup() {
  [ -n "$capture" ] && kill "$capture" 2>/dev/null
  [ -n "$server" ] && kill "$server" 2>/dev/null
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS evident_bench_capture WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "postgres: $(psql -Atc 'SHOW server_version' "$admin_url")"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

echo "== build"
if [ -n "${EVIDENT_BENCH_BIN:-}" ]; then
  cp "$EVIDENT_BENCH_BIN" "$work/evident"   # a quick check of the script; not for numbers
else
  cargo build --release -p evident-cli
  cp "$target/release/evident" "$work/"
fi
bin=$work/evident

"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/stdout" 2>"$work/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/stderr" && break; sleep 0.1; done
url=$(grep -o "listening on [^ ]*" "$work/stderr" | head -1 | cut -d' ' -f3)
admin=$(sed -n 's/^admin key: //p' "$work/stdout")
[ -n "$url" ] && [ -n "$admin" ] || { echo "evident serve did not start:"; cat "$work/stderr"; exit 1; }
export EVIDENT_URL=$url
EVIDENT_API_KEY=$("$bin" keys create --role producer --label bench-capture --json --key "$admin" |
  sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
export EVIDENT_API_KEY

psql -q "$admin_url" -c "DROP DATABASE IF EXISTS evident_bench_capture WITH (FORCE)" -c "CREATE DATABASE evident_bench_capture"
psql -q "$db_url" -c "CREATE TABLE customers (id int PRIMARY KEY, customer_ref text NOT NULL, email text, updated_at timestamptz)"
cat >"$work/write.sql" <<'SQL'
\set id random(1, 100000)
BEGIN;
SET LOCAL evident.actor = 'bench-agent';
SET LOCAL evident.reason = 'support ticket';
INSERT INTO customers VALUES (:id, 'cust-' || :id, 'c' || :id || '@example.com', now())
  ON CONFLICT (id) DO UPDATE SET email = 'u' || :id || '@example.com', updated_at = now();
COMMIT;
SQL
load() {  # load <label>
  pgbench -n -c "$clients" -j 2 -R "$rate" -T "$seconds" -f "$work/write.sql" "$db_url" >"$work/pgbench-$1.txt" 2>&1
  local tps
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench-$1.txt" | head -1)
  local latency
  latency=$(sed -n 's/^latency average = \(.*\)$/\1/p' "$work/pgbench-$1.txt")
  echo "$1 tps=$tps latency_average=$latency" | tee -a "$out/runs.txt"
}

echo "== peer: ${seconds} s of $rate transactions/s from $clients clients, no capture"
load without-capture

echo "== the same load with capture installed and draining"
"$bin" capture postgres --database-url "$db_url" --table customers:customer_ref --personal customers.email --once
"$bin" capture postgres --database-url "$db_url" --poll-ms 50 2>"$work/capture.log" &
capture=$!
(
  while kill -0 "$capture" 2>/dev/null; do
    psql -Atc "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(at)), 0), count(*) FROM evident_capture.outbox" "$db_url"
    sleep 0.2
  done
) >"$out/lag.txt" 2>/dev/null &
sampler=$!
load with-capture
drained_at=$(date +%s.%N)
for _ in $(seq 1 600); do
  [ "$(psql -Atc 'SELECT count(*) FROM evident_capture.outbox' "$db_url")" = 0 ] && break
  sleep 0.1
done
catchup=$(echo "$(date +%s.%N) - $drained_at" | bc)
kill "$sampler" 2>/dev/null || true
sort -n -t'|' -k1 "$out/lag.txt" | awk -F'|' -v catchup="$catchup" '
  function rank(q,   r) { r = int(NR * q + 0.999999); return r < 1 ? 1 : r }
  { lag[NR] = $1; if ($2 > depth) depth = $2 }
  END {
    if (NR == 0) { print "no lag samples"; exit 1 }
    printf "lag (age of the oldest unsent change), %d samples: p50 %.3f s, p99 %.3f s, max %.3f s; deepest outbox %d; drained %.1f s after the load\n",
      NR, lag[rank(0.5)], lag[rank(0.99)], lag[NR], depth, catchup
  }' | tee -a "$out/runs.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
