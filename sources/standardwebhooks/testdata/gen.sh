#!/usr/bin/env bash
# Computes every vector's webhook-signature with openssl, independently of the
# code under test: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">
# keyed with the base64-decoded part of the whsec_ secret. The first vector
# is the specification's own (its reference libraries' signing test), so this
# script is checked against the specification too.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"
secret=$(cat secret)
hexkey() { printf '%s' "${1#whsec_}" | base64 -d | xxd -p -c 256; }
key=$(hexkey "$secret")
wrongkey=$(hexkey "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQtMTIz")
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)

sign() { # sign HEXKEY ID TIMESTAMP FILE [ALG]
  { printf '%s.%s.' "$2" "$3"; cat "$4"; } | openssl dgst "-${5:-sha256}" -mac HMAC -macopt "hexkey:$1" -binary | base64 -w0
}
request() { # request DIR RECEIVED HEADERS-JSON (without braces)
  printf '{"method": "POST", "path": "/webhooks/billing", "received_at": "%s", "headers": {"Content-Type": "application/json"%s}}\n' \
    "$2" "${3:+, $3}" > "$1/request.json"
}
std() { # std ID TIMESTAMP SIGNATURE-HEADER
  printf '"Webhook-Id": "%s", "Webhook-Timestamp": "%s", "Webhook-Signature": "%s"' "$1" "$2" "$3"
}

# The specification's vector.
spec_sig=$(sign "$key" msg_p5jXN8AQM9LWM0D4loKWxJek 1614265330 spec_vector/body)
[ "v1,$spec_sig" = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" ] || { echo "openssl disagrees with the specification's vector: $spec_sig" >&2; exit 1; }
request spec_vector 2021-02-25T15:02:10Z "$(std msg_p5jXN8AQM9LWM0D4loKWxJek 1614265330 "v1,$spec_sig")"
# The specification's example message, signed with our secret.
request spec_example_payload 2023-01-19T00:13:51Z "$(std msg_2KWPBgLlAfxdpx2AI54pPJ85f4W 1674087231 "v1,$(sign "$key" msg_2KWPBgLlAfxdpx2AI54pPJ85f4W 1674087231 spec_example_payload/body)")"

id=msg_2pQz4Hn8kX1rV7cT0bL9wY3eF
good() { sign "$key" $id $t "$1/body"; }
request invoice_paid "$received" "$(std $id $t "v1,$(good invoice_paid)")"
request multi_signature "$received" "$(std $id $t "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== v1,$(good multi_signature)")"
request wrong_key "$received" "$(std $id $t "v1,$(sign "$wrongkey" $id $t wrong_key/body)")"
# Keyed with the secret's text instead of its base64-decoded bytes.
textkey=$(printf '%s' "${secret#whsec_}" | xxd -p -c 256)
request secret_as_text "$received" "$(std $id $t "v1,$(sign "$textkey" $id $t secret_as_text/body)")"
full=$(good truncated)
request truncated "$received" "$(std $id $t "v1,${full:0:24}")"
request sha512_instead "$received" "$(std $id $t "v1,$(sign "$key" $id $t sha512_instead/body sha512)")"
hexsig=$({ printf '%s.%s.' $id $t; cat hex_instead/body; } | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -r | cut -d' ' -f1)
request hex_instead "$received" "$(std $id $t "v1,$hexsig")"
request missing_signature "$received" "\"Webhook-Id\": \"$id\", \"Webhook-Timestamp\": \"$t\""
request only_v1a "$received" "$(std $id $t "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==")"
request missing_id "$received" "\"Webhook-Timestamp\": \"$t\", \"Webhook-Signature\": \"v1,$(good missing_id)\""
request bad_timestamp "$received" "$(std $id hello "v1,$(sign "$key" $id hello bad_timestamp/body)")"
request tampered "$received" "$(std $id $t "v1,$(good invoice_paid)")"
stale=$((t - 301))
request stale "$received" "$(std $id $stale "v1,$(sign "$key" $id $stale stale/body)")"
future=$((t + 301))
request future "$received" "$(std $id $future "v1,$(sign "$key" $id $future future/body)")"
# A valid signature replayed under another webhook-id.
request id_swapped "$received" "$(std msg_2pQz4Hn8kX1rV7cT0bL9wY3eG $t "v1,$(good id_swapped)")"

# Event ids are the webhook-id header.
for w in */want.json; do
  c=$(dirname "$w")
  want=$(jq -r '.headers["Webhook-Id"]' "$c/request.json")
  for got in $(jq -r '.events[]?.id' "$w"); do
    [ "$got" = "$want" ] || { echo "$c: event id $got, want webhook-id $want" >&2; exit 1; }
  done
done
