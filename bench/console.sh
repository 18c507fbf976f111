#!/usr/bin/env bash
# The web console's speed budgets, measured in Debian's Chromium: first useful paint (navigation to
# search results painted) under 1 s and search results under 300 ms on a store of EVENTS events
# (default 1,000,000, made once with `evident hammer` and kept in target/bench-console/). Prints the
# machine's load, then JSON from console-tests/bench.js. PROFILE=dev uses the debug build (faster to
# build, slower to fill); run it on an otherwise idle machine.
#   bench/console.sh [EVENTS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-1000000}"
REPEATS="${2:-5}"
PROFILE="${PROFILE:-release}"
cargo build -q --profile "$PROFILE" -p evident-cli
BIN="target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/evident"
STORE="target/bench-console/store-$EVENTS"
if [ ! -f "$STORE/complete" ]; then
  rm -rf "$STORE"
  echo "filling $STORE with $EVENTS events (evident hammer)" >&2
  "$BIN" hammer --data-dir "$STORE" --producers 4 --batch 1000 --events "$EVENTS" --seconds 1000000 --json >&2
  touch "$STORE/complete"
fi
KEY="$("$BIN" keys create --global --data-dir "$STORE" --json | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')"
LOG="$(mktemp)"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$STORE" 2>"$LOG" &
SERVE=$!
trap 'kill "$SERVE" 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 1 600); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
BASE="$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$LOG" | head -1)"
[ -n "$BASE" ] || { echo "evident serve did not start:" >&2; cat "$LOG" >&2; exit 1; }
# A store just filled by `hammer` is indexed by the server's indexer after it starts; searches wait
# for it (503 after 30 s). Wait until one answers, so the timings below measure searches, not the
# catch-up.
echo "waiting for the search index to cover the store" >&2
for _ in $(seq 1 120); do
  status="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$BASE/v1/events?limit=1" || true)"
  [ "$status" = 200 ] && break
  sleep 5
done
[ "$status" = 200 ] || { echo "the search index did not catch up in 10 minutes (last status $status)" >&2; exit 1; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), profile $PROFILE" >&2
( cd console-tests && [ -d node_modules ] || PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent )
node console-tests/bench.js "$BASE" "$KEY" "$REPEATS"
