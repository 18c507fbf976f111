#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser on the stable toolchain: libFuzzer (libfuzzer-sys)
# with the SanitizerCoverage flags cargo-fuzz passes, but without cargo-fuzz's nightly-only
# sanitizer flags (so no AddressSanitizer; Rust's own checks and debug assertions stay on).
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Crashes are copied to fuzz/regressions/<target>/, which
# crates/evident-cli/tests/fuzz_regressions.rs replays in CI. Prints executions per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(event ingest_body tlog_texts inbox importers bundle)
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# An explicit --target keeps the instrumentation flags away from build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --bins --target "$triple"
bin="$CARGO_TARGET_DIR/$triple/release"
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    artifacts="artifacts/$target"
    mkdir -p "$corpus" "$artifacts" "regressions/$target"
    log="$artifacts/run.log"
    status=0
    "$bin/$target" "$corpus" "regressions/$target" -max_total_time="$seconds" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    for crash in "$artifacts"/crash-* "$artifacts"/oom-* "$artifacts"/timeout-*; do
        [ -e "$crash" ] && cp "$crash" "regressions/$target/"
    done
    echo "$target: $runs executions, coverage $cov, exit $status"
done
