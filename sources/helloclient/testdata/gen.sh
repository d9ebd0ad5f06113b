#!/usr/bin/env bash
# Computes every vector's X-Webhook-Signature with openssl, independently of
# the code under test: v1 = hex HMAC-SHA256(secret, "<t>.<body>").
set -euo pipefail
cd "$(dirname "$0")"
secret=$(cat secret)
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)

sign() { # sign KEY TIMESTAMP FILE
  { printf '%s.' "$2"; cat "$3"; } | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1
}
request() { # request DIR HEADERVALUE
  if [ -n "$2" ]; then hdr=", \"headers\": {\"X-Webhook-Signature\": \"$2\", \"Content-Type\": \"application/json\"}"; else hdr=""; fi
  printf '{"method": "POST", "path": "/webhooks/helloclient", "received_at": "%s"%s}\n' "$received" "$hdr" > "$1/request.json"
}

for d in lead appointment chatlog unknown_type; do
  request $d "t=$t,v1=$(sign "$secret" $t $d/body)"
done
# Hello Client signs JSON.stringify of the payload: the compact form of a pretty body.
python3 -c 'import json,sys; sys.stdout.write(json.dumps(json.load(open("lead_pretty/body")), separators=(",",":"), ensure_ascii=False))' > /tmp/hc_compact.json
request lead_pretty "t=$t,v1=$(sign "$secret" $t /tmp/hc_compact.json)"
request forged "t=$t,v1=$(sign "not-the-key" $t forged/body)"
stale_t=$((t - 600))
request stale "t=$stale_t,v1=$(sign "$secret" $stale_t stale/body)"
request missing_header ""
full=$(sign "$secret" $t truncated/body)
request truncated "t=$t,v1=${full:0:40}"
request tampered "t=$t,v1=$(sign "$secret" $t lead/body)"
