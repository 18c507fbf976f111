#!/usr/bin/env bash
# Evident on PostgreSQL in one run with its peers, on the engine benchmark's workloads: Evident on
# PostgreSQL with one node and with three nodes sharing the database (three engines, each with its
# own connections; producers spread over them, so two thirds of the requests go through a
# follower's durable inbox), Evident embedded (SQLite), and the PostgreSQL trigger-built hash chain
# (shared/bench/pg-hash-chain/run.sh, run as-is, same server). All at full durability: the
# server's `synchronous_commit` and `fsync` are printed with the results. See bench/README.md.
#
# Usage: bench/postgres.sh [--seconds S] [--workloads "1x1 8x1 ..."]
# Raw outputs are kept in target/bench-postgres/ (runs.txt, pg.txt, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=10
workloads="1x1 8x1 64x1 8x100 64x100"
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    *) echo "usage: bench/postgres.sh [--seconds S] [--workloads \"1x1 8x100 ...\"]" >&2; exit 2 ;;
  esac
done

url=${EVIDENT_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
out=target/bench-postgres
mkdir -p "$out"
rm -f "$out"/runs.txt "$out"/pg.txt "$out"/table.md
data=$(mktemp -d -p "$repo/target" bench-postgres-data.XXXXXX)
schemas=()
cleanup() {
  rm -rf "$data"
  for schema in "${schemas[@]}"; do
    PGOPTIONS=--client-min-messages=warning psql -qX "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" || true
  done
}
trap cleanup EXIT

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  psql -XtAc "SELECT 'postgres settings: ' || string_agg(name || '=' || setting, ' ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
      'commit_delay', 'shared_buffers', 'server_version', 'max_connections')" "$url"
} | tee "$out/machine.txt"

echo "== build"
cargo build --release -p evident-cli
bin=${CARGO_TARGET_DIR:-$repo/target}/release/evident
echo

# One hammer run; records `<label> <JSON summary>`.
run() {
  local label=$1; shift
  local dir=$data/$label
  rm -rf "$dir"
  local summary
  summary=$("$bin" hammer --data-dir "$dir" --json --seconds "$seconds" "$@")
  echo "$label $summary" | tee -a "$out/runs.txt"
  rm -rf "$dir"
}

n=0
for w in $workloads; do
  producers=${w%x*} batch=${w#*x}
  run "embedded-$w" --producers "$producers" --batch "$batch"
  for nodes in 1 3; do
    n=$((n + 1))
    schema=bench_pg_$$_$n
    schemas+=("$schema")
    run "pg${nodes}-$w" --producers "$producers" --batch "$batch" \
      --database-url "$url" --database-schema "$schema" --nodes "$nodes"
    PGOPTIONS=--client-min-messages=warning psql -qX "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE"
  done
done
echo

echo "== PostgreSQL hash chain"
clients=$(for w in $workloads; do echo "${w%x*}"; done | sort -nu | tr '\n' ' ')
"$repo/../shared/bench/pg-hash-chain/run.sh" "$seconds" $clients | tee "$out/pg.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
echo

python3 - "$out" "$workloads" <<'PY' | tee "$out/table.md"
import json, os, re, sys

out, workloads = sys.argv[1], sys.argv[2].split()
runs = {}
for line in open(os.path.join(out, "runs.txt")):
    label, summary = line.split(" ", 1)
    runs[label] = json.loads(summary)
pg = {}
for line in open(os.path.join(out, "pg.txt")):
    m = re.match(r"pg-hash-chain (\S+) clients=(\d+) events/s=(\d+)", line)
    if m:
        pg[(m.group(1), int(m.group(2)))] = float(m.group(3))


def cell(r):
    return f'{r["events_per_second"]:,.0f} ({r["p50_ms"]:.1f} / {r["p99_ms"]:.1f} ms)'


def row(*cells):
    print("| " + " | ".join(cells) + " |")


print("### Evident on PostgreSQL against its peers (events/s; p50 / p99 acknowledgement)\n")
row("producers x batch", "PostgreSQL, 1 node", "PostgreSQL, 3 nodes", "embedded", "PG hash chain",
    "1 node / hash chain", "3 nodes / hash chain", "1 node / embedded", "3 nodes / embedded")
row(*["---"] * 9)
for w in workloads:
    producers, batch = map(int, w.split("x"))
    one, three, emb = runs[f"pg1-{w}"], runs[f"pg3-{w}"], runs[f"embedded-{w}"]
    chain = pg.get(("insert-one" if batch == 1 else "insert-batch100", producers))
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
    row(f"{producers} x {batch}", cell(one), cell(three), cell(emb), f"{chain:,.0f}" if chain else "n/a",
        ratio(one["events_per_second"], chain), ratio(three["events_per_second"], chain),
        ratio(one["events_per_second"], emb["events_per_second"]),
        ratio(three["events_per_second"], emb["events_per_second"]))
PY
