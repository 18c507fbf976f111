#!/usr/bin/env bash
# The Rust client's durable spool: events/s an application can record (each durable on return),
# with its peer in the same run: the same events posted directly and synchronously, one request
# per event. Then how fast the spool drains. Against a local `evident serve` (embedded store) on
# a fresh data directory. See bench/README.md, "Spool".
#
# Usage: bench/spool.sh [--seconds S] [--threads "1 4"]
# Raw outputs are kept in target/bench-spool/ (runs.txt, machine.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=5
threads="1 4"
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "usage: bench/spool.sh [--seconds S] [--threads \"1 4\"]" >&2; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-$repo/target}
out=$repo/target/bench-spool
mkdir -p "$out"
rm -f "$out"/runs.txt "$out"/machine.txt
work=$(mktemp -d -p "$repo/target" bench-spool.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

{
  echo "cores (nproc): $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "disk of the spool: $(df -h "$work" | awk 'NR==2{print $1, $2}')"
  echo "rustc: $(rustc --version)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

echo "== build"
cargo build --release -p evident-cli
cargo build --release -p evident-client --example spool_bench
cp "$target/release/evident" "$target/release/examples/spool_bench" "$work/"

"$work/evident" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/stdout" 2>"$work/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/stderr" && break; sleep 0.1; done
url=$(grep -o "listening on [^ ]*" "$work/stderr" | head -1 | cut -d' ' -f3)
admin=$(sed -n 's/^admin key: //p' "$work/stdout")
[ -n "$url" ] && [ -n "$admin" ] || { echo "evident serve did not start:"; cat "$work/stderr"; exit 1; }
key=$("$work/evident" keys create --role producer --label bench-spool --json --url "$url" --key "$admin" |
  sed -n 's/.*"key":"\([^"]*\)".*/\1/p')

for t in $threads; do
  echo "== $t application thread(s), ${seconds} s each"
  "$work/spool_bench" "$url" "$key" "$seconds" "$t" "$work/spool-$t" | tee -a "$out/runs.txt"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
