#!/usr/bin/env bash
# Builds and tests the TypeScript client against a real `evident serve`, then the Express example.
# The server binary: $EVIDENT_BIN if set, else `cargo build -p evident-cli` (target/debug/evident).
# Needs Node.js >= 20 and npm; the shared vectors at ../shared/vectors next to the checkout (or
# $EVIDENT_VECTORS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ -n "${EVIDENT_BIN:-}" ]; then
  if [ ! -x "$EVIDENT_BIN" ]; then
    echo "sdks/typescript/test.sh: EVIDENT_BIN=$EVIDENT_BIN is not an executable evident binary" >&2
    exit 1
  fi
else
  (cd "$root" && cargo build -p evident-cli)
  export EVIDENT_BIN="$root/target/debug/evident"
  if [ ! -x "$EVIDENT_BIN" ]; then
    echo "sdks/typescript/test.sh: cargo build did not produce $EVIDENT_BIN" >&2
    exit 1
  fi
fi
command -v node >/dev/null || { echo "sdks/typescript/test.sh: node is missing (Node.js >= 20)" >&2; exit 1; }

cd "$here"
npm ci --no-audit --no-fund
npm run -s format:check
npm run build
npm test

cd "$root/examples/node-express"
npm ci --no-audit --no-fund
npm test
