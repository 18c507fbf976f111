#!/usr/bin/env bash
# Detection benchmark in one run: ingestion throughput without detection and with 20 active rules
# (the same hammer workload, alternating runs on fresh data directories), then the time from an
# event's acknowledgement to its finding's webhook delivery at a local receiver (p50/p99).
# Detection runs in the hammer's process exactly as in `evident serve` (the same Detector task
# fed by the engine's commit broadcast). See bench/README.md, "Detection".
#
# Usage: bench/detect.sh [--seconds S] [--rounds R] [--samples N]
#   --seconds S   length of each throughput run; default 10
#   --rounds R    pairs of runs (without, with rules), alternating; default 3
#   --samples N   webhook latency samples after the load; default 300 (during the load: one
#                 every 60 ms of the load, sent 20 ms apart)
# Raw outputs are kept in target/bench-detect/ (runs.txt, table.md, machine.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=10
rounds=3
samples=300
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    *) echo "usage: bench/detect.sh [--seconds S] [--rounds R] [--samples N]" >&2; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-$repo/target}
out=$repo/target/bench-detect
mkdir -p "$out"
rm -f "$out"/runs.txt "$out"/table.md "$out"/machine.txt
data=$(mktemp -d -p "$repo/target" bench-detect-data.XXXXXX)
trap 'rm -rf "$data"' EXIT

{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -m | awk '/^Mem:/{print $2}') MiB"
  echo "rustc: $(rustc --version)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"
echo

echo "== build"
cargo build --release -p evident-cli
# A private copy: the target directory may be shared with other work trees.
cp "$target/release/evident" "$data/evident"
bin=$data/evident
echo

# The workload: 8 producers x 100 events per request, about 500 bytes each (hammer's sample event).
run() {  # run <label> [hammer args...]
  local label=$1; shift
  rm -rf "$data/$label"
  sync
  local summary
  summary=$("$bin" hammer --data-dir "$data/$label" --json --producers 8 --batch 100 --seconds "$seconds" "$@")
  echo "$label $summary" | tee -a "$out/runs.txt"
  rm -rf "$data/$label"
}

echo "== throughput: $rounds rounds of ${seconds} s without and with 20 rules"
for round in $(seq "$rounds"); do
  run "none-$round"
  run "rules20-$round" --detect-rules 20
done
echo

echo "== webhook latency: $samples findings, one every 20 ms, after a ${seconds} s load with 20 rules"
run "latency" --detect-rules 20 --webhook-samples "$samples"
# The same during a load: one sample every 20 ms from the start of the load (fewer, so that they
# are all sent while the producers run).
under=$(( seconds * 1000 / 60 ))
echo "== webhook latency under load: $under findings, one every 20 ms, during a ${seconds} s load with 20 rules"
run "latency-under-load" --detect-rules 20 --webhook-samples "$under" --webhook-under-load
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
echo

echo "== results"
python3 - "$out/runs.txt" <<'PY' | tee "$out/table.md"
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, summary = line.split(" ", 1)
    runs[label] = json.loads(summary)
none = [r["events_per_second"] for l, r in runs.items() if l.startswith("none-")]
rules = [r["events_per_second"] for l, r in runs.items() if l.startswith("rules20-")]
pairs = [runs[f"rules20-{i}"]["events_per_second"] / runs[f"none-{i}"]["events_per_second"]
         for i in range(1, len(none) + 1)]
print("| runs | events/s (each run) | median events/s |")
print("| --- | --- | --- |")
print(f"| no detection | {', '.join(f'{x:.0f}' for x in none)} | {statistics.median(none):.0f} |")
print(f"| 20 active rules | {', '.join(f'{x:.0f}' for x in rules)} | {statistics.median(rules):.0f} |")
print()
print(f"Throughput kept with 20 rules: median of medians {statistics.median(rules) / statistics.median(none):.1%}; "
      f"per round {', '.join(f'{p:.1%}' for p in pairs)} (goal: at least 90%).")
lag = [r["detect"]["drain_seconds"] for l, r in runs.items() if l.startswith("rules20-")]
evaluated = [r["detect"]["events_evaluated"] for l, r in runs.items() if l.startswith("rules20-")]
findings = [r["detect"]["findings"] for l, r in runs.items() if l.startswith("rules20-")]
print(f"Detector behind the log when the load stopped: {', '.join(f'{x:.3f} s' for x in lag)} "
      f"(events evaluated per run: {', '.join(map(str, evaluated))}; findings recorded: {', '.join(map(str, findings))}).")
d = runs["latency"]["detect"]
print()
print(f"Webhook delivery, acknowledgement to receipt: p50 {d['webhook_p50_ms']:.1f} ms, p99 {d['webhook_p99_ms']:.1f} ms, "
      f"max {d['webhook_max_ms']:.1f} ms over {d['webhook_samples']} findings ({d['webhook_missing']} missing; goal: p99 under 2000 ms), after the load.")
u = runs["latency-under-load"]
d = u["detect"]
print(f"Under load ({u['events_per_second']:.0f} events/s at the same time): p50 {d['webhook_p50_ms']:.1f} ms, "
      f"p99 {d['webhook_p99_ms']:.1f} ms, max {d['webhook_max_ms']:.1f} ms over {d['webhook_samples']} findings "
      f"({d['webhook_missing']} missing).")
PY
