#!/usr/bin/env bash
# Computes every vector's signature with openssl, independently of the code
# under test, for the three configurations under testdata/ (see each
# config.yaml), then checks each want.json's event ids independently.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"
secret=$(cat secret)
wrong="hmac-test-secret-2b1f"
received="2026-11-20T10:15:30Z"
t=$(date -u -d "$received" +%s)
t_ms=$((t * 1000 - 4500))

hexmac() { # hexmac ALG KEY < DATA
  openssl dgst "-$1" -hmac "$2" -r | cut -d' ' -f1
}
b64mac() { # b64mac ALG KEY < DATA
  openssl dgst "-$1" -hmac "$2" -binary | base64 -w0
}
request() { # request DIR HEADERS-JSON (without braces)
  printf '{"method": "POST", "path": "/webhooks/%s", "received_at": "%s", "headers": {"Content-Type": "application/json"%s}}\n' \
    "$(dirname "$1")" "$received" "${2:+, $2}" > "$1/request.json"
}

# timestamped: X-Signature: sha256=hex(HMAC-SHA256(secret, "<X-Timestamp>.<body>"))
ts_sign() { # ts_sign ALG KEY TIMESTAMP FILE
  { printf '%s.' "$3"; cat "$4"; } | hexmac "$1" "$2"
}
d=timestamped
for c in order_paid order_pretty unknown_event; do
  request $d/$c "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$secret" $t $d/$c/body)\""
done
request $d/rotated "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$wrong" $t $d/rotated/body), sha256=$(ts_sign sha256 "$secret" $t $d/rotated/body)\""
request $d/timestamp_ms "\"X-Timestamp\": \"$t_ms\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$secret" $t_ms $d/timestamp_ms/body)\""
request $d/wrong_key "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$wrong" $t $d/wrong_key/body)\""
full=$(ts_sign sha256 "$secret" $t $d/truncated/body)
request $d/truncated "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=${full:0:40}\""
request $d/sha1_instead "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=$(ts_sign sha1 "$secret" $t $d/sha1_instead/body)\""
request $d/missing_header "\"X-Timestamp\": \"$t\""
request $d/missing_prefix "\"X-Timestamp\": \"$t\", \"X-Signature\": \"$(ts_sign sha256 "$secret" $t $d/missing_prefix/body)\""
request $d/tampered "\"X-Timestamp\": \"$t\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$secret" $t $d/order_paid/body)\""
stale=$((t - 301))
request $d/stale "\"X-Timestamp\": \"$stale\", \"X-Signature\": \"sha256=$(ts_sign sha256 "$secret" $stale $d/stale/body)\""
request $d/missing_timestamp "\"X-Signature\": \"sha256=$(ts_sign sha256 "$secret" "" $d/missing_timestamp/body)\""

# base64_body: X-Hook-Signature: base64(HMAC-SHA1(secret, body))
d=base64_body
request $d/submission "\"X-Hook-Signature\": \"$(b64mac sha1 "$secret" < $d/submission/body)\""
request $d/url_safe "\"X-Hook-Signature\": \"$(b64mac sha1 "$secret" < $d/url_safe/body | tr '+/' '-_' | tr -d '=')\""
request $d/sha256_instead "\"X-Hook-Signature\": \"$(b64mac sha256 "$secret" < $d/sha256_instead/body)\""
request $d/wrong_key "\"X-Hook-Signature\": \"$(b64mac sha1 "$wrong" < $d/wrong_key/body)\""
full=$(b64mac sha1 "$secret" < $d/truncated/body)
request $d/truncated "\"X-Hook-Signature\": \"${full:0:20}\""
request $d/missing_header ""
request $d/tampered "\"X-Hook-Signature\": \"$(b64mac sha1 "$secret" < $d/submission/body)\""

# sha512_headers: X-Sig: hex(HMAC-SHA512(secret, "<X-Request-Id>:<X-Timestamp-Ms>:<body>"))
d=sha512_headers
rid="req-5c1f0e"
hdr_sign() { # hdr_sign REQUEST-ID TIMESTAMP FILE
  { printf '%s:%s:' "$1" "$2"; cat "$3"; } | hexmac sha512 "$secret"
}
request $d/contact_created "\"X-Request-Id\": \"$rid\", \"X-Timestamp-Ms\": \"$t_ms\", \"X-Sig\": \"$(hdr_sign $rid $t_ms $d/contact_created/body)\""
request $d/wrong_request_id "\"X-Request-Id\": \"req-5c1f0f\", \"X-Timestamp-Ms\": \"$t_ms\", \"X-Sig\": \"$(hdr_sign $rid $t_ms $d/wrong_request_id/body)\""
stale_ms=$((t * 1000 - 61000))
request $d/stale "\"X-Request-Id\": \"$rid\", \"X-Timestamp-Ms\": \"$stale_ms\", \"X-Sig\": \"$(hdr_sign $rid $stale_ms $d/stale/body)\""

# Event ids: the id_path value where the configuration has one and the body
# carries it, else the SHA-256 of the body.
check_id() { # check_id CASE-DIR WANT-ID
  for id in $(jq -r '.events[]?.id' "$1/want.json"); do
    [ "$id" = "$2" ] || { echo "$1: event id $id, want $2" >&2; exit 1; }
  done
}
for w in */*/want.json; do
  c=$(dirname "$w")
  case "$(dirname "$c")" in
    timestamped) want=$(jq -r '.id // empty' "$c/body") ;;
    sha512_headers) want=$(jq -r '.meta.delivery_id // empty' "$c/body") ;;
    *) want="" ;;
  esac
  [ -n "$want" ] || want=$(sha256sum "$c/body" | cut -d' ' -f1)
  check_id "$c" "$want"
done
