#!/usr/bin/env bash
# Timeline read latency on a small fresh store: N sequential `GET /v1/subjects/{s}/timeline`
# (each self-audited, each waiting for the search index) after 2,000 events in 100-event requests.
# Compare two builds in one run, alternating: bench/reads.sh BIN_A PORT_A N; bench/reads.sh BIN_B ...
# usage: bench/reads.sh BINARY PORT N   (needs curl, jq, python3)
set -euo pipefail
bin=$(realpath "$1"); port=$2; n=$3
mkdir -p target && dir=$(mktemp -d -p "$PWD/target" bench-reads.XXXX)
cd "$dir" && touch serve.log
EVIDENT_LISTEN=127.0.0.1:$port "$bin" serve --data-dir "$dir/data" --listen 127.0.0.1:$port > serve.log 2>&1 &
pid=$!
until grep -q 'listening on' serve.log; do sleep 0.2; done
url=http://127.0.0.1:$port
admin=$(sed -n 's/^admin key: //p' serve.log)
prod=$(curl -s -X POST "$url/v1/keys" -H "Authorization: Bearer $admin" -d '{"role":"producer"}' | jq -r .key)
aud=$(curl -s -X POST "$url/v1/keys" -H "Authorization: Bearer $admin" -d '{"role":"auditor"}' | jq -r .key)
python3 - "$url" "$prod" <<'PY'
import json, sys, urllib.request
url, key = sys.argv[1], sys.argv[2]
lines = []
for i in range(2000):
    lines.append(json.dumps({"id": f"e-{i}", "source": "//crm.example.com/api", "type": "customer.record.updated",
      "action": "update", "time": "2026-11-26T10:00:00Z", "actor": {"id": f"agent-{i%7}", "type": "user"},
      "subject": f"cust-{i%50}", "targets": [{"type": "customer", "id": f"cust-{i%50}"}], "outcome": "success"}))
for k in range(0, 2000, 100):
    req = urllib.request.Request(url + "/v1/events", data="\n".join(lines[k:k+100]).encode(), method="POST",
        headers={"Authorization": "Bearer " + key, "content-type": "application/x-ndjson"})
    urllib.request.urlopen(req).read()
PY
for i in $(seq 1 "$n"); do
  curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $aud" "$url/v1/subjects/cust-$((i % 50))/timeline?limit=50"
done | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms  p99 %.1f ms  (n=%d)\n", a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, NR}'
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$dir"
