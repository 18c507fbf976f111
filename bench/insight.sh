#!/usr/bin/env bash
# Customer insight on a store of N events (100 customers per 10,000 events, the ratio of issue 15's
# goal of 10,000,000 events and 100,000 customers), on both stores in one run, each built twice
# through `evident ingest` (the normal commit path): once with insight's hourly rollups (the
# default) and once without (EVIDENT_INSIGHT_ROLLUPS=off, so insight scans the events). For each:
# the ingest rate, how long after the last acknowledgement a first question answered (the index
# and rollups catching up: the rollups' cost off the acknowledgement path), then the latency of a
# 30-day trend (by channel, daily), a 4-step funnel with a 7-day window and weekly cohorts over 12
# weeks (best of 3 runs each, over HTTP with a reader's key, so suppression and the self-audit
# record are included), and the server's peak RSS (VmHWM) after them.
#
# Usage: bench/insight.sh [--events N] [--stores "sqlite postgres"] [--modes "rollups scan"]
#                         [--keep DIR] [--max-seconds T] [--order time|random] [--history FILE]
# EVIDENT: the binary (default target/release/evident, built if missing).
# --keep DIR keeps each store (DIR/<store>-<mode>/, the PostgreSQL schema evident_bench_insight_<mode>)
# instead of deleting it; a later run with the same DIR finds the store filled and only measures
# (with whatever binary EVIDENT names now, which catches up on the stored events first).
# --max-seconds T gives up on a question after T seconds (shown as ">T s"; default 600).
# --order: `time` (the default) sends the history in time order, as a live capture sends events
# as they happen; `random` sends each customer's contact in turn, its steps in order but the
# contacts at random times of the month (a bulk import's order, and the runs before 2026-12-04):
# the store's time-keyed indexes then take rows all over their range.
# --history FILE sends FILE instead of making the history (a copy of one this script made, to
# fill a second store without making it again).
# Raw outputs in target/bench-insight/ (machine.txt, table.md); stores are deleted at the end
# unless kept.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

events=100000
stores="sqlite postgres"
modes="rollups scan"
keep=""
max_seconds=600
order=time
history=""
while [ $# -gt 0 ]; do
  case $1 in
    --events) events=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --keep) keep=$(mkdir -p "$2" && realpath "$2"); shift 2 ;;
    --max-seconds) max_seconds=$2; shift 2 ;;
    --order) order=$2; shift 2 ;;
    --history) history=$(realpath "$2"); shift 2 ;;
    *) echo "usage: bench/insight.sh [--events N] [--stores \"sqlite postgres\"] [--modes \"rollups scan\"] [--keep DIR] [--max-seconds T] [--order time|random] [--history FILE]" >&2; exit 2 ;;
  esac
done
case $order in time|random) ;; *) echo "--order is time or random, not $order" >&2; exit 2 ;; esac
evident=${EVIDENT:-target/release/evident}
if [ ! -x "$evident" ]; then
  cargo build --release -p evident-cli
fi
url=${EVIDENT_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
out=target/bench-insight
mkdir -p "$out"
work=$(mktemp -d -p "$repo/target" bench-insight.XXXXXX)
schema="evident_bench_insight_$$"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
  [ -n "$keep" ] || PGOPTIONS=--client-min-messages=warning psql -qX "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "binary: $evident ($(file -b "$evident" | cut -d, -f1)), events: $events, customers: $((events / 100)), order: $order"
} | tee "$out/machine.txt"

all_filled=""
if [ -n "$keep" ]; then
  all_filled=yes
  for store in $stores; do for mode in $modes; do
    [ -f "$keep/$store-$mode/filled" ] || all_filled=""
  done; done
fi
if [ -n "$all_filled" ]; then
  : > "$work/events.ndjson"  # every store is filled already: no history to make
elif [ -n "$history" ]; then
  ln -s "$history" "$work/events.ndjson"
else
# The history: contacts opened, verified, changed and resolved across four channels over the 30
# days before 2026-11-30, each customer's contacts spread over the month.
python3 - "$events" "$order" > "$work/events.raw" <<'EOF'
import datetime, json, random, sys
n = int(sys.argv[1]); customers = max(1, n // 100); keyed = sys.argv[2] == "time"
rng = random.Random(15)
end = 1795996800  # 2026-11-30T00:00:00Z
steps = ["contact.opened", "contact.verified", "contact.changed", "contact.resolved"]
written = 0
def emit(i, subject, kind, t, channel, ok=True):
    event = {"id": f"b{i}", "source": "//bench.insight", "type": kind, "action": "other",
             "time": datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "actor": {"id": f"agt_{rng.randrange(50)}", "type": "user"}, "subject": subject,
             "targets": [{"type": "contact", "id": f"ct{i}"}], "outcome": "success" if ok else "failure",
             "origin": {"service": channel}, "metadata": {"team": rng.choice(["billing", "accounts", "technical"])}}
    if not ok:
        event["reason"] = "identity_not_confirmed"
    sys.stdout.write((f"{t:012d}\t" if keyed else "") + json.dumps(event) + "\n")
while written < n:
    subject = f"cus_{rng.randrange(customers):06d}"
    t = end - rng.randrange(30 * 86400)
    channel = rng.choice(["phone", "chat", "email", "web"])
    for k, kind in enumerate(steps):
        if written >= n:
            break
        ok = not (kind == "contact.verified" and rng.random() < (0.35 if channel == "chat" else 0.05))
        emit(written, subject, kind, t, channel, ok)
        written += 1
        t += rng.randrange(60, 3 * 86400 if channel == "email" else 7200)
        if not ok:
            break
EOF
# In time order: each line keyed by its time, sorted (stably, on disk), the key cut off.
if [ "$order" = time ]; then
  LC_ALL=C sort -s -t "$(printf '\t')" -k1,1 -T "$work" "$work/events.raw" | cut -f2- > "$work/events.ndjson"
  rm "$work/events.raw"
else
  mv "$work/events.raw" "$work/events.ndjson"
fi
fi

best_of_3() {  # prints the best wall time in ms of GET $1 with the reader key
  local best=""
  for _ in 1 2 3; do
    local s
    s=$(curl -s -o /dev/null --max-time "$max_seconds" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $reader" "$base$1" || true)
    if [ "${s%% *}" = 000 ]; then echo ">$max_seconds s"; return; fi
    [ "${s%% *}" = 200 ] || { echo "GET $1 answered ${s%% *}" >&2; exit 1; }
    local ms
    ms=$(awk -v t="${s#* }" 'BEGIN { printf "%d", t * 1000 }')
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}

echo "| store | insight | events | ingest (events/s) | first answer after ingest (s) | trend 30 d (ms) | funnel 4 steps, 7 d (ms) | cohorts 12 weeks (ms) | peak RSS (MiB) |" > "$out/table.md"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" >> "$out/table.md"
for store in $stores; do
  for mode in $modes; do
    data="${keep:-$work}/$store-$mode"
    [ -z "$keep" ] || schema="evident_bench_insight_$mode"
    filled=""
    [ -f "$data/filled" ] && filled=yes
    if [ -z "$filled" ]; then rm -rf "$data"; fi
    mkdir -p "$data"
    env=(EVIDENT_LISTEN=127.0.0.1:0)
    if [ "$mode" = scan ]; then env+=(EVIDENT_INSIGHT_ROLLUPS=off); fi
    if [ "$store" = postgres ]; then
      [ -n "$filled" ] || PGOPTIONS=--client-min-messages=warning psql -qX "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
      env+=(EVIDENT_DATABASE_URL="$url" EVIDENT_DATABASE_SCHEMA="$schema")
    fi
    env "${env[@]}" "$evident" serve --data-dir "$data/dir" > "$data/out" 2> "$data/err" &
    server=$!
    for _ in $(seq 100); do grep -q "listening on" "$data/err" && break; sleep 0.2; done
    base=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$data/err" | head -1)
    if [ -z "$filled" ]; then
      admin=$(sed -n 's/admin key: //p' "$data/out")
      producer=$("$evident" keys create --role producer --url "$base" --key "$admin" --json | jq -r .key)
      "$evident" keys create --role reader --url "$base" --key "$admin" --json | jq -r .key > "$data/reader"
      reader=$(cat "$data/reader")
      start=$(date +%s.%N)
      "$evident" ingest "$work/events.ndjson" --format ndjson --batch-size 1000 --url "$base" --key "$producer" --json > "$data/ingest.json"
      acked=$(date +%s.%N)
      awk -v s="$start" -v e="$acked" -v n="$events" 'BEGIN { printf "%d", n / (e - s) }' > "$data/rate"
      [ -z "$keep" ] || touch "$data/filled"
    else
      reader=$(cat "$data/reader")
      acked=$(date +%s.%N)  # a kept store: "first answer" is how long this binary took to catch up
    fi
    rate=$(cat "$data/rate")
    range="from=2026-10-31T00:00:00Z&to=2026-11-30T00:00:00Z"
    trend_path="/v1/insights/trend?by=channel&bucket=day&$range"
    # The first question waits for the index (and the rollups) to cover every acknowledged event;
    # a wait longer than the server's (30 s) is answered 503 with Retry-After, so ask again.
    until curl -sf -o /dev/null -H "Authorization: Bearer $reader" "$base$trend_path"; do sleep 1; done
    caught=$(awk -v s="$acked" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    trend=$(best_of_3 "$trend_path")
    funnel=$(best_of_3 "/v1/insights/funnel?steps=type:contact.opened;type:contact.verified%20outcome:success;type:contact.changed;type:contact.resolved&within=7d&$range")
    cohorts=$(best_of_3 "/v1/insights/cohorts?period=week&from=2026-09-07T00:00:00Z&to=2026-11-30T00:00:00Z")
    rss=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$server/status")
    echo "| $store | $mode | $events | $rate | $caught | $trend | $funnel | $cohorts | $rss |" | tee -a "$out/table.md"
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    [ -n "$keep" ] || rm -rf "$data"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
cat "$out/table.md"
