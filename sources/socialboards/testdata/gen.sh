#!/usr/bin/env bash
# Writes every vector's request.json. Socialboards signs nothing: POSTs carry
# the secret `key` query parameter (testdata/secret) and the verification GET
# carries verifyToken (testdata/verify_token). Then checks, independently of
# the code under test, that every event id in want.json is the SHA-256 of
# its body.
set -euo pipefail
cd "$(dirname "$0")"
key=$(cat secret)
token=$(cat verify_token)
received="2026-11-20T10:15:30Z"

request() { # request DIR METHOD QUERYJSON
  printf '{"method": "%s", "path": "/webhooks/socialboards", "received_at": "%s", "query": %s, "headers": {"Content-Type": "application/json"}}\n' \
    "$2" "$received" "$3" > "$1/request.json"
}

for d in ticket_status_change legacy_no_ticket_id unknown_event; do
  request $d POST "{\"key\": [\"$key\"]}"
done
request wrong_key POST '{"key": ["sb-test-post-key-7f3a9d"]}'
request missing_key POST '{}'
request handshake GET "{\"challenge\": [\"2135675231\"], \"verifyToken\": [\"$token\"], \"key\": [\"$key\"]}"
request handshake_wrong_token GET "{\"challenge\": [\"2135675231\"], \"verifyToken\": [\"${token}x\"]}"
request handshake_missing_token GET '{"challenge": ["2135675231"]}'
request get_without_challenge GET "{\"verifyToken\": [\"$token\"], \"key\": [\"$key\"]}"

for want in */want.json; do
  d=$(dirname "$want")
  sum=$(sha256sum "$d/body" | cut -d' ' -f1)
  for id in $(jq -r '.events[]?.id' "$want"); do
    [ "$id" = "$sum" ] || { echo "$d: event id $id is not the SHA-256 of the body ($sum)" >&2; exit 1; }
  done
done
