#!/usr/bin/env bash
# Writes every vector's request.json, computing X-Hub-Signature-256 with
# openssl independently of the code under test: sha256=<hex HMAC-SHA256 of
# the raw body> keyed with the app secret (the text in ./secret). openssl's
# HMAC-SHA256 is checked first against RFC 4231's test case 2; Meta's pages
# give no signed example to check against.
#
# Then writes each accepted vector's ids.txt: the id of every event it must
# make, in order, worked out here from the rule package meta documents:
# a WhatsApp change holding one message -> the wamid; one status ->
# "<wamid>:<status>"; a messaging item with a message -> message.mid; else
# the hex SHA-256 of entry id NUL list NUL the item's canonical JSON (keys
# sorted, no white space).
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
token=$(cat verify_token)
received="2026-11-20T10:15:30Z"

rfc=$(printf 'what do ya want for nothing?' | openssl dgst -sha256 -hmac "Jefe" -r | cut -d' ' -f1)
[ "$rfc" = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" ] || { echo "openssl disagrees with RFC 4231: $rfc" >&2; exit 1; }

sign() { # sign SECRET FILE [ALG]
  openssl dgst "-${3:-sha256}" -hmac "$1" -r < "$2" | cut -d' ' -f1
}
post() { # post DIR HEADERS-JSON
  printf '{"method": "POST", "path": "/webhooks/meta", "received_at": "%s", "headers": {"Content-Type": "application/json"%s}}\n' \
    "$received" "${2:+, $2}" > "$1/request.json"
}
get() { # get DIR QUERY-JSON
  printf '{"method": "GET", "path": "/webhooks/meta", "received_at": "%s", "query": %s}\n' "$received" "$2" > "$1/request.json"
}
sig() { printf '"X-Hub-Signature-256": "sha256=%s"' "$1"; }

accepted="whatsapp_message whatsapp_status_batch whatsapp_status_retry messenger_message messenger_batch instagram_message"
for v in $accepted; do
  post $v "$(sig "$(sign "$secret" $v/body)")"
done
post tampered "$(sig "$(sign "$secret" whatsapp_message/body)")"
post wrong_secret "$(sig "$(sign "another-app-secret" wrong_secret/body)")"
post malformed "\"X-Hub-Signature-256\": \"$(sign "$secret" malformed/body)\""
post sha1_only "\"X-Hub-Signature\": \"sha1=$(sign "$secret" sha1_only/body sha1)\""
post missing_signature ""

get handshake "{\"hub.mode\": [\"subscribe\"], \"hub.challenge\": [\"1158201444\"], \"hub.verify_token\": [\"$token\"]}"
get handshake_wrong_token "{\"hub.mode\": [\"subscribe\"], \"hub.challenge\": [\"1158201444\"], \"hub.verify_token\": [\"${token}x\"]}"
get handshake_missing_token '{"hub.mode": ["subscribe"], "hub.challenge": ["1158201444"]}'
get get_without_hub '{}'

for v in $accepted; do
  python3 - "$v/body" > "$v/ids.txt" <<'PY'
import hashlib, json, sys

body = json.load(open(sys.argv[1]))

def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

for entry in body["entry"]:
    eid = str(entry.get("id", ""))
    for lst in ("changes", "messaging", "standby"):
        for item in entry.get(lst, []):
            ident = ""
            if lst == "changes":
                value = item.get("value", {})
                msgs, sts = value.get("messages", []), value.get("statuses", [])
                if len(msgs) == 1 and not sts:
                    ident = msgs[0].get("id", "")
                elif len(sts) == 1 and not msgs:
                    ident = sts[0]["id"] + ":" + sts[0]["status"]
            elif lst == "messaging" and "message" in item:
                ident = item["message"].get("mid", "")
            if not ident:
                ident = hashlib.sha256(eid.encode() + b"\0" + lst.encode() + b"\0" + canonical(item)).hexdigest()
            print(ident)
PY
done
