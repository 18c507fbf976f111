#!/usr/bin/env bash
# The Python client's tests against a real `evident serve`: builds the server (unless EVIDENT_BIN
# names one), makes ./.venv, installs the package with its test extras, runs pytest. Needs the
# shared vectors (../shared/vectors beside the checkout, or EVIDENT_SHARED_DIR) and PostgreSQL on
# 127.0.0.1:5432 (database `test`); a missing one fails the run, it is never skipped. The type
# hints are checked with mypy --strict and the code with ruff first.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)

if [ -z "${EVIDENT_BIN:-}" ]; then
  (cd "$repo" && cargo build -q -p evident-cli)
  export EVIDENT_BIN="$repo/target/debug/evident"
fi
if [ ! -x "$EVIDENT_BIN" ]; then
  echo "sdks/python/test.sh: no evident binary at $EVIDENT_BIN" >&2
  exit 1
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# The type hints are part of the interface (py.typed): they must check.
.venv/bin/python -m mypy
.venv/bin/python -m ruff check src tests ../../bench/sdk_python.py ../../examples/python-flask/app.py
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
