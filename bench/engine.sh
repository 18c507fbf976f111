#!/usr/bin/env bash
# Engine ingest benchmark in one run: Evident (`evident hammer`) against three peers measured in the
# same run on the same disk: plain SQLite inserts of the same rows (`hammer --peer plain-sqlite`),
# an append-and-fdatasync loop (`hammer --peer fsync-loop`) and the PostgreSQL trigger-built hash
# chain (shared/bench/pg-hash-chain/run.sh, run as-is). Then the p99 acknowledgement latency at half
# of Evident's maximum load (S + 1 seconds, the first second's requests reported apart: a fresh
# process's 64 producer threads first fault in their allocators' memory), bytes on disk per event, peak resident memory and fsck speed over a
# long run, and a Markdown table with ratios to the peers. See bench/README.md.
#
# Usage: bench/engine.sh [--events N] [--seconds S] [--long-producers P] [--no-pg] [--baseline BIN]
#   --events N           size of the long run (peak RSS, bytes on disk, fsck); default 1000000
#   --seconds S          length of each throughput run; default 10
#   --long-producers P   producer threads of the long run (x 100 events per request); default 8
#   --no-pg              skip the PostgreSQL peer
#   --baseline BIN       another `evident` binary (an earlier build, copied aside) run right after
#                        this one in every throughput workload, as a peer of the same run
# Raw outputs are kept in target/bench-engine/ (runs.txt, pg.txt, long-*.txt, fsck.txt, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

events=1000000
seconds=10
long_producers=8
pg=yes
baseline=
while [ $# -gt 0 ]; do
  case $1 in
    --events) events=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --long-producers) long_producers=$2; shift 2 ;;
    --no-pg) pg=no; shift ;;
    --baseline) baseline=$(realpath "$2"); shift 2 ;;
    *) echo "usage: bench/engine.sh [--events N] [--seconds S] [--long-producers P] [--no-pg] [--baseline BIN]" >&2; exit 2 ;;
  esac
done

out=target/bench-engine
mkdir -p "$out"
rm -f "$out"/runs.txt "$out"/pg.txt "$out"/long-*.txt "$out"/fsck.txt "$out"/table.md "$out"/machine.txt
# Fresh data directories on the same disk as the work tree, removed at the end.
data=$(mktemp -d -p "$repo/target" bench-engine-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -m | awk '/^Mem:/{print $2}') MiB"
  echo "disk: $(df -h "$data" | awk 'NR==2{print $1, $2}') (data directories under $data)"
  echo "rustc: $(rustc --version)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"
echo

echo "== build"
cargo build --release -p evident-cli
bin=$repo/target/release/evident
echo

# One hammer run on a fresh data directory; records
# `<label> <bytes of the data dir> <peak RSS in KiB> <JSON summary>`. `run_bin` is the binary.
run_bin=$bin
hammer() {
  local label=$1; shift
  local dir=$data/$label
  rm -rf "$dir"
  sync
  local summary bytes rss
  summary=$(/usr/bin/time -f %M -o "$data/rss" "$run_bin" hammer --data-dir "$dir" --json "$@")
  bytes=$(du -sb "$dir" | cut -f1)
  rss=$(tail -1 "$data/rss")
  echo "$label $bytes $rss $summary" | tee -a "$out/runs.txt"
  rm -rf "$dir"
}

echo "== throughput: ${seconds} s per run"
workloads="1x1 8x1 64x1 8x100 64x100"
for w in $workloads; do
  producers=${w%x*} batch=${w#*x}
  for peer in evident plain-sqlite fsync-loop; do
    hammer "$peer-$w" --peer "$peer" --producers "$producers" --batch "$batch" --seconds "$seconds"
    if [ "$peer" = evident ] && [ -n "$baseline" ]; then
      run_bin=$baseline hammer "baseline-$w" --peer evident --producers "$producers" --batch "$batch" --seconds "$seconds"
    fi
  done
done
echo

if [ "$pg" = yes ]; then
  echo "== PostgreSQL hash chain"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  psql -h 127.0.0.1 -U postgres -XtAc "SELECT 'settings: ' || string_agg(name || '=' || setting, ' ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
      'commit_delay', 'shared_buffers', 'server_version')" | tee "$out/pg.txt"
  "$repo/../shared/bench/pg-hash-chain/run.sh" "$seconds" 1 8 64 | tee -a "$out/pg.txt"
  echo
fi

# Half of Evident's best throughput, in the workload that reached it, paced open-loop.
best() {  # best <batch>: "<events/s> <producers>" of Evident's fastest run with that batch size
  python3 - "$out/runs.txt" "$1" <<'PY'
import json, sys
best = max((json.loads(line.split(" ", 3)[3]) for line in open(sys.argv[1])
            if line.startswith("evident-") and "-half-" not in line.split()[0]
            and line.split()[0].endswith("x" + sys.argv[2])),
           key=lambda r: r["events_per_second"])
print(f'{best["events_per_second"]:.0f} {best["producers"]}')
PY
}
echo "== latency at half of the maximum load"
read -r max producers <<<"$(best 100)"
hammer "evident-half-$producers""x100" --producers "$producers" --batch 100 --seconds "$((seconds + 1))" --warmup 1 --rate $((max / 2))
read -r max producers <<<"$(best 1)"
hammer "evident-half-$producers""x1" --producers "$producers" --batch 1 --seconds "$((seconds + 1))" --warmup 1 --rate $((max / 2))
echo

echo "== long run: $events events, $long_producers producers x 100"
sync
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$out/long-load.txt"
/usr/bin/time -v -o "$out/long-time.txt" \
  "$bin" hammer --data-dir "$data/long" --json --producers "$long_producers" --batch 100 --events "$events" --seconds 1e9 \
  | tee "$out/long-hammer.txt"
du -sb "$data/long" | cut -f1 | tee "$out/long-bytes.txt"
ls -l "$data/long" >>"$out/long-bytes.txt"
grep -E 'Maximum resident|Elapsed|Percent of CPU' "$out/long-time.txt"
echo
echo "== fsck of the long run's store (warm page cache)"
"$bin" fsck --data-dir "$data/long" | tee "$out/fsck.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
echo

echo "== results"
python3 - "$out" "$events" <<'PY' | tee "$out/table.md"
import json, os, re, sys

out, long_events = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(os.path.join(out, "runs.txt")):
    label, size, rss, summary = line.split(" ", 3)
    runs[label] = json.loads(summary) | {"disk_bytes": int(size), "rss_kib": int(rss)}
pg = {}
pg_path = os.path.join(out, "pg.txt")
if os.path.exists(pg_path):
    for line in open(pg_path):
        m = re.match(r"pg-hash-chain (\S+) clients=(\d+) events/s=(\d+)", line)
        if m:
            pg[(m.group(1), int(m.group(2)))] = float(m.group(3))


def rate(v):
    return f"{v:,.0f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def row(*cells):
    print("| " + " | ".join(cells) + " |")


print("### Throughput and acknowledgement latency (closed loop: each producer waits for its ack)\n")
row("producers x events per request", "Evident events/s", "p50 / p99 ms", "plain SQLite events/s",
    "fsync loop events/s", "PostgreSQL hash chain events/s", "Evident / PG", "Evident / plain SQLite",
    "Evident / fsync loop")
row(*["---"] * 9)
for w in ["1x1", "8x1", "64x1", "8x100", "64x100"]:
    producers, batch = map(int, w.split("x"))
    e, p, f = runs[f"evident-{w}"], runs[f"plain-sqlite-{w}"], runs[f"fsync-loop-{w}"]
    g = pg.get(("insert-one" if batch == 1 else "insert-batch100", producers))
    row(f"{producers} x {batch}", rate(e["events_per_second"]), f'{e["p50_ms"]:.2f} / {e["p99_ms"]:.2f}',
        f'{rate(p["events_per_second"])} ({p["p50_ms"]:.2f} / {p["p99_ms"]:.2f} ms)',
        f'{rate(f["events_per_second"])} ({f["p50_ms"]:.2f} / {f["p99_ms"]:.2f} ms)',
        rate(g) if g else "n/a", ratio(e["events_per_second"], g) if g else "n/a",
        ratio(e["events_per_second"], p["events_per_second"]), ratio(e["events_per_second"], f["events_per_second"]))
if ("insert-batch100", 1) in pg:
    print(f'\nPostgreSQL with 1 client x 100 events per transaction: {rate(pg[("insert-batch100", 1)])} events/s.')

baseline = [w for w in ["1x1", "8x1", "64x1", "8x100", "64x100"] if f"baseline-{w}" in runs]
if baseline:
    print("\n### Against the baseline binary (run right after this one in each workload)\n")
    row("producers x events per request", "this build events/s (p50 / p99 ms)", "baseline events/s (p50 / p99 ms)",
        "this / baseline", "bytes on disk per event: this, baseline")
    row(*["---"] * 5)
    for w in baseline:
        e, b = runs[f"evident-{w}"], runs[f"baseline-{w}"]
        row(w.replace("x", " x "), f'{rate(e["events_per_second"])} ({e["p50_ms"]:.2f} / {e["p99_ms"]:.2f})',
            f'{rate(b["events_per_second"])} ({b["p50_ms"]:.2f} / {b["p99_ms"]:.2f})',
            ratio(e["events_per_second"], b["events_per_second"]),
            f'{e["disk_bytes"] / e["events"]:.0f}, {b["disk_bytes"] / b["events"]:.0f}')

print("\n### Goals\n")
row("goal", "measured", "met")
row(*["---"] * 3)
best_batch = max((runs[f"evident-{w}"] for w in ["8x100", "64x100"]), key=lambda r: r["events_per_second"])
v = best_batch["events_per_second"]
# Issue 18, goal 1: 100,000 events/s in 100-event batches, or half the fsync loop's figure in the
# same run, whichever is lower; and at least plain SQLite at every row.
w = f'{best_batch["producers"]}x100'
half_fsync = runs[f"fsync-loop-{w}"]["events_per_second"] / 2
target = min(100_000, half_fsync)
row(f"batches of 100: 100,000 events/s or half the fsync loop ({rate(half_fsync)} at {w.replace('x', ' x ')}), the lower",
    f'{rate(v)} events/s ({best_batch["producers"]} producers)',
    "yes" if v >= target else f"NO ({v / target:.2f}x of {rate(target)})")
for w in ["1x1", "8x1", "64x1", "8x100", "64x100"]:
    producers, batch = map(int, w.split("x"))
    r = runs[f"evident-{w}"]["events_per_second"] / runs[f"plain-sqlite-{w}"]["events_per_second"]
    row(f"at least plain SQLite, {producers} x {batch}", f"{r:.2f}x", "yes" if r >= 1 else "NO")
for label, r in sorted(runs.items()):
    if label.startswith("evident-half-"):
        row(f'p99 ack < 20 ms at half the maximum load ({r["producers"]} x {r["batch"]}, '
            f'paced at {rate(r["rate"])} events/s, achieved {rate(r["events_per_second"])})',
            f'p99 {r["p99_ms"]:.2f} ms (p50 {r["p50_ms"]:.2f} ms); the first second apart: '
            f'p99 {r.get("warmup_p99_ms", 0):.2f}, max {r.get("warmup_max_ms", 0):.2f} ms',
            "yes" if r["p99_ms"] < 20 else "NO")
long = json.loads(open(os.path.join(out, "long-hammer.txt")).read().strip().splitlines()[-1])
time_text = open(os.path.join(out, "long-time.txt")).read()
rss_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_text).group(1)) / 1024
disk = int(open(os.path.join(out, "long-bytes.txt")).readline())
fsck_m = re.search(r"checked (\d+) entries in ([\d.]+) s \((\d+) entries/s\)", open(os.path.join(out, "fsck.txt")).read())
fsck_rate = float(fsck_m.group(3))
at = f'{long["events"]:,} events'
row(f"< 300 MB resident at 10,000,000 events (this run: {at}, {long['producers']} x 100)", f"{rss_mb:.0f} MiB peak RSS",
    ("yes" if rss_mb < 300 else "NO") + ("" if long["events"] >= 10_000_000 else " (at this size)"))
row(f"fsck >= 500,000 events/s ({at})", f"{rate(fsck_rate)} entries/s",
    "yes" if fsck_rate >= 500_000 else f"NO ({fsck_rate / 500_000:.2f}x of the goal)")

print("\n### Other measures\n")
row("measure", "value")
row(*["---"] * 2)
row(f'long run ({at}, {long["producers"]} x 100)', f'{rate(long["events_per_second"])} events/s, '
    f'p50 {long["p50_ms"]:.2f} ms, p99 {long["p99_ms"]:.2f} ms, peak RSS {rss_mb:.0f} MiB')
row("bytes on disk per event, Evident (long run, whole data dir)", f'{disk / long["events"]:.0f}')
for peer in ["evident", "plain-sqlite", "fsync-loop"]:
    r = runs[f"{peer}-64x100"]
    row(f"bytes on disk per event, {peer} (64 x 100 run, {r['events']:,} events)",
        f'{r["disk_bytes"] / r["events"]:.0f}')
row("peak RSS of the throughput runs, Evident (1x1, 8x1, 64x1, 8x100, 64x100)",
    ", ".join(f'{runs[f"evident-{w}"]["rss_kib"] / 1024:.0f} MiB' for w in ["1x1", "8x1", "64x1", "8x100", "64x100"]))
row("producer JSON per event", f'{long["event_bytes"]:.0f} bytes')
PY
