#!/usr/bin/env bash
# Command 2 of 2: creates, reads and changes a customer through the example service, then shows
# what Evident recorded: the customer's record history, with the values (an investigator's read,
# with a purpose, which Evident records too).
set -euo pipefail
cd "$(dirname "$0")"
if [ -f .state/env ]; then source .state/env; fi
: "${EVIDENT_URL:?set EVIDENT_URL (run.sh sets it when it starts the server)}"
: "${INVESTIGATOR_KEY:?set INVESTIGATOR_KEY to an investigator key of the tenant}"
app="http://127.0.0.1:${PORT:-5000}"
say() { printf '\n== %s\n' "$*"; }
call() { curl -sS -H 'X-User: agent-5' -H 'Content-Type: application/json' "$@"; echo; }

say "create a customer"
created=$(call -X POST "$app/customers" -d '{"name": "Ada Lovelace", "email": "ada@example.com"}')
echo "$created"
id=$(echo "$created" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
say "read it (X-Purpose says why)"
call -H 'X-Purpose: customer called about an invoice' "$app/customers/$id"
say "change the e-mail address"
call -X PATCH "$app/customers/$id" -d '{"email": "ada@example.org"}'
sleep 1  # the spool sends in the background
say "the spool"
call "$app/audit/spool"
say "what Evident holds: the history of customer $id"
curl -sS -H "Authorization: Bearer $INVESTIGATOR_KEY" \
  "$EVIDENT_URL/v1/records/customer/$id/history?purpose=demo" | .venv/bin/python -m json.tool
say "and every event of the service"
curl -sS -H "Authorization: Bearer $INVESTIGATOR_KEY" \
  "$EVIDENT_URL/v1/events?source=//crm.example.com/customer-api&order=oldest" \
  | .venv/bin/python -c 'import json,sys; [print(v["index"], v["event"]["type"], v["event"]["actor"]["id"], v["event"].get("reason", "")) for v in json.load(sys.stdin)["events"]]'
