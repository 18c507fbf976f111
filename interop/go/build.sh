#!/usr/bin/env bash
# Builds the Go checker (interop/go/src/evident.dev/tlogcheck) in GOPATH mode,
# with no module proxy, against Debian's golang.org/x/mod sources:
#   apt-get install -y golang-go golang-golang-x-mod-dev
# Usage: interop/go/build.sh OUTPUT_BINARY   (works from any directory)
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 OUTPUT_BINARY" >&2
	exit 2
fi

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
out="$1"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

if ! command -v go >/dev/null 2>&1; then
	echo "$0: 'go' not found on PATH; install it with: apt-get install -y golang-go golang-golang-x-mod-dev" >&2
	exit 1
fi
xmod=/usr/share/gocode/src/golang.org/x/mod/sumdb
if [ ! -d "$xmod/tlog" ] || [ ! -d "$xmod/note" ]; then
	echo "$0: golang.org/x/mod sources not found under /usr/share/gocode; install them with: apt-get install -y golang-golang-x-mod-dev" >&2
	exit 1
fi

cd "$here"
env GO111MODULE=off GOPROXY=off GOFLAGS= \
	GOPATH="/usr/share/gocode:$here" \
	GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/evident-gocache}" \
	go build -o "$out" evident.dev/tlogcheck
