#!/usr/bin/env bash
# Computes every vector's X-HelpCrunch-Signature with openssl, independently
# of the code under test: the hex HMAC-SHA1 of the raw body keyed with the
# signing key. Also writes ids.txt, each event vector's expected CloudEvent
# id worked out here with jq/python from the documented rule, which the Go
# tests compare with want.json.
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"

sign() { # sign ALGORITHM KEY FILE
  openssl dgst "-$1" -hmac "$2" -r < "$3" | cut -d' ' -f1
}
request() { # request DIR HEADERVALUE [METHOD]
  local method=${3:-POST} hdr=""
  if [ -n "$2" ]; then hdr=", \"headers\": {\"X-HelpCrunch-Signature\": \"$2\", \"Content-Type\": \"application/json\"}"; fi
  printf '{"method": "%s", "path": "/webhooks/helpcrunch", "received_at": "%s"%s}\n' "$method" "$received" "$hdr" > "$1/request.json"
}
reject() { # reject DIR REASON
  printf '{"reason": "%s"}\n' "$2" > "$1/want.json"
}

events="chat_new chat_snoozed chat_closed_rated customer_new customer_email_updated message_chat_customer message_chat_customer_retry message_email_agent no_envelope_id unknown_event"
: > ids.txt
for d in $events; do
  request $d "$(sign sha1 "$secret" $d/body)"
  id=$(jq -r '.id // empty' $d/body)
  if [ -z "$id" ]; then
    # No envelope id: SHA-256 of the sorted, compact JSON of what a retry
    # keeps (event, createdAt, eventData).
    id=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); sys.stdout.write(json.dumps({"event":e["event"],"createdAt":e["createdAt"],"eventData":e["eventData"]},sort_keys=True,separators=(",",":"),ensure_ascii=False))' $d/body | sha256sum | cut -d' ' -f1)
  fi
  echo "$d $id" >> ids.txt
done
# Upper-case hex is the same signature.
echo "uppercase_signature $(jq -r .id uppercase_signature/body)" >> ids.txt
request uppercase_signature "$(sign sha1 "$secret" uppercase_signature/body | tr a-f A-F)"

request forged "$(sign sha1 "not-the-signing-key" forged/body)"; reject forged signature_mismatch
full=$(sign sha1 "$secret" truncated/body)
request truncated "${full:0:20}"; reject truncated malformed_signature
request sha256_instead "$(sign sha256 "$secret" sha256_instead/body)"; reject sha256_instead malformed_signature
request missing_header ""; reject missing_header missing_signature
request tampered "$(sign sha1 "$secret" chat_new/body)"; reject tampered signature_mismatch
# The placeholder value shown in HelpCrunch's setup guide: 40 characters, not hex.
request not_hex "att73h99zvs9ipdmaj2rmr4oi5jhtwubs6q6tfwr"; reject not_hex malformed_signature
request get_method "$(sign sha1 "$secret" get_method/body)" GET; reject get_method method_not_allowed
