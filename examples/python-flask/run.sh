#!/usr/bin/env bash
# Command 1 of 2: starts an Evident server (unless EVIDENT_URL and EVIDENT_API_KEY point at one),
# installs the example's Python packages in ./.venv, and runs the customer service on
# http://127.0.0.1:5000. Ctrl-C stops both. Other ports: EVIDENT_PORT, PORT.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
repo=$(cd ../.. && pwd)
mkdir -p .state

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -e "$repo/sdks/python[sqlalchemy]" flask

if [ -z "${EVIDENT_URL:-}" ] || [ -z "${EVIDENT_API_KEY:-}" ]; then
  bin=${EVIDENT_BIN:-}
  if [ -z "$bin" ]; then
    bin=$(command -v evident || true)
  fi
  if [ -z "$bin" ]; then
    (cd "$repo" && cargo build -q -p evident-cli)
    bin="$repo/target/debug/evident"
  fi
  rm -rf .state/evident-data
  "$bin" serve --listen "127.0.0.1:${EVIDENT_PORT:-7411}" --data-dir .state/evident-data > .state/serve.out 2> .state/serve.err &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  for _ in $(seq 1 100); do grep -q "listening on" .state/serve.err 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" .state/serve.err || { cat .state/serve.err >&2; echo "evident serve did not start" >&2; exit 1; }
  admin=$(sed -n 's/^admin key: //p' .state/serve.out)
  export EVIDENT_URL="http://127.0.0.1:${EVIDENT_PORT:-7411}"
  key() {
    .venv/bin/python -c 'import evident,sys; print(evident.Api(sys.argv[1], sys.argv[2]).post_json("/v1/keys", {"role": sys.argv[3]})["key"])' \
      "$EVIDENT_URL" "$admin" "$1"
  }
  export EVIDENT_API_KEY=$(key producer)
  echo "EVIDENT_URL=$EVIDENT_URL" > .state/env
  echo "INVESTIGATOR_KEY=$(key investigator)" >> .state/env
fi
rm -f customers.db
echo "customer service on http://127.0.0.1:${PORT:-5000}, auditing to $EVIDENT_URL; now run ./try.sh"
.venv/bin/python app.py
