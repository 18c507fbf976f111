#!/usr/bin/env bash
# The web console's end-to-end tests: Debian's Chromium (installed here when missing, never
# downloaded by npm), playwright-core and axe-core from the committed lockfile, a real
# `evident serve`. A missing browser fails the run.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
[ -x /usr/bin/chromium ] || { echo "console-tests: /usr/bin/chromium is missing" >&2; exit 1; }
command -v python3 >/dev/null || { echo "console-tests: python3 is missing" >&2; exit 1; }
( cd .. && cargo build -q -p evident-cli )
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent
npm test
