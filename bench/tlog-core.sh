#!/usr/bin/env bash
# evident-tlog micro-benchmarks in one run: the machine, OpenSSL's SHA-256 rate for 256-byte
# messages, then `cargo bench -p evident-tlog --bench tlog` (evident-tlog, tlog_tiles and ct-merkle
# side by side), then a table of the ratios that the goals in bench/README.md ask for.
#
# Usage: bench/tlog-core.sh [divan options...]   e.g. bench/tlog-core.sh --sample-count 500
# The raw outputs are kept in target/bench-tlog/ (openssl.txt, divan.txt, table.md).
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/bench-tlog
mkdir -p "$out"

echo "== machine"
echo "cores (nproc): $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if grep -qw sha_ni /proc/cpuinfo; then echo "sha_ni: present"; else echo "sha_ni: absent"; fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rustc: $(rustc --version)"
echo "openssl: $(openssl version)"
echo

echo "== openssl speed -evp sha256 -bytes 256"
openssl speed -evp sha256 -bytes 256 2>&1 | tee "$out/openssl.txt"
# The line is `sha256  <rate>k`, in thousands of bytes per second.
openssl_bps=$(awk '$1 == "sha256" { v = $2; sub(/k$/, "", v); printf "%.0f", v * 1000 }' "$out/openssl.txt")
if [ -z "$openssl_bps" ]; then
  echo "could not read the sha256 rate from openssl's output" >&2
  exit 1
fi
echo "openssl sha256, 256-byte messages: $openssl_bps bytes/s"
echo

echo "== cargo bench -p evident-tlog --bench tlog"
cargo bench -p evident-tlog --bench tlog -- --bytes-format=decimal "$@" 2>&1 | tee "$out/divan.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "== goals (medians; ratios > 1 mean evident-tlog is faster)"
python3 - "$out/divan.txt" "$openssl_bps" <<'PY' | tee "$out/table.md"
import re
import sys

lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
openssl_bps = float(sys.argv[2])

# Divan's table: the header names the columns and every row keeps the header's column positions.
header = next(i for i, line in enumerate(lines) if "fastest" in line and "median" in line)
seps = [i for i, c in enumerate(lines[header]) if c == "│"]
name_end = lines[header].index("fastest")
results, path, current = {}, [], None
for line in lines[header + 1:]:
    if len(line) <= seps[2]:
        continue
    median = line[seps[1] + 1:seps[2]].strip()
    named = re.search(r"[├╰]─ (\S+)", line[:name_end])
    if named:
        depth = named.start() // 3
        path = path[:depth] + [named.group(1)]
        current = "::".join(path)
        if median:
            results[current] = {"time": median, "rates": []}
    elif median and current in results:
        results[current]["rates"].append(median)

TIME = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def seconds(name):
    value, unit = results[name]["time"].split()
    return float(value) * TIME[unit]


def rate(name, kind):
    for text in results[name]["rates"]:
        value, unit = text.split()
        m = re.fullmatch(r"([KMGT]?)(i?)" + kind + "/s", unit)
        if m and (kind != "B" or not m.group(2)):
            return float(value) * SCALE[m.group(1)]
    raise KeyError(f"{name}: no {kind}/s rate in {results[name]['rates']}")


def fmt_time(s):
    return f"{s * 1e6:.2f} µs" if s >= 1e-6 else f"{s * 1e9:.0f} ns"


def row(*cells):
    print("| " + " | ".join(cells) + " |")


row("measure", "evident-tlog", "peer / baseline (same run)", "ratio", "goal", "met")
row(*["---"] * 6)

ours = rate("hash::evident_leaf_hash_256", "B")
ratio = ours / openssl_bps
row("leaf hash, 256-byte entries", f"{ours / 1e9:.3f} GB/s ({rate('hash::evident_leaf_hash_256', 'item') / 1e6:.2f} M hashes/s)",
    f"openssl {openssl_bps / 1e9:.3f} GB/s; tlog_tiles {rate('hash::tlog_tiles_record_hash_256', 'B') / 1e9:.3f} GB/s",
    f"{ratio:.2f}x openssl", "openssl within 1.5x (ratio >= 0.67)", "yes" if ratio >= 1 / 1.5 else "NO")

ours = rate("append::evident_append", "item")
tt = rate("append::tlog_tiles_stored_hashes", "item")
ct = rate("append::ct_merkle_push", "item")
row("appends/s, 64-byte entries, 0 to 1M", f"{ours / 1e6:.2f} M/s",
    f"tlog_tiles {tt / 1e6:.2f} M/s; ct-merkle {ct / 1e6:.2f} M/s",
    f"{ours / tt:.2f}x tlog_tiles, {ours / ct:.2f}x ct-merkle", ">= tlog_tiles (ratio >= 1)",
    "yes" if ours >= tt else "NO")
ours = rate("append::evident_append_leaf_hash", "item")
tt = rate("append::tlog_tiles_stored_hashes_for_record_hash", "item")
row("appends/s, leaf hash given", f"{ours / 1e6:.2f} M/s", f"tlog_tiles {tt / 1e6:.2f} M/s", f"{ours / tt:.2f}x tlog_tiles",
    "(information)", "")

for label, ours_name, peers in [
    ("inclusion proof, 1M leaves", "inclusion::evident_prove",
     [("tlog_tiles", "inclusion::tlog_tiles_prove_record"), ("ct-merkle", "inclusion::ct_merkle_prove_inclusion")]),
    ("inclusion verify, 1M leaves", "inclusion::evident_verify",
     [("tlog_tiles", "inclusion::tlog_tiles_check_record"), ("ct-merkle", "inclusion::ct_merkle_verify_inclusion")]),
    ("consistency proof, to 1M leaves", "consistency::evident_prove",
     [("tlog_tiles", "consistency::tlog_tiles_prove_tree"), ("ct-merkle", "consistency::ct_merkle_prove_consistency")]),
    ("consistency verify, to 1M leaves", "consistency::evident_verify",
     [("tlog_tiles", "consistency::tlog_tiles_check_tree"), ("ct-merkle", "consistency::ct_merkle_verify_consistency")]),
    ("checkpoint sign (1 Ed25519 key)", "checkpoint::evident_sign", [("raw Ed25519 sign", "checkpoint::ed25519_sign_body")]),
    ("checkpoint open (verify + parse)", "checkpoint::evident_open",
     [("raw Ed25519 verify_strict", "checkpoint::ed25519_verify_strict_body")]),
]:
    ours = seconds(ours_name)
    limit = 50e-6 if ours_name.startswith("checkpoint") else 5e-6
    row(label, fmt_time(ours), "; ".join(f"{p} {fmt_time(seconds(n))}" for p, n in peers),
        ", ".join(f"{seconds(n) / ours:.2f}x {p}" for p, n in peers), f"< {fmt_time(limit)}",
        "yes" if ours < limit else "NO")
PY
